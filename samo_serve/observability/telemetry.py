"""What an ingress replica records about its traffic, and the /stats view built from it.

Every request goes to the Prometheus metrics (samo_serve.observability.metrics) and, for the prediction routes, to the
per-second windows (samo_serve.observability.window_stats). A background task samples process memory/CPU and the
cache and request-log counters into metrics every few seconds, and pushes this replica's window rows to
the StatsHub deployment every second, which merges all ingress replicas: /stats on any replica asks the
hub, so it describes the whole application. Without a hub (no Ray, tests) /stats is this replica's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from samo_serve.observability.memory import rss_mb
from samo_serve.observability.metrics import MetricFactory, Metrics, NullFactory, ProcessSampler
from samo_serve.observability.recommendations import RecommendationSettings, recommend
from samo_serve.observability.tracing import Tracing
from samo_serve.observability.window_stats import WINDOWS_S, WindowStats, summarize
from samo_serve.settings import Settings

__all__ = ["PREDICT_ROUTES", "StatsHubClient", "Telemetry", "build_view", "deployment_states", "running_replicas"]

log = logging.getLogger(__name__)

PREDICT_ROUTES = frozenset({"/predict", "/predict/batch", "/v2/models/{name}/infer"})
SERIES_WINDOW_S, SERIES_STEP_S = 300, 5
PUSH_EVERY_S, SAMPLE_EVERY_S = 1.0, 5.0


class StatsHubClient(Protocol):
    async def push(self, replica: str, rows: list[tuple[int, list[float]]], gauges: dict[str, Any]) -> None: ...

    async def view(self) -> dict[str, Any]: ...


def deployment_states(deployments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each deployment's status, replicas per state and message, from Serve's ``serve.status()``.

    A replica that Ray cannot place (no free GPU share, say) stays STARTING, and after 30 s Serve's
    message says which resources it waits for: operators see it here and on the dashboard.
    """
    return {
        name: {
            "status": _enum_name(d.status),
            "replica_states": {_enum_name(state): int(n) for state, n in d.replica_states.items() if n},
            "message": d.message or "",
        }
        for name, d in deployments.items()
    }


def running_replicas(deployments: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {name: int(d["replica_states"].get("RUNNING", 0)) for name, d in deployments.items()}


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value)).rsplit(".", 1)[-1]


