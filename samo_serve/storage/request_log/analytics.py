"""Analytics answers from rollup sums (store.RangeQuery rows): emotion counts, summaries, timelines.

Counts are of texts (a row is a text; a document is one text). Requests are the rollups' sums of
1/request_texts, whole numbers once rounded. Processing-time percentiles come from the 5 %-wide
latency histogram: within 2.5 % of PostgreSQL's ``percentile_cont`` over the raw rows; the rest equals it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from samo_serve.core.times import utc_iso
from samo_serve.storage.request_log.rollups import latency_value

__all__ = [
    "Bucket",
    "bucket_count",
    "bucket_starts",
    "emotion_counts",
    "emotion_mix",
    "label_counts",
    "summary",
    "timeline",
]

Bucket = Literal["hour", "day", "week", "month"]
Groups = dict[str, dict[str, str]]  # "ekman"/"sentiment" -> label -> group
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def emotion_counts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Per primary emotion: count, mean confidence, mean processing time; most frequent first."""
    out = [
        {"emotion": key, "count": int(texts), "mean_confidence": conf / texts, "mean_processing_ms": ms / texts}
        for key, texts, _requests, conf, ms in rows
        if texts > 0
    ]
    return sorted(out, key=lambda r: (-r["count"], r["emotion"]))


def _percentile(histogram: list[tuple[int, int]], q: float) -> float | None:
    """percentile_cont over the histogram's bucket values (``histogram`` sorted by bucket)."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    position = q * (total - 1)
    lo, hi = math.floor(position), math.ceil(position)
    values: dict[int, float] = {}
    seen = 0
    for bucket, n in histogram:
        for index in (lo, hi):
            if seen <= index < seen + n:
                values[index] = latency_value(bucket)
        seen += n
    return values[lo] + (values[hi] - values[lo]) * (position - lo)


def summary(cache_rows: Iterable[Sequence[Any]], latency_rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The tenant-wide summary, shaped as /analytics/summary has always answered."""
    by_level: dict[str, int] = {}
    texts = 0
    requests = ms_sum = 0.0
    for key, n, req, _conf, ms in cache_rows:
        if n > 0:
            by_level[key] = int(n)
            texts += int(n)
            requests += req
            ms_sum += ms
    histogram = sorted((int(key), int(n)) for key, n, *_ in latency_rows if n > 0)
    hits = sum(n for level, n in by_level.items() if level != "miss")
    return {
        "requests": round(requests),
        "texts": texts,
        "cache": {"hit_rate": round(hits / texts, 4) if texts else 0.0, "by_level": dict(sorted(by_level.items()))},
        "processing_time_ms": {
            "p50": _percentile(histogram, 0.5),
            "p95": _percentile(histogram, 0.95),
            "mean": ms_sum / texts if texts else None,
        },
    }


def emotion_mix(rows: Iterable[Sequence[Any]], groups: Groups) -> dict[str, Any]:
    """texts, requests, per-emotion count and mean score (6 places), Ekman / sentiment shares of texts
    (every group of the card, 0 included), and ``valence``: the positive share minus the negative share
    (-1..1; None without texts)."""
    texts = 0
    requests = 0.0
    emotions: dict[str, dict[str, Any]] = {}
    shares: dict[str, dict[str, float]] = {
        kind: defaultdict(float, dict.fromkeys(sorted(set(groups.get(kind, {}).values())), 0.0))
        for kind in ("ekman", "sentiment")
    }
    for key, n, req, conf, _ms in rows:
        if n <= 0:
            continue
        texts += int(n)
        requests += req
        emotions[key] = {"count": int(n), "mean_score": round(conf / n, 6)}
        for kind, share in shares.items():
            share[groups.get(kind, {}).get(key, key)] += n  # an unmapped label (neutral) is its own group
    mix = {kind: {g: round(n / texts, 4) if texts else 0.0 for g, n in sorted(s.items())} for kind, s in shares.items()}
    sentiment = shares["sentiment"]
    valence = (sentiment.get("positive", 0.0) - sentiment.get("negative", 0.0)) / texts if texts else None
    return {
        "texts": texts,
        "requests": round(requests),
        "emotions": dict(sorted(emotions.items(), key=lambda item: (-item[1]["count"], item[0]))),
        **mix,
        "valence": None if valence is None else round(valence, 4),
    }


