"""Sliding-window statistics behind ``GET /stats``: one row of counters per second, for the last hour.

Each ingress replica records into its own :class:`WindowStats`; the replicas' rows are merged (a sum per
second) by the StatsHub deployment, so /stats answers for all replicas from any of them. Latency is
counted in the same buckets as the ``samo_request_latency_seconds`` histogram and percentiles are
interpolated the way Prometheus' ``histogram_quantile`` does, so /stats and Prometheus agree on p95 to
within a bucket.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from samo_serve.errors import ClientClosed
from samo_serve.observability.metrics import LATENCY_BUCKETS_S

__all__ = ["HORIZON_S", "WINDOWS_S", "WindowStats", "histogram_quantile", "merge", "summarize"]

HORIZON_S = 3600
WINDOWS_S = {"1m": 60, "5m": 300, "1h": 3600}
LEVELS = ("l1", "l2", "l3", "miss")
_BASE = ("requests", "texts", "status_4xx", "status_429", "status_5xx", "status_503", "latency_sum_s",
         "batches", "batch_texts", "batch_capacity", "client_closed")  # fmt: skip
FIELDS = (*_BASE, *(f"cache_{lv}" for lv in LEVELS), *(f"le_{b:g}" for b in LATENCY_BUCKETS_S), "le_inf")
COL = {name: i for i, name in enumerate(FIELDS)}
_LAT0 = COL[f"le_{LATENCY_BUCKETS_S[0]:g}"]


class WindowStats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.rows = np.zeros((HORIZON_S, len(FIELDS)))
        self.seconds = np.full(HORIZON_S, -1, dtype=np.int64)

    def _row(self, second: int) -> np.ndarray:
        i = second % HORIZON_S
        if self.seconds[i] != second:  # a slot from an hour ago: start it over
            self.rows[i] = 0.0
            self.seconds[i] = second
        row: np.ndarray = self.rows[i]
        return row

    def record_request(self, status: int, latency_s: float) -> None:
        row = self._row(int(self._clock()))
        row[COL["requests"]] += 1
        if status == ClientClosed.http_status:  # the client hung up (499): counted apart, not an error
            row[COL["client_closed"]] += 1
        elif 400 <= status < 500:
            row[COL["status_4xx"]] += 1
            row[COL["status_429"]] += status == 429
        elif status >= 500:
            row[COL["status_5xx"]] += 1
            row[COL["status_503"]] += status == 503
        row[COL["latency_sum_s"]] += latency_s
        row[_LAT0 + bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1  # np.searchsorted: ~10x the cost per call

    def record_levels(self, levels: Iterable[str]) -> None:
        """The cache level that answered each text of a prediction (``miss``: the model)."""
        row = self._row(int(self._clock()))
        for level in levels:
            row[COL[f"cache_{level}"]] += 1
            row[COL["texts"]] += 1

    def record_batch(self, size: int, capacity: int) -> None:
        row = self._row(int(self._clock()))
        row[COL["batches"]] += 1
        row[COL["batch_texts"]] += size
        row[COL["batch_capacity"]] += capacity

    # ------------------------------------------------------------------- moving rows between replicas

    def export(self, since_second: int) -> list[tuple[int, list[float]]]:
        """Rows of seconds >= ``since_second`` (the current, partial one included)."""
        mask = self.seconds >= since_second
        return [(int(s), r.tolist()) for s, r in zip(self.seconds[mask], self.rows[mask], strict=True)]

    def absorb(self, rows: list[tuple[int, list[float]]]) -> None:
        """Take another replica's rows as they are (a row sent again replaces the earlier copy)."""
        for second, values in rows:
            i = second % HORIZON_S
            if self.seconds[i] <= second:
                self.seconds[i] = second
                self.rows[i] = values

    # ------------------------------------------------------------------------------------- reading

    def totals(self, window_s: int, now: float | None = None) -> np.ndarray:
        end = int(self._clock() if now is None else now)
        mask = (self.seconds > end - window_s) & (self.seconds <= end)
        total: np.ndarray = self.rows[mask].sum(axis=0)
        return total

    def series(self, window_s: int, step_s: int, now: float | None = None) -> list[tuple[int, np.ndarray]]:
        """Per ``step_s`` sums over the last ``window_s`` seconds, oldest first (empty steps included)."""
        end = int(self._clock() if now is None else now)
        first = end - window_s + 1
        first -= first % step_s
        steps = (end - first) // step_s + 1
        out = np.zeros((steps, len(FIELDS)))
        mask = (self.seconds >= first) & (self.seconds <= end)
        for second, row in zip(self.seconds[mask], self.rows[mask], strict=True):
            out[(second - first) // step_s] += row
        return [(first + k * step_s, out[k]) for k in range(steps)]


def histogram_quantile(q: float, counts: np.ndarray) -> float | None:
    """Prometheus' ``histogram_quantile`` over per-bucket (not cumulative) counts; seconds."""
    total = counts.sum()
    if total == 0:
        return None
    rank = q * total
    cumulative = np.cumsum(counts)
    i = int(np.searchsorted(cumulative, rank, side="left"))
    if i >= len(LATENCY_BUCKETS_S):  # in the +Inf bucket: Prometheus answers the highest finite bound
        return float(LATENCY_BUCKETS_S[-1])
    lower = LATENCY_BUCKETS_S[i - 1] if i > 0 else 0.0
    upper = LATENCY_BUCKETS_S[i]
    before = cumulative[i - 1] if i > 0 else 0.0
    return float(lower + (upper - lower) * (rank - before) / counts[i])


def summarize(total: np.ndarray, seconds: float) -> dict[str, Any]:
    """The /stats numbers of one window from its summed row."""

    def get(name: str) -> float:
        return float(total[COL[name]])

    requests, texts = get("requests"), get("texts")
    latency = total[_LAT0 : _LAT0 + len(LATENCY_BUCKETS_S) + 1]

    def ms(q: float) -> float | None:
        value = histogram_quantile(q, latency)
        return None if value is None else round(value * 1000, 2)

    answered = {lv: get(f"cache_{lv}") for lv in LEVELS}
    looked_up = sum(answered.values())
    batches = get("batches")
    return {
        "requests": int(requests),
        "texts": int(texts),
        "throughput_rps": round(requests / seconds, 2) if seconds else 0.0,
        "latency_ms": {
            "p50": ms(0.5),
            "p95": ms(0.95),
            "p99": ms(0.99),
            "mean": round(get("latency_sum_s") / requests * 1000, 2) if requests else None,
        },  # fmt: skip
        "error_rate": round(get("status_5xx") / requests, 4) if requests else 0.0,  # hang-ups are not errors
        "errors": {
            "4xx": int(get("status_4xx")),
            "429": int(get("status_429")),
            "5xx": int(get("status_5xx")),
            "503": int(get("status_503")),
        },
        "client_closed": int(get("client_closed")),
        "cache_hit_rate": {lv: round(answered[lv] / looked_up, 4) if looked_up else 0.0 for lv in ("l1", "l2", "l3")},
        "cache_answers": {lv: int(n) for lv, n in answered.items()},
        "batch": {
            "batches": int(batches),
            "mean_size": round(get("batch_texts") / batches, 2) if batches else None,
            "fill": round(get("batch_texts") / get("batch_capacity"), 4) if get("batch_capacity") else None,
        },
    }


def merge(parts: Iterable[WindowStats], clock: Callable[[], float] = time.time) -> WindowStats:
    """One WindowStats holding the per-second sums of several replicas' rows."""
    merged = WindowStats(clock)
    for part in parts:
        for i in np.flatnonzero(part.seconds >= 0):
            merged._row(int(part.seconds[i]))[:] += part.rows[i]
    return merged