def build_view(
    windows: WindowStats,
    gauges: dict[str, dict[str, Any]],
    rules: RecommendationSettings,
    max_rss_mb: int | None,
    dependencies: dict[str, Any] | None = None,
    now: float | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The /stats document from merged windows and each replica's latest gauges (RSS).

    ``deployments`` (from :func:`deployment_states`; None outside Ray Serve) also gives ``replicas``:
    the running ones.
    """
    now = time.time() if now is None else now
    summaries = {name: summarize(windows.totals(seconds, now), seconds) for name, seconds in WINDOWS_S.items()}
    points = []
    for start, row in windows.series(SERIES_WINDOW_S, SERIES_STEP_S, now):
        s = summarize(row, SERIES_STEP_S)
        points.append(
            {
                "t": start,
                "rps": s["throughput_rps"],
                "p50_ms": s["latency_ms"]["p50"],
                "p95_ms": s["latency_ms"]["p95"],
                "p99_ms": s["latency_ms"]["p99"],
                "error_rate": s["error_rate"],
                "hit_rate": s["cache_hit_rate"],
                "batch_size": s["batch"]["mean_size"],
            }
        )
    rss = {replica: g["rss_mb"] for replica, g in gauges.items() if "rss_mb" in g}
    memory = {"replicas_rss_mb": rss, "max_replica_rss_mb": max(rss.values(), default=None), "max_rss_mb": max_rss_mb}
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "ingress_replicas_reporting": len(gauges) or 1,
        "windows": summaries,
        "series": {"step_s": SERIES_STEP_S, "points": points},
        "replicas": running_replicas(deployments) if deployments is not None else None,
        "deployments": deployments,
        "memory": memory,
        "recommendations": recommend(summaries["5m"], rules, memory, dependencies),
    }


class Telemetry:
    def __init__(
        self,
        metrics: Metrics,
        rules: RecommendationSettings | None = None,
        max_rss_mb: int | None = None,
        hub: StatsHubClient | None = None,
        replica_id: str | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics
        #: this process's traces (observability.tracing; off unless ``tracing.enabled``)
        self.tracing = tracing or Tracing.off()
        self.windows = WindowStats()
        self.rules = rules or RecommendationSettings()
        self.max_rss_mb = max_rss_mb
        self.hub = hub
        self.replica_id = replica_id or uuid.uuid4().hex[:8]
        self._sampler = ProcessSampler(metrics)
        self._task: asyncio.Task[None] | None = None
        self._pushed_until = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        factory: MetricFactory,
        hub: StatsHubClient | None = None,
        replica_id: str | None = None,
        process: str = "ingress",
    ) -> Telemetry:
        obs = settings.observability
        metrics = Metrics(factory if obs.metrics_enabled else NullFactory())
        tracing = Tracing(settings.tracing, process, on_export_failure=metrics.trace_export_failures.inc)
        return cls(metrics, obs.recommendations, settings.limits.max_rss_mb, hub, replica_id, tracing)

    # -------------------------------------------------------------------------------- recording

    def on_request(self, route: str, status: int, latency_s: float) -> None:
        self.metrics.requests.inc(1, {"route": route, "status": str(status)})
        self.metrics.latency.observe(latency_s, {"route": route})
        if route in PREDICT_ROUTES:
            self.windows.record_request(status, latency_s)

    def on_texts(self, levels: list[str]) -> None:
        self.windows.record_levels(levels)

    def on_batch(self, size: int, capacity: int, wait_s: float) -> None:
        self.windows.record_batch(size, capacity)
        self.metrics.batch_size.observe(size, {"stage": "ingress"})
        self.metrics.batch_wait.observe(wait_s)

    def on_tokenize(self, seconds: float) -> None:
        self.metrics.tokenize.observe(seconds)

    # --------------------------------------------------------------------------------- the loop

    def start(self, counters: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
        """Sample metrics and push windows in the background; ``counters()`` gives (cache, log rows)."""
        self._task = asyncio.get_running_loop().create_task(self._run(counters), name="telemetry")

    async def _run(self, counters: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
        last_sample = 0.0
        while True:
            if time.monotonic() - last_sample >= SAMPLE_EVERY_S:
                last_sample = time.monotonic()
                self._sampler.sample_process()
                self._sampler.sample_counters(*counters())
            if self.hub is not None:
                await self.push()
            await asyncio.sleep(PUSH_EVERY_S)

    async def push(self) -> None:
        if self.hub is None:
            return
        since = self._pushed_until - 1  # the last pushed second may have grown since
        now = int(time.time())
        try:
            await self.hub.push(self.replica_id, self.windows.export(since), {"rss_mb": rss_mb()})
            self._pushed_until = now
        except Exception as exc:  # the hub restarting: this replica's rows go with the next push
            log.debug("stats push failed: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.push()
        await asyncio.to_thread(self.tracing.flush)  # the spans still queued leave before the process does

    # --------------------------------------------------------------------------------- reading

    async def view(self, dependencies: dict[str, Any] | None = None) -> dict[str, Any]:
        """All ingress replicas (through the hub), or this one alone when there is no hub."""
        if self.hub is not None:
            try:
                await self.push()  # include this replica's latest second
                merged = await self.hub.view()
                merged["recommendations"] = recommend(
                    merged["windows"]["5m"], self.rules, merged["memory"], dependencies
                )
                return merged
            except Exception as exc:
                log.warning("stats hub unavailable (%s); /stats shows this replica only", exc)
        gauges = {self.replica_id: {"rss_mb": rss_mb()}}
        return build_view(self.windows, gauges, self.rules, self.max_rss_mb, dependencies)