def label_counts(rows: Iterable[Sequence[Any]], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per label (every one of ``labels``, 0 included, in their order; then any other a row names, from
    another model version): how many texts it cleared its tuned threshold in, and its mean score over
    them (6 places; None where it cleared in none). A text counts under each label it cleared."""
    out: dict[str, dict[str, Any]] = {label: {"count": 0, "mean_score": None} for label in labels}
    for key, n, _req, score, _ms in rows:
        if n > 0:
            out[key] = {"count": int(n), "mean_score": round(score / n, 6)}
    return out


def _merged(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows of one key summed: [key, texts, requests, confidence_sum, ms_sum]."""
    merged: dict[str, list[float]] = {}
    for key, *values in rows:
        merged[key] = [a + b for a, b in zip(merged.get(key, [0, 0, 0, 0]), values, strict=True)]
    return [[key, *values] for key, values in merged.items()]


def _floor(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return moment
    day = moment.replace(hour=0)
    if bucket == "month":
        return day.replace(day=1)
    return day if bucket == "day" else day - timedelta(days=day.weekday())  # weeks start on Monday (ISO)


def _next(moment: datetime, bucket: Bucket) -> datetime:
    """The start of the bucket after the one starting at ``moment``."""
    if bucket != "month":
        return moment + _STEP[bucket]
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def bucket_count(start: datetime, end: datetime, bucket: Bucket) -> int:
    """How many UTC buckets [start, end) touches."""
    first = _floor(start, bucket)
    if bucket == "month":
        last = _floor(end - timedelta(microseconds=1), bucket)
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return math.ceil((end - first) / _STEP[bucket])


def bucket_starts(start: datetime, end: datetime, bucket: Bucket) -> list[datetime]:
    """The calendar bucket starts (UTC hours, days, weeks from Monday, months from the 1st) that [start,
    end) touches; the first may lie before ``start`` (the timeline reports it clipped to the range)."""
    starts = [_floor(start, bucket)]
    for _ in range(bucket_count(start, end, bucket) - 1):
        starts.append(_next(starts[-1], bucket))
    return starts


def _per_bucket(hour_rows: Iterable[Sequence[Any]], bucket: Bucket) -> dict[datetime, list[Sequence[Any]]]:
    per_bucket: dict[datetime, list[Sequence[Any]]] = defaultdict(list)
    for hour, *sums in hour_rows:
        moment = hour if isinstance(hour, datetime) else datetime.fromisoformat(hour)
        per_bucket[_floor(moment, bucket)].append(sums)
    return per_bucket


def timeline(
    hour_rows: Iterable[Sequence[Any]],
    start: datetime,
    end: datetime,
    bucket: Bucket,
    groups: Groups,
    label_rows: Iterable[Sequence[Any]] = (),
    labels: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Every bucket of [start, end), empty ones too (a chart needs them), each with its emotion mix (of
    primary emotions, ``hour_rows``) and its label counts (every label each text cleared, ``label_rows``).
    A bucket's ``start`` and ``end`` are its calendar bounds clipped to the range: the first starts at
    ``start`` and the last ends at ``end``, so no bucket reports time outside what was asked."""
    primaries, cleared = _per_bucket(hour_rows, bucket), _per_bucket(label_rows, bucket)
    out = []
    for first in bucket_starts(start, end, bucket):
        mix = emotion_mix(_merged(primaries.get(first, [])), groups)
        bounds = {"start": utc_iso(max(first, start)), "end": utc_iso(min(_next(first, bucket), end))}
        out.append({**bounds, **mix, "labels": label_counts(_merged(cleared.get(first, [])), labels)})
    return out
