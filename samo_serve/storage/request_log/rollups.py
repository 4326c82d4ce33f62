"""Hourly rollups of the request log, and the SQL that builds and reads them, one text for both dialects.

Two tables, both kept current by the writer in the same transaction as each batch insert (one
statement on PostgreSQL, so a retried batch never counts twice: only rows the insert returns are added):

* ``emotion_rollup_tenant``: per dimension (``emotion`` = primary emotion, ``cache`` = cache level,
  ``latency`` = a 5 %-wide bucket of processing time) x tenant x UTC hour, and again x UTC day (a
  30-day range then reads a few thousand rows, not hundreds of thousands): texts, requests (the sum of
  1/request_texts, so a request split over several keys still adds up to one), confidence and
  processing-time sums. Tenant-wide analytics read at most dims x tenants x hours x keys rows.
  The ``label`` dimension counts a text under every label that cleared its tuned threshold (the row's
  ``cleared`` object), not only its primary, with that label's score summed in ``confidence_sum``.
* ``emotion_rollup_user``: per tenant x user x hour x primary emotion, for user timelines.
* ``emotion_rollup_user_label``: the same per label that cleared its threshold (a text adds to several).

A range [start, end) is answered from the rollups for its whole days and hours plus the raw rows of its
partial first and last hour, aggregated by the same SELECT, so the answer equals direct SQL over the raw
table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from samo_serve.observability.drift import VERSION_SEPARATOR

__all__ = [
    "ANALYZE_AFTER_REBUILD",
    "DIMENSIONS",
    "EMPTY_ROLLUPS",
    "LATENCY_RATIO",
    "POSTGRES",
    "SQLITE",
    "USER_ROLLUPS",
    "Dialect",
    "Dim",
    "fill_after_migrations",
    "latency_bucket",
    "latency_value",
    "range_query",
    "rebuild_statements",
    "rebuild_steps",
    "upsert_statements",
]

Dim = Literal["emotion", "cache", "latency", "label", "drift_mix", "drift_confidence"]
DIMENSIONS: tuple[Dim, ...] = ("emotion", "cache", "latency", "label", "drift_mix", "drift_confidence")
#: the drift dimensions (observability.drift), keyed ``{model_version}|{primary}`` and ``{model_version}|{bin}``
#: (the top score in tenths), are hourly only: drift reads a window of recent hours
_HOURLY_ONLY = ("drift_mix", "drift_confidence")
#: the per-user tables, by dimension (a whole person's erasure deletes their rows of both)
USER_ROLLUPS: dict[Dim, str] = {"emotion": "emotion_rollup_user", "label": "emotion_rollup_user_label"}
_TENANT = "emotion_rollup_tenant"
TIME = "coalesce(occurred_at, created_at)"  # a plain-SQL row without occurred_at buckets by created_at
LATENCY_RATIO = 1.05
_MIN_MS = 0.001


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a processing time (both dialects compute the same in SQL)."""
    return math.floor(math.log(max(ms, _MIN_MS)) / math.log(LATENCY_RATIO))


def latency_value(bucket: int) -> float:
    """A bucket's geometric middle: within 2.5 % of every time in it."""
    return float(LATENCY_RATIO ** (bucket + 0.5))


@dataclass(frozen=True)
class Dialect:
    hour: str  # the UTC hour of a time expression, in the form the bucket columns hold
    day: str  # its UTC day
    latency: str  # latency_bucket() as text
    one: str  # 1 as a float
    #: a row's cleared labels joined as ``l`` (label ``l.key``), and one label's score; rows from before
    #: the column (NULL) count their primary emotion only
    labels: str
    label_score: str
    #: the top score's tenth, 0..9 (observability.drift.confidence_bin), as text
    confidence_bin: str


POSTGRES = Dialect(
    hour="date_trunc('hour', {t})",  # sessions run in UTC (PostgresStore sets timezone)
    day="date_trunc('day', {t})",
    latency=f"floor(ln(greatest({{ms}}, {_MIN_MS})) / ln({LATENCY_RATIO}))::int::text",
    one="1.0::float8",
    labels="jsonb_each_text(coalesce(cleared, jsonb_build_object(primary_emotion, confidence))) AS l(key, value)",
    label_score="l.value::float8",
    confidence_bin="least(9, greatest(0, floor(confidence * 10)))::int::text",
)
SQLITE = Dialect(
    hour="substr({t}, 1, 13) || ':00:00.000000+00:00'",  # times are stored as rows.format_time writes them
    day="substr({t}, 1, 10) || 'T00:00:00.000000+00:00'",
    # in SQL, not a Python function: sqlite3 calls one with the GIL once per row, and a worker thread waits
    # for the GIL behind a busy event loop each time (SqliteStore registers ln and floor where SQLite
    # was built without its math functions)
    latency=f"CAST(CAST(floor(ln(max({{ms}}, {_MIN_MS})) / ln({LATENCY_RATIO})) AS INTEGER) AS TEXT)",
    one="1.0",
    labels="json_each(coalesce(cleared, json_object(primary_emotion, confidence))) AS l",
    label_score="l.value",
    confidence_bin="CAST(min(9, max(0, CAST(floor(confidence * 10) AS INTEGER))) AS TEXT)",
)

