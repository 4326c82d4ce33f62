"""Rollups, retention, erasure and the keyed text hash on real PostgreSQL and a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from samo_serve.settings import Settings
from samo_serve.storage.request_log import RequestLog, TextHasher
from samo_serve.storage.request_log.rows import LogRow, format_time
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.store import LogStore

from .helpers import T0, count_rows, make_row

GROUPS = {"ekman": {"joy": "joy", "anger": "anger", "sadness": "sadness"}, "sentiment": {"joy": "positive"}}
EMOTIONS = ("joy", "anger", "neutral", "sadness")
LABELS = (*EMOTIONS, "grief")  # the card's labels: grief never clears in these rows, and is listed with 0


def _log(store: LogStore, data_dir: Path) -> RequestLog:
    return RequestLog(store, Settings(data_dir=data_dir), GROUPS, LABELS)


def _cleared(rng: random.Random, primary: str, confidence: float) -> dict[str, float] | None:
    """What a row's labels cleared: its primary and up to two more, none, or (a row from before the column)
    not recorded, when it counts its primary alone."""
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.25:
        return {}
    others = rng.sample([e for e in EMOTIONS if e != primary], rng.randint(0, 2))
    return {primary: confidence, **{e: rng.random() * confidence for e in others}}


def _labels_of(row: LogRow) -> dict[str, float]:
    return {row.primary_emotion: row.confidence} if row.cleared is None else json.loads(row.cleared)


def _assert_labels(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert list(got) == list(expected)
    for label, want in expected.items():
        assert got[label]["count"] == want["count"], label
        assert got[label]["mean_score"] == (
            None if want["mean_score"] is None else pytest.approx(want["mean_score"], abs=2e-6)
        )


def _expected_labels(inside: list[LogRow]) -> dict[str, dict[str, Any]]:
    """Per label of LABELS: the rows it cleared in and its mean score over them, computed from the rows."""
    scores: dict[str, list[float]] = {label: [] for label in LABELS}
    for row in inside:
        for label, score in _labels_of(row).items():
            scores[label].append(score)
    return {
        label: {"count": len(s), "mean_score": round(sum(s) / len(s), 6) if s else None} for label, s in scores.items()
    }


def _rows(rng: random.Random, n: int = 300) -> list[LogRow]:
    """Requests of 1-3 texts of one tenant/user at one time, over two days and two tenants."""
    rows: list[LogRow] = []
    while len(rows) < n:
        texts, at = rng.randint(1, 3), T0 + timedelta(seconds=rng.uniform(-3600, 2 * 86400))
        tenant, user = rng.choice(("A", "B")), rng.choice(("u1", "u2", "u3", None))
        occurred = at - timedelta(hours=rng.randint(0, 5)) if rng.random() < 0.3 else None
        request = uuid.uuid4().hex
        for _ in range(texts):
            emotion, confidence = rng.choice(EMOTIONS), rng.random()
            rows.append(
                make_row(
                    at,
                    request_id=request,
                    request_texts=texts,
                    emotion=emotion,
                    confidence=confidence,
                    level=rng.choice(("miss", "l1", "l3")),
                    ms=rng.uniform(0.5, 300),
                    tenant=tenant,
                    user=user,
                    occurred_at=occurred,
                    cleared=_cleared(rng, emotion, confidence),
                )
            )
    return rows


def _when(row: LogRow) -> datetime:
    return row.occurred_at or row.created_at


def _expected(rows: list[LogRow], start: datetime, end: datetime, tenant: str | None, user: str | None) -> Any:
    inside = [
        r
        for r in rows
        if start <= _when(r) < end and tenant in (None, r.tenant_id) and (user is None or r.user_id == user)
    ]
    by_emotion: dict[str, list[LogRow]] = {}
    for r in inside:
        by_emotion.setdefault(r.primary_emotion, []).append(r)
    return inside, by_emotion


@pytest.mark.parametrize("tenant", [None, "A"])
async def test_rollups_equal_a_direct_computation_for_any_range(
    store: LogStore, tmp_path: Path, tenant: str | None
) -> None:
    rng = random.Random(11)
    rows = _rows(rng)
    for i in range(0, len(rows), 37):  # several batches, each upserting the rollups
        await store.insert(rows[i : i + 37])
    log = _log(store, tmp_path)
    ranges = [(T0 - timedelta(hours=2), T0 + timedelta(days=3))]  # whole days, hours and raw edges
    ranges += [(T0 + timedelta(minutes=rng.uniform(-90, 2500)), T0 + timedelta(minutes=rng.uniform(2600, 3000)))]
    ranges += [(T0 + timedelta(minutes=7), T0 + timedelta(minutes=43))]  # inside one hour: raw only
    for start, end in ranges:
        inside, by_emotion = _expected(rows, start, end, tenant, None)
        counts = {c["emotion"]: c for c in await log.emotion_counts(start, end, tenant)}
        assert {e: c["count"] for e, c in counts.items()} == {e: len(rs) for e, rs in by_emotion.items()}
        for e, rs in by_emotion.items():
            assert counts[e]["mean_confidence"] == pytest.approx(sum(r.confidence for r in rs) / len(rs), rel=1e-9)
        summary = await log.summary(start, end, tenant)
        assert summary["texts"] == len(inside)
        assert summary["requests"] == len({r.request_id for r in inside})
        levels = {lv: sum(r.cache_level == lv for r in inside) for lv in {r.cache_level for r in inside}}
        assert summary["cache"]["by_level"] == levels
        # every label a text cleared, not only its primary: the whole range (inside one month) as one bucket
        (whole,) = await log.timeline(tenant, None, start, end, "month")
        _assert_labels(whole["labels"], _expected_labels(inside))


async def test_user_timeline_and_summary_equal_direct_counts(store: LogStore, tmp_path: Path) -> None:
    rows = _rows(random.Random(5))
    await store.insert(rows)
    log = _log(store, tmp_path)
    start, end = T0 - timedelta(hours=3, minutes=10), T0 + timedelta(days=2, hours=1)
    timeline = await log.timeline("A", "u1", start, end, "day")
    # calendar days, the first and last clipped to the range asked for
    assert [b["start"] for b in timeline] == ["2026-11-27T08:50:00Z", "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"]
    assert [b["end"] for b in timeline] == ["2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "2026-11-29T13:00:00Z"]
    for bucket in timeline:
        lo, hi = (datetime.fromisoformat(bucket[k]) for k in ("start", "end"))
        inside, by_emotion = _expected(rows, lo, hi, "A", "u1")
        assert bucket["texts"] == len(inside)
        assert {e: v["count"] for e, v in bucket["emotions"].items()} == {e: len(r) for e, r in by_emotion.items()}
        if inside:
            assert sum(bucket["ekman"].values()) == pytest.approx(1.0, abs=1e-3)
        _assert_labels(bucket["labels"], _expected_labels(inside))
    summary = await log.summary(start, end, "A", "u1")
    _assert_labels(summary["labels"], _expected_labels(_expected(rows, start, end, "A", "u1")[0]))
    inside, _ = _expected(rows, start, end, "A", "u1")
    assert (await log.summary(start, end, "A", "u1"))["texts"] == len(inside)
    # a user id of one tenant is not the same user in another; unknown users are empty, not errors
    other, _ = _expected(rows, start, end, "B", "u1")
    assert (await log.summary(start, end, "B", "u1"))["texts"] == len(other)
    assert all(b["texts"] == 0 for b in await log.timeline("A", "nobody", start, end, "hour"))


async def _plain_insert(store: LogStore, row: LogRow) -> None:
    """A row loaded from outside the service: plain SQL, no rollups touched, no occurred_at."""
    if store.dialect == "postgresql":
        pool = await store._get_pool()  # type: ignore[attr-defined]
        await pool.execute(
            "INSERT INTO emotion_requests (id, created_at, request_id, text_hash, primary_emotion, confidence, "
            "emotions, model_version, cache_level, processing_time_ms, tenant_id, user_id) "
            "VALUES ($1, $2, 'plain', $3, 'joy', 0.9, '{}', 'm-1', 'miss', 3.0, 'A', 'u9')",
            row.id,
            row.created_at,
            row.text_hash,
        )
    else:
        await store._run(  # type: ignore[attr-defined]
            lambda c: c.execute(
                "INSERT INTO emotion_requests (id, created_at, request_id, text_hash, primary_emotion, confidence, "
                "emotions, model_version, cache_level, processing_time_ms, tenant_id, user_id) "
                "VALUES (?, ?, 'plain', ?, 'joy', 0.9, '{}', 'm-1', 'miss', 3.0, 'A', 'u9')",
                (str(row.id), format_time(row.created_at), row.text_hash),
            )
        )


async def test_rows_inserted_by_plain_sql_count_after_rebuild(store: LogStore, tmp_path: Path) -> None:
    await store.insert([make_row(T0, tenant="A", user="u9")])
    old = datetime.now(UTC) - timedelta(days=20)  # any time: a default partition or one made ahead takes it
    for at in (T0 + timedelta(minutes=5), old):
        await _plain_insert(store, make_row(at))
    log = _log(store, tmp_path)
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=1)
    assert (await log.summary(start, end, "A", "u9"))["texts"] == 1  # not in the rollups yet
    await log.rebuild_rollups()
    assert (await log.summary(start, end, "A", "u9"))["texts"] == 2
    assert (await log.summary(start, end, "A"))["texts"] == 2
    assert (await log.summary(old - timedelta(hours=1), old + timedelta(days=1), "A"))["texts"] == 1
    await log.rebuild_rollups()  # idempotent
    assert (await log.summary(start, end, "A"))["texts"] == 2


async def test_retention_drops_old_raw_rows_and_keeps_rollups(store: LogStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await store.maintain(10, now)  # PostgreSQL: day partitions for the last 10 days and ahead
    old, fresh = now - timedelta(days=8), now - timedelta(hours=2)
    await store.insert([make_row(old, text_hash="b" * 64, user="u1"), make_row(fresh, text_hash="c" * 64)])
    log = _log(store, tmp_path)
    await store.maintain(5, now)
    assert set(await store.lookup("m-1", ["b" * 64, "c" * 64])) == {"c" * 64}  # the old raw row is gone
    whole = (now - timedelta(days=30), now + timedelta(hours=1))
    assert (await log.summary(*whole))["texts"] == 2  # ... and still counted by the rollups
    day = old.replace(hour=0, minute=0, second=0, microsecond=0)
    assert (await log.timeline("", "u1", day, day + timedelta(days=1), "day"))[0]["texts"] == 1


async def test_erasure_removes_rows_rollups_queue_and_spill_files(store: LogStore, tmp_path: Path) -> None:
    mine = [make_row(T0, tenant="A", user="u1", text_hash="d" * 64) for _ in range(3)]
    theirs = make_row(T0, tenant="B", user="u1", text_hash="e" * 64)  # the same user id in another tenant
    await store.insert([*mine, theirs, make_row(T0, tenant="A", user="u2")])
    log = _log(store, tmp_path)
    spill = SpillFiles(tmp_path / "spill")
    spill.append([make_row(T0, tenant="A", user="u1"), make_row(T0, tenant="B", user="u1")])
    spill.rotate()
    log.writer.spill = spill
    log.writer.enqueue([make_row(T0, tenant="A", user="u1")])

    assert await log.erase_user("A", "u1") == 3
    start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    assert (await log.summary(start, end, "A", "u1"))["texts"] == 0
    assert (await log.summary(start, end, "A"))["texts"] == 1  # u2's row; u1's are subtracted
    assert (await log.summary(start, end, "B", "u1"))["texts"] == 1  # the other tenant's u1 is intact
    assert await store.lookup("m-1", ["d" * 64], "A") == {}  # L3 cannot answer from erased rows
    assert set(await store.lookup("m-1", ["e" * 64], "B")) == {"e" * 64}
    claims = [claim for path in spill.pending() if (claim := spill.claim(path)) is not None]
    left = [r for claim in claims for r in claim.rows]
    for claim in claims:
        claim.release()
    assert [(r.tenant_id, r.user_id) for r in left] == [("B", "u1")]
    assert log.writer.pending == 0
    assert await log.erase_user("A", "nobody") == 0
    assert await count_rows(store) == 2


async def test_l3_is_per_tenant_unless_asked_for_any(store: LogStore) -> None:
    await store.insert([make_row(T0, tenant="A", text_hash="f" * 64)])
    assert set(await store.lookup("m-1", ["f" * 64], "A")) == {"f" * 64}
    assert await store.lookup("m-1", ["f" * 64], "B") == {}
    assert set(await store.lookup("m-1", ["f" * 64])) == {"f" * 64}


def test_text_hash_is_keyed_stable_across_restarts_and_not_bare_sha256(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first, again = TextHasher.from_settings(settings), TextHasher.from_settings(settings)
    assert first.text_hash("ok") == again.text_hash("ok") == again.text_hash("  ok ")  # the key file is reused
    assert first.text_hash("ok") != hashlib.sha256(b"ok").hexdigest()
    assert (tmp_path / "request-log.key").stat().st_mode & 0o777 == 0o600
    other = TextHasher.from_settings(Settings(data_dir=tmp_path / "elsewhere"))
    assert other.text_hash("ok") != first.text_hash("ok")  # another key, another hash
    configured = Settings(data_dir=tmp_path, request_log={"hash_key": "k" * 32})
    assert TextHasher.from_settings(configured).text_hash("ok") != first.text_hash("ok")
    assert "k" * 32 not in repr(TextHasher.from_settings(configured))


async def test_latency_buckets_in_sql_equal_the_python_definition(store: LogStore) -> None:
    """Both dialects bucket processing times in SQL; every bucket matches ``latency_bucket``, at the edges too."""
    from collections import Counter

    from samo_serve.storage.request_log.rollups import LATENCY_RATIO, latency_bucket
    from samo_serve.storage.request_log.store import RangeQuery

    rng = random.Random(8)
    times = [0.0, 0.0001, 0.001, 0.0011, 1.0, 1.05, 3.0, 10_000.0, 3_600_000.0]
    times += [LATENCY_RATIO**k * f for k in range(-20, 200, 7) for f in (0.999, 1.001)]  # either side of an edge
    times += [rng.uniform(0.01, 500) for _ in range(300)]
    await store.insert([make_row(T0 + timedelta(minutes=i % 50), ms=t, tenant="A") for i, t in enumerate(times)])
    for start, end in ((T0, T0 + timedelta(hours=1)), (T0 + timedelta(minutes=1), T0 + timedelta(minutes=49))):
        got = {int(key): int(texts) for key, texts, *_ in await store.range(RangeQuery("latency", start, end, "A"))}
        inside = [t for i, t in enumerate(times) if start <= T0 + timedelta(minutes=i % 50) < end]
        assert got == dict(Counter(latency_bucket(t) for t in inside))


def _seed_plain(database_url: str, n: int) -> None:
    """``n`` rows loaded as an import would load them: plain SQL, no rollups (and the tables emptied first)."""
    import asyncio
    import sqlite3

    from samo_serve.storage.request_log.store import store_for_url

    async def migrate_and_seed() -> None:
        store = store_for_url(database_url, "", statement_timeout_s=600)
        await store.migrate()
        if store.dialect == "postgresql":
            pool = await store._get_pool()  # type: ignore[attr-defined]
            await pool.execute("TRUNCATE emotion_requests, emotion_rollup_tenant, emotion_rollup_user")
            await pool.execute(
                "INSERT INTO emotion_requests (id, created_at, request_id, text_hash, primary_emotion, confidence, "
                "emotions, model_version, cache_level, processing_time_ms, tenant_id, user_id) "
                "SELECT gen_random_uuid(), $1::timestamptz + g * interval '1 second', 'plain', md5(g::text), 'joy', "
                "0.5, '{}', 'm-1', 'miss', 1 + g % 300, 'A', 'u' || (g % 50) FROM generate_series(1, $2) AS g",
                T0,
                n,
            )
        await store.close()

    asyncio.run(migrate_and_seed())
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.executemany(
                "INSERT INTO emotion_requests (id, created_at, request_id, text_hash, primary_emotion, confidence, "
                "emotions, model_version, cache_level, processing_time_ms, tenant_id, user_id) "
                "VALUES (?, ?, 'plain', ?, 'joy', 0.5, '{}', 'm-1', 'miss', ?, 'A', ?)",
                [
                    (str(uuid.uuid4()), format_time(T0 + timedelta(seconds=g)), f"{g:064x}", 1 + g % 300, f"u{g % 50}")
                    for g in range(1, n + 1)
                ],
            )


def test_log_rebuild_rollups_has_no_request_path_timeout_reports_steps_and_analyzes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI as an operator runs it, with a request-path statement timeout far below what the rebuild takes
    (it used the request path's timeout: 5M rows died with asyncpg TimeoutError), and the planner's
    statistics of the rewritten tables current afterwards."""
    import asyncio
    import json

    from samo_serve.ops.cli import main
    from samo_serve.storage.request_log.store import store_for_url

    n = 40_000
    _seed_plain(database_url, n)
    monkeypatch.setenv("SAMO_DATABASE_URL", database_url)
    monkeypatch.setenv("SAMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAMO_REQUEST_LOG__STATEMENT_TIMEOUT_S", "0.05")
    assert main(["log", "rebuild-rollups"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rebuilt"] is True
    assert "samo-serve: tenant rollups from the raw rows:" in err
    assert "samo-serve: ANALYZE emotion_rollup_tenant:" in err
    assert main(["log", "rebuild-rollups", "--timeout", "0"]) == 2

    async def check() -> tuple[int, int]:
        store = store_for_url(database_url, "", statement_timeout_s=600)
        log = RequestLog(store, Settings(data_dir=tmp_path / "data"))
        texts = (await log.summary(T0, T0 + timedelta(days=2), "A"))["texts"]
        if store.dialect == "postgresql":
            pool = await store._get_pool()  # type: ignore[attr-defined]
            analyzed = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
                "('emotion_rollup_tenant', 'emotion_rollup_user') AND last_analyze IS NOT NULL"
            )
        else:
            analyzed = await store._run(  # type: ignore[attr-defined]
                lambda c: c.execute(
                    "SELECT count(DISTINCT tbl) FROM sqlite_stat1 WHERE tbl IN "
                    "('emotion_rollup_tenant', 'emotion_rollup_user')"
                ).fetchone()[0]
            )
        await store.close()
        return texts, int(analyzed)

    assert asyncio.run(check()) == (n, 2)
