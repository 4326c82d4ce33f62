"""Pure parts of the cache and the request log: value codec, text keys, time ranges, rows, store choice."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from samo_serve.core.results import CachedResult
from samo_serve.errors import ValidationFailed
from samo_serve.storage.cache import decode_result, encode_result, normalize_text, text_keys
from samo_serve.storage.request_log import parse_range
from samo_serve.storage.request_log.rows import LogRow, format_time, row_from_json, row_to_json
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.store import storable_text, store_for_url

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("truncated", [True, False])
def test_codec_round_trip_is_exact(truncated: bool) -> None:
    scores = np.random.default_rng(0).random(28, dtype=np.float32)
    value = encode_result(CachedResult(scores, truncated))
    assert len(value) == 113
    back = decode_result(value, 28)
    assert back is not None
    np.testing.assert_array_equal(back.scores, scores)
    assert back.truncated is truncated
    assert back.scores.dtype == np.float32


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x00" * 113, b"\x00" * 200])
def test_codec_refuses_other_shapes(value: bytes) -> None:
    assert decode_result(value, 27) is None


def test_text_hash_is_of_the_normalized_text_and_has_no_version() -> None:
    a, b = text_keys("m-1", "  Hello\tworld "), text_keys("m-2", "Hello world")
    assert a.text_hash == b.text_hash == hashlib.sha256(b"Hello world").hexdigest()
    assert a.cache_key != b.cache_key
    assert normalize_text("  Hello\tworld ") == "Hello world"


def test_range_defaults_to_the_last_day() -> None:
    assert parse_range(None, None, now=NOW) == (NOW - timedelta(hours=24), NOW)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z", (10, 11)),
        ("2026-11-27T10:00:00", "2026-11-27T11:00:00", (10, 11)),  # naive: UTC
        ("2026-11-27T11:00:00+01:00", "2026-11-27T11:00:00Z", (10, 11)),
        ("2026-11-27 10:00", "2026-11-27T11:00:00.000z", (10, 11)),
    ],
)
def test_range_parses_iso_8601(start: str, end: str, expected: tuple[int, int]) -> None:
    got = parse_range(start, end)
    assert (got[0].hour, got[1].hour) == expected
    assert all(t.tzinfo == UTC for t in got)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("yesterday", None),
        ("2026-11-27T10:00:00Z", "2026-13-01"),
        ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00Z"),  # empty
        ("2026-11-27T11:00:00Z", "2026-11-27T10:00:00Z"),  # reversed
    ],
)
def test_bad_ranges_are_422(start: str | None, end: str | None) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_range(start, end)
    assert info.value.http_status == 422


def _row() -> LogRow:
    return LogRow(
        id=uuid.uuid4(),
        created_at=datetime(2026, 11, 27, 13, 0, tzinfo=timezone(timedelta(hours=1))),
        request_id="r-1",
        api_key_id=None,
        text_hash="a" * 64,
        text="héllo \U0001f600",
        primary_emotion="joy",
        confidence=0.75,
        emotions='{"joy":0.75}',
        model_version="m",
        cache_level="miss",
        processing_time_ms=1.5,
        truncated=True,
    )


@pytest.mark.parametrize("text", ["héllo \U0001f600", None, "lone \ud800 surrogate", 'quote " and \\ and \n'])
def test_row_json_round_trip(text: str | None) -> None:
    row = dataclasses.replace(_row(), text=text, processing_time_ms=0.1 + 0.2, occurred_at=_row().created_at)
    back = row_from_json(row_to_json(row))
    assert back == row
    assert back.created_at.tzinfo is not None


def test_time_format_is_fixed_width_utc() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000+00:00"
    assert format_time(_row().created_at) == "2026-11-27T12:00:00.000000+00:00"


def test_storable_text_only_replaces_what_databases_cannot_hold() -> None:
    assert storable_text("plain ünïcode \U0001f600") == "plain ünïcode \U0001f600"
    assert storable_text("a\x00b") == "a\ufffdb"
    assert storable_text("lone \ud800 surrogate") == "lone ? surrogate"


def test_store_for_url(tmp_path: Path) -> None:
    assert store_for_url(None, str(tmp_path / "x.db"), 1).dialect == "sqlite"
    sqlite = store_for_url(f"sqlite:///{tmp_path}/y.db", "", 1)
    assert sqlite.path == tmp_path / "y.db"  # type: ignore[attr-defined]
    assert store_for_url("postgresql://u@h/db", "", 1).dialect == "postgresql"
    assert store_for_url("postgres://u@h/db", "", 1).dialect == "postgresql"
    with pytest.raises(ValueError, match="database_url"):
        store_for_url("mysql://h/db", "", 1)


def test_spill_files_round_trip_and_rejected_are_kept_apart(tmp_path: Path) -> None:
    spill = SpillFiles(tmp_path)
    rows = [_row(), _row()]
    spill.append(rows)
    spill.append([_row()], rejected=True)
    assert spill.pending() == []  # the open file is still being written
    spill.rotate()
    (path,) = spill.pending()
    claim = SpillFiles.claim(path)
    assert claim is not None
    assert claim.rows == rows
    assert SpillFiles.claim(path) is None  # locked by the first claim
    claim.done()
    assert not path.exists()
    assert len(list((tmp_path / "rejected").glob("*.jsonl"))) == 1


def test_a_range_splits_into_whole_days_whole_hours_and_raw_edges() -> None:
    from samo_serve.storage.request_log.store import RangeQuery

    start, end = datetime(2026, 3, 1, 22, 30, tzinfo=UTC), datetime(2026, 3, 4, 1, 15, tzinfo=UTC)
    p = RangeQuery("emotion", start, end).params()
    assert (p["lo"], p["dlo"], p["dhi"], p["hi"]) == (
        datetime(2026, 3, 1, 23, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 4, tzinfo=UTC),
        datetime(2026, 3, 4, 1, tzinfo=UTC),
    )
    inside = RangeQuery("emotion", start, start + timedelta(minutes=10)).params()  # no whole hour: all raw
    assert inside["lo"] == inside["hi"] == inside["dlo"] == inside["dhi"] == start + timedelta(minutes=10)


def test_histogram_percentiles_are_within_the_bucket_width() -> None:
    from samo_serve.storage.request_log.analytics import summary
    from samo_serve.storage.request_log.rollups import latency_bucket
    from samo_serve.storage.request_log.store import percentile_cont

    times = sorted(random.Random(3).uniform(0.5, 400) for _ in range(501))
    buckets: dict[int, int] = {}
    for t in times:
        buckets[latency_bucket(t)] = buckets.get(latency_bucket(t), 0) + 1
    got = summary([("miss", len(times), 1.0, 0.0, sum(times))], [(str(b), n) for b, n in buckets.items()])
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        assert got["processing_time_ms"][name] == pytest.approx(percentile_cont(times, q), rel=0.026)
    assert summary([], [])["processing_time_ms"] == {"p50": None, "p95": None, "mean": None}


def test_timeline_buckets_are_utc_and_weeks_start_on_monday() -> None:
    from samo_serve.storage.request_log.analytics import bucket_starts, timeline

    starts = bucket_starts(datetime(2026, 3, 4, 5, tzinfo=UTC), datetime(2026, 3, 17, tzinfo=UTC), "week")
    assert [s.date().isoformat() for s in starts] == ["2026-03-02", "2026-03-09", "2026-03-16"]
    hour = datetime(2026, 3, 4, 5, tzinfo=UTC)
    rows = [(hour, "joy", 2, 1.0, 1.6, 20.0), (hour.isoformat(), "anger", 1, 1.0, 0.5, 5.0)]
    out = timeline(rows, hour, hour + timedelta(days=2), "day", {"sentiment": {"joy": "positive"}})
    assert [b["texts"] for b in out] == [3, 0, 0]  # 05:00 on the 4th + 2 days ends on the 6th
    assert out[0]["emotions"]["joy"] == {"count": 2, "mean_score": pytest.approx(0.8)}
    assert out[0]["sentiment"] == {
        "anger": pytest.approx(0.3333, abs=1e-4),
        "positive": pytest.approx(0.6667, abs=1e-4),
    }


def test_timeline_months_clipped_bounds_every_group_and_valence() -> None:
    """Issue 29: bucket=month (calendar months, UTC), buckets clipped to [start, end), mean scores to 6
    places, every Ekman and sentiment group present (0 too), a valence figure, times with Z."""
    from samo_serve.storage.request_log.analytics import bucket_count, timeline

    groups = {"sentiment": {"joy": "positive", "anger": "negative", "neutral": "neutral", "surprise": "ambiguous"},
              "ekman": {"joy": "joy", "anger": "anger", "neutral": "neutral", "surprise": "surprise"}}  # fmt: skip
    start, end = datetime(2025, 12, 20, 6, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)
    assert bucket_count(start, end, "month") == 3
    assert bucket_count(start, datetime(2026, 1, 1, tzinfo=UTC), "month") == 1  # the end is exclusive
    hour = datetime(2026, 1, 10, 9, tzinfo=UTC)
    rows = [(hour, "joy", 3, 1.0, 3 * 0.8193999999999999, 1.0), (hour, "anger", 1, 1.0, 0.5, 1.0)]
    out = timeline(rows, start, end, "month", groups)
    assert [(b["start"], b["end"]) for b in out] == [
        ("2025-12-20T06:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("2026-02-01T00:00:00Z", "2026-02-03T00:00:00Z"),
    ]
    january = out[1]
    assert january["emotions"]["joy"]["mean_score"] == 0.8194
    assert january["sentiment"] == {"ambiguous": 0.0, "negative": 0.25, "neutral": 0.0, "positive": 0.75}
    assert january["ekman"] == {"anger": 0.25, "joy": 0.75, "neutral": 0.0, "surprise": 0.0}
    assert january["valence"] == 0.5  # 0.75 positive - 0.25 negative
    assert out[0]["valence"] is None  # no texts: no figure
    assert out[0]["sentiment"] == {"ambiguous": 0.0, "negative": 0.0, "neutral": 0.0, "positive": 0.0}


def test_rows_with_tenant_user_and_time_survive_a_spill_line_and_old_lines_replay() -> None:
    row = LogRow(
        uuid.uuid4(), datetime(2026, 3, 4, tzinfo=UTC), "r", None, "a" * 64, None, "joy", 0.5, "{}", "m", "miss",
        1.0, False, 1, "acme", "u1", datetime(2026, 3, 1, tzinfo=UTC), 2,
    )  # fmt: skip
    assert row_from_json(row_to_json(row)) == row
    old = json.loads(row_to_json(row))
    for name in ("tenant_id", "user_id", "occurred_at", "request_texts"):
        del old[name]  # a line spilled before tenancy
    replayed = row_from_json(json.dumps(old))
    assert (replayed.tenant_id, replayed.user_id, replayed.occurred_at, replayed.request_texts) == ("", None, None, 1)


def test_named_parameters_become_asyncpg_numbers_and_casts_stay() -> None:
    from samo_serve.storage.request_log.postgres import numbered

    sql, args = numbered("SELECT 1.0::float8 WHERE a = :user AND b = :tenant OR c = :user", {"user": 1, "tenant": 2})
    assert sql == "SELECT 1.0::float8 WHERE a = $1 AND b = $2 OR c = $1"
    assert args == [1, 2]