_SUMS = "texts, requests, confidence_sum, ms_sum"
_TENANT_COLUMNS = f"dim, span, tenant_id, bucket, key, {_SUMS}"
SPANS = ("hour", "day")
_USER_COLUMNS = f"tenant_id, user_id, bucket, emotion, {_SUMS}"


def _measures(d: Dialect, sign: int, score: str = "confidence") -> str:
    return (
        f"count(*) * {sign} AS texts, sum({d.one} / request_texts) * {sign} AS requests, "
        f"sum({score}) * {sign} AS confidence_sum, sum(processing_time_ms) * {sign} AS ms_sum"
    )


def _score(d: Dialect, dim: Dim) -> tuple[str, str]:
    """(what a row adds to ``confidence_sum``, what it is joined with): a label's score, once per label."""
    if dim == "label":
        return d.label_score, f", {d.labels}"
    return "confidence", ""


def _tenant_select(d: Dialect, dim: Dim, source: str, where: str, sign: int = 1, span: str = "hour") -> str:
    key = {
        "emotion": "primary_emotion",
        "cache": "cache_level",
        "latency": d.latency.format(ms="processing_time_ms"),
        "label": "l.key",
        "drift_mix": f"model_version || '{VERSION_SEPARATOR}' || primary_emotion",
        "drift_confidence": f"model_version || '{VERSION_SEPARATOR}' || {d.confidence_bin}",
    }
    truncate = d.hour if span == "hour" else d.day
    score, joined = _score(d, dim)
    return (
        f"SELECT '{dim}' AS dim, '{span}' AS span, tenant_id, {truncate.format(t=TIME)} AS bucket, {key[dim]} AS key, "
        f"{_measures(d, sign, score)} FROM {source}{joined} WHERE {where} GROUP BY tenant_id, 4, 5"
    )


def _user_select(d: Dialect, source: str, where: str, sign: int = 1, dim: Dim = "emotion") -> str:
    score, joined = _score(d, dim)
    key = "l.key" if dim == "label" else "primary_emotion"
    return (
        f"SELECT tenant_id, user_id, {d.hour.format(t=TIME)} AS bucket, {key} AS emotion, "
        f"{_measures(d, sign, score)} FROM {source}{joined} WHERE user_id IS NOT NULL AND {where} "
        "GROUP BY tenant_id, user_id, 3, 4"
    )


def _adds(table: str) -> str:
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _SUMS.split(", "))


def upsert_statements(
    d: Dialect, source: str, where: str = "true", sign: int = 1, dims: tuple[Dim, ...] = DIMENSIONS
) -> tuple[str, ...]:
    """Add (sign -1: subtract) the rows of ``source`` matching ``where`` to the rollup tables of ``dims``:
    the tenant rollups first, then the user rollups (``USER_ROLLUPS`` order).

    Rows are upserted in primary-key order, so writers on several replicas lock them in one order.
    """
    tenant = " UNION ALL ".join(
        _tenant_select(d, dim, source, where, sign, span)
        for dim in dims
        for span in SPANS
        if span == "hour" or dim not in _HOURLY_ONLY
    )
    users = tuple(
        f"INSERT INTO {table} ({_USER_COLUMNS}) SELECT * FROM ({_user_select(d, source, where, sign, dim)}) "
        "AS agg WHERE true ORDER BY tenant_id, user_id, bucket, emotion "
        f"ON CONFLICT (tenant_id, user_id, bucket, emotion) DO UPDATE SET {_adds(table)}"
        for dim, table in USER_ROLLUPS.items()
        if dim in dims
    )
    return (
        f"INSERT INTO emotion_rollup_tenant ({_TENANT_COLUMNS}) SELECT * FROM ({tenant}) AS agg WHERE true "
        "ORDER BY dim, span, bucket, tenant_id, key "
        f"ON CONFLICT (dim, span, bucket, tenant_id, key) DO UPDATE SET {_adds('emotion_rollup_tenant')}",
        *users,
    )


#: after rows are subtracted (an erasure, an edit): rollup rows that count nothing any more go
EMPTY_ROLLUPS = tuple(
    f"DELETE FROM {table} WHERE texts <= 0" for table in ("emotion_rollup_tenant", *USER_ROLLUPS.values())
)


