"""The ``samo_`` metrics (docs/METRICS.md), recorded through whichever backend the process has.

In Ray Serve replicas the backend is ``ray.serve.metrics`` (samo_serve.observability.ray_metrics): the metrics leave
through Ray's metrics pipeline, get the ``deployment``/``replica``/``application`` tags, and appear on
Ray's Prometheus endpoint as ``ray_samo_…`` next to the built-in ``ray_serve_…``. Without Ray (tests,
the plain benchmark server) it is prometheus_client in a private registry; with metrics off, no-ops.
The bucket boundaries are shared with /stats (samo_serve.observability.window_stats), so both give the same p95.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS_S",
    "MetricFactory",
    "Metrics",
    "NullFactory",
    "PrometheusFactory",
    "ProcessSampler",
]

#: end-to-end latency, tokenizer and model time (seconds); /stats percentiles use the same edges
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Recorder(Protocol):
    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None: ...

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...

    def set(self, value: float, tags: dict[str, str] | None = None) -> None: ...


class MetricFactory(Protocol):
    def counter(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder: ...

    def histogram(self, name: str, doc: str, buckets: Sequence[float], tags: Sequence[str] = ()) -> Recorder: ...

    def gauge(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder: ...


class _Null:
    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        pass

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass


class NullFactory:
    """Metrics off (``metrics.enabled=false``)."""

    def counter(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        return _Null()

    def histogram(self, name: str, doc: str, buckets: Sequence[float], tags: Sequence[str] = ()) -> Recorder:
        return _Null()

    def gauge(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        return _Null()


class _Prom:
    def __init__(self, metric: Any, tag_names: Sequence[str]) -> None:
        self._metric = metric
        self._tagged = bool(tag_names)
        self._children: dict[tuple[str, ...], Any] = {}  # labels() checks and locks on every call

    def _child(self, tags: dict[str, str] | None) -> Any:
        if not self._tagged:
            return self._metric
        key = tuple((tags or {}).values())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(**(tags or {}))
        return child

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self._child(tags).inc(value)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._child(tags).observe(value)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._child(tags).set(value)


class PrometheusFactory:
    """prometheus_client in a registry of its own (one per factory, so tests do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def counter(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        return _Prom(PromCounter(name, doc, tags, registry=self.registry), tags)

    def histogram(self, name: str, doc: str, buckets: Sequence[float], tags: Sequence[str] = ()) -> Recorder:
        return _Prom(PromHistogram(name, doc, tags, buckets=buckets, registry=self.registry), tags)

    def gauge(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        return _Prom(PromGauge(name, doc, tags, registry=self.registry), tags)


class Metrics:
    """Every samo_ metric. Names here are without Ray's ``ray_`` prefix and the counters' ``_total``."""

    def __init__(self, factory: MetricFactory) -> None:
        f = factory
        self.requests = f.counter("samo_requests", "HTTP requests answered, by route and status", ("route", "status"))
        self.latency = f.histogram(
            "samo_request_latency_seconds", "end-to-end time in the ingress, by route", LATENCY_BUCKETS_S, ("route",)
        )
        self.tokenize = f.histogram("samo_tokenize_seconds", "tokenizing one micro-batch", LATENCY_BUCKETS_S)
        self.model = f.histogram(
            "samo_model_seconds", "ONNX Runtime time for one merged model batch", LATENCY_BUCKETS_S
        )
        self.batch_size = f.histogram(
            "samo_batch_size", "texts per batch: ingress micro-batch or merged model batch", BATCH_BUCKETS, ("stage",)
        )
        self.batch_wait = f.histogram(
            "samo_batch_wait_seconds", "time a call waited in the ingress micro-batcher", LATENCY_BUCKETS_S
        )
        self.cache = f.counter(
            "samo_cache_events", "cache lookups by level and result (hit, miss, error, set)", ("level", "result")
        )
        self.log_rows = f.counter(
            "samo_log_rows", "request-log rows by what happened to them (queued, written, spilled, ...)", ("state",)
        )
        self.rss = f.gauge("samo_process_rss_bytes", "resident memory of this replica's process")
        self.cpu = f.counter("samo_process_cpu_seconds", "CPU time (user + system) of this replica's process")
        self.model_info = f.gauge("samo_model_info", "1 for the served model", ("version", "provider"))
        self.drift_mix_js = f.gauge(
            "samo_drift_mix_js",
            "Jensen-Shannon divergence of a tenant's emotion mix from the reference",
            ("tenant", "model_version"),
        )
        self.drift_confidence_psi = f.gauge(
            "samo_drift_confidence_psi",
            "population-stability index of a tenant's top scores against the reference",
            ("tenant", "model_version"),
        )
        self.trace_export_failures = f.counter(
            "samo_trace_export_failures", "spans this process could not export to the OTLP endpoint (tracing on)"
        )

    def on_model_batch(self, size: int, seconds: float) -> None:
        """One model call: its texts and ONNX Runtime time (the model replica in Ray, the runner in one process)."""
        self.model.observe(seconds)
        self.batch_size.observe(size, {"stage": "model"})


class ProcessSampler:
    """Turns cumulative readings (CPU time, cache and log counters) into counter increments."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._last: dict[tuple[str, ...], float] = {}

    def delta(self, key: tuple[str, ...], total: float) -> float:
        previous = self._last.get(key, 0.0)
        self._last[key] = total
        return max(0.0, total - previous)

    def sample_process(self) -> None:
        from samo_serve.observability.memory import rss_mb

        self.metrics.rss.set(rss_mb() * 2**20)
        times = os.times()
        if cpu := self.delta(("cpu",), times.user + times.system):
            self.metrics.cpu.inc(cpu)

    def sample_counters(self, cache: dict[str, Any], log_rows: dict[str, Any] | None) -> None:
        """``cache``: the service's per-level snapshots; ``log_rows``: the writer's counters."""
        for level, snapshot in cache.items():
            if not snapshot:
                continue
            for result, field in (("hit", "hits"), ("miss", "misses"), ("error", "errors"), ("set", "sets")):
                if n := self.delta(("cache", level, result), snapshot.get(field, 0)):
                    self.metrics.cache.inc(n, {"level": level, "result": result})
        for state in ("queued", "written", "spilled", "replayed", "rejected", "dropped"):
            if log_rows and (n := self.delta(("log", state), log_rows.get(state, 0))):
                self.metrics.log_rows.inc(n, {"state": state})
