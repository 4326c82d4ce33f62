"""Advice computed from /stats numbers, each with the number that triggered it and its threshold."""

from __future__ import annotations

from typing import Any

# The thresholds live with every other default (samo_serve.settings); imported here for callers of recommend.
from samo_serve.settings import RecommendationSettings

__all__ = ["RecommendationSettings", "recommend"]


def _advice(kind: str, message: str, metric: str, value: float, threshold: float) -> dict[str, Any]:
    return {"kind": kind, "message": message, "metric": metric, "value": value, "threshold": threshold}


def recommend(
    window: dict[str, Any],
    rules: RecommendationSettings,
    memory: dict[str, Any] | None = None,
    dependencies: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Recommendations from one window's summary (``samo_serve.observability.window_stats.summarize``, 5 min)."""
    out = []
    requests = window["requests"]
    enough = requests >= rules.min_requests
    hit = sum(window["cache_hit_rate"].values())
    if enough and hit < rules.low_hit_rate:
        out.append(_advice(
            "cache", f"only {hit:.0%} of texts were cache hits: raise cache.l1_ttl_s / l2_ttl_s if texts repeat "
            "over longer periods, or pre-warm the cache with your most frequent texts",
            "cache_hit_rate", round(hit, 4), rules.low_hit_rate,
        ))  # fmt: skip
    p95 = window["latency_ms"]["p95"]
    if enough and p95 is not None and p95 > rules.p95_target_ms:
        out.append(_advice(
            "latency", f"p95 is {p95:.0f} ms, over the {rules.p95_target_ms:.0f} ms target: raise EmotionModel "
            "max_replicas (or num_replicas), or serve the int8 model if you run fp32",
            "latency_ms.p95", p95, rules.p95_target_ms,
        ))  # fmt: skip
    fill = window["batch"]["fill"]
    if fill is not None and window["throughput_rps"] >= rules.busy_rps and fill < rules.low_batch_fill:
        out.append(_advice(
            "batching", f"micro-batches are {fill:.0%} full at {window['throughput_rps']:.0f} rps: raise "
            "batching.model_batch_wait_s a little (e.g. 0.002) so calls can merge, or lower ingress_max_in_flight",
            "batch.fill", fill, rules.low_batch_fill,
        ))  # fmt: skip
    if enough and window["error_rate"] > rules.error_rate:
        errors = window["errors"]
        failed = [f"{n} x 503 (overloaded, timeouts or the model unavailable)"] if (n := errors["503"]) else []
        if other := errors["5xx"] - errors["503"]:
            failed.append(f"{other} other 5xx (see replica logs)")
        down = [name for name, dep in (dependencies or {}).items() if dep.get("state") != "up"]
        if down:
            failed.append(f"down: {', '.join(down)}")
        out.append(_advice(
            "errors", f"{window['error_rate']:.1%} of requests failed: {'; '.join(failed)}",
            "error_rate", window["error_rate"], rules.error_rate,
        ))  # fmt: skip
    limit = (memory or {}).get("max_rss_mb")
    used = (memory or {}).get("max_replica_rss_mb")
    if limit and used and used > rules.memory_share * limit:
        out.append(_advice(
            "memory", f"a replica uses {used:.0f} MB of its {limit} MB bound: run fewer models per replica "
            "(one model per EmotionModel replica) or raise limits.max_rss_mb",
            "memory.max_replica_rss_mb", used, rules.memory_share * limit,
        ))  # fmt: skip
    return out
