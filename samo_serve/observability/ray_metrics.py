"""The metric backend inside Ray Serve replicas: ``ray.serve.metrics`` (imported only when used).

Serve adds the ``deployment``, ``replica`` and ``application`` tags itself; Ray exports every metric on
its Prometheus endpoint with a ``ray_`` prefix (and ``_total`` on counters): ``samo_requests`` is
scraped as ``ray_samo_requests_total``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from samo_serve.observability.metrics import Recorder

__all__ = ["RayFactory"]


class _Ray:
    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self._metric.inc(value, tags=tags)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._metric.observe(value, tags=tags)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._metric.set(value, tags=tags)


def _keys(tags: Sequence[str]) -> Any:
    return tuple(tags)  # Ray's stubs say tuple[str]; any length works


class RayFactory:
    def counter(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        from ray.serve import metrics

        return _Ray(metrics.Counter(name, description=doc, tag_keys=_keys(tags)))

    def histogram(self, name: str, doc: str, buckets: Sequence[float], tags: Sequence[str] = ()) -> Recorder:
        from ray.serve import metrics

        return _Ray(metrics.Histogram(name, description=doc, boundaries=list(buckets), tag_keys=_keys(tags)))

    def gauge(self, name: str, doc: str, tags: Sequence[str] = ()) -> Recorder:
        from ray.serve import metrics

        return _Ray(metrics.Gauge(name, description=doc, tag_keys=_keys(tags)))