def rebuild_steps(d: Dialect) -> tuple[tuple[str, str], ...]:
    """(what it does, SQL): recompute every hour that still has raw rows; hours whose rows retention
    dropped keep their rollups."""
    hours = f"SELECT DISTINCT {d.hour.format(t=TIME)} FROM emotion_requests"
    days = f"SELECT DISTINCT {d.day.format(t=TIME)} FROM emotion_requests"
    tenant, *users = upsert_statements(d, "emotion_requests")
    clear = "DELETE FROM {} WHERE {}bucket IN ({})"
    steps = [
        ("clear the hourly tenant rollups of hours with raw rows", clear.format(_TENANT, "span = 'hour' AND ", hours)),
        ("clear the daily tenant rollups of days with raw rows", clear.format(_TENANT, "span = 'day' AND ", days)),
    ]
    steps += [(f"clear the {dim} user rollups of hours with raw rows", clear.format(table, "", hours))
              for dim, table in USER_ROLLUPS.items()]  # fmt: skip
    steps.append(("tenant rollups from the raw rows", tenant))
    steps += [(f"{dim} user rollups from the raw rows", sql) for dim, sql in zip(USER_ROLLUPS, users, strict=True)]
    return tuple(steps)


def rebuild_statements(d: Dialect) -> tuple[str, ...]:
    return tuple(sql for _, sql in rebuild_steps(d))


def fill_after_migrations(d: Dialect, applied: set[int]) -> tuple[str, ...]:
    """What fills the rollups from the rows already there, once the migrations ``applied`` have run: all of
    them after migration 3 (a log from before rollups), the label dimension after migration 5 (rows from
    before it count their primary emotion as their one label)."""
    if 3 in applied:
        return rebuild_statements(d)
    return upsert_statements(d, "emotion_requests", dims=("label",)) if 5 in applied else ()


#: what a rebuild runs after it commits, so the planner's statistics describe the tables it rewrote (after a
#: rebuild of 5M rows a 30-day summary took 466 ms at p95 until a manual ANALYZE, 40 ms after)
ANALYZE_AFTER_REBUILD = tuple(f"ANALYZE {table}" for table in ("emotion_rollup_tenant", *USER_ROLLUPS.values()))


def range_query(
    d: Dialect, dim: Dim, *, tenant: bool, user: bool, by_hour: bool, whole_days: bool = False, by_tenant: bool = False
) -> str:
    """Sums per key (and per hour) over [:start, :end), from the coarsest rows that fit.

    Whole days [:dlo, :dhi) from day rollups (not per hour unless ``whole_days``, and never for users), whole
    hours [:lo, :hi) outside them from hour rollups, the partial first and last hour from raw rows.
    ``whole_days`` (with ``by_hour``): a whole day's sums come as one row at its midnight, for a timeline
    whose buckets are days or longer (a 30-day tenant timeline reads 30 x keys day rows, not 720 x keys).
    Parameters: start, end, lo <= dlo <= dhi <= hi (RangeQuery.params), and tenant / user when filtered.
    Columns: [tenant_id (``by_tenant``),] [bucket,] key, texts, requests, confidence_sum, ms_sum.
    """
    if user and dim not in USER_ROLLUPS:
        raise ValueError(f"user rollups hold {' and '.join(USER_ROLLUPS)} only")
    filters = (" AND tenant_id = :tenant" if tenant else "") + (" AND user_id = :user" if user else "")
    edges = f"({TIME} >= :start AND {TIME} < :lo OR {TIME} >= :hi AND {TIME} < :end){filters}"
    hours_only = (by_hour and not whole_days) or user or dim in _HOURLY_ONLY
    hours = (
        "bucket >= :lo AND bucket < :hi"
        if hours_only
        else "(bucket >= :lo AND bucket < :dlo OR bucket >= :dhi AND bucket < :hi)"
    )
    if user:
        stored = f"SELECT tenant_id, bucket, emotion AS key, {_SUMS} FROM {USER_ROLLUPS[dim]} WHERE {hours}{filters}"
        user_rows = _user_select(d, "emotion_requests", edges, 1, dim)
        raw = f"SELECT tenant_id, bucket, emotion AS key, {_SUMS} FROM ({user_rows}) AS e"
    else:
        rollup = f"SELECT tenant_id, bucket, key, {_SUMS} FROM emotion_rollup_tenant WHERE dim = '{dim}'"
        stored = f"{rollup} AND span = 'hour' AND {hours}{filters}"
        if not hours_only:
            stored += f" UNION ALL {rollup} AND span = 'day' AND bucket >= :dlo AND bucket < :dhi{filters}"
        raw = f"SELECT tenant_id, bucket, key, {_SUMS} FROM ({_tenant_select(d, dim, 'emotion_requests', edges)}) AS e"
    group = ("tenant_id, " if by_tenant else "") + ("bucket, key" if by_hour else "key")
    return (
        f"SELECT {group}, CAST(sum(texts) AS BIGINT) AS texts, sum(requests) AS requests, "
        "sum(confidence_sum) AS confidence_sum, sum(ms_sum) AS ms_sum "
        f"FROM ({stored} UNION ALL {raw}) AS s GROUP BY {group} ORDER BY {group}"
    )
