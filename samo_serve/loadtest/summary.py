"""Numbers and verdicts for one load level."""

from __future__ import annotations

from typing import Any

import numpy as np

from samo_serve.loadtest.engine import LevelResult

__all__ = ["P95_TARGET_MS", "SUCCESS_TARGET", "summarize_level"]

P95_TARGET_MS = 500.0
SUCCESS_TARGET = 0.99


def summarize_level(result: LevelResult, p95_target_ms: float = P95_TARGET_MS) -> dict[str, Any]:
    spec = result.spec
    lat = np.asarray(result.latencies_s) * 1000
    ms = (
        {k: round(float(f(lat)), 2) for k, f in (("min", np.min), ("mean", np.mean), ("max", np.max))}
        | {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)}
        if lat.size
        else dict.fromkeys(("min", "mean", "max", "p50", "p95", "p99"))
    )
    success = result.succeeded / result.sent if result.sent else 0.0
    return {
        "mode": "open" if spec.rate is not None else "closed",
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "batch": spec.batch,
        "sent": result.sent,
        "succeeded": result.succeeded,
        "success_rate": round(success, 4),
        "statuses": dict(sorted(result.statuses.items())),
        "elapsed_s": round(result.elapsed_s, 2),
        "throughput_rps": round(result.succeeded / result.elapsed_s, 2) if result.elapsed_s else 0.0,
        "texts_per_s": round(result.succeeded * spec.batch / result.elapsed_s, 2) if result.elapsed_s else 0.0,
        "latency_ms": ms,
        "verdicts": {
            f"p95 < {p95_target_ms:g} ms": ms["p95"] is not None and ms["p95"] < p95_target_ms,
            f"success > {SUCCESS_TARGET:.0%}": success > SUCCESS_TARGET,
        },
    }
