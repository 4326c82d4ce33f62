"""The request-log stores on real PostgreSQL and a real SQLite file: schema, idempotent writes, L3, analytics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from samo_serve.settings import Settings
from samo_serve.storage.request_log import RequestLog
from samo_serve.storage.request_log.migrations import MIGRATIONS
from samo_serve.storage.request_log.rows import LogRow
from samo_serve.storage.request_log.store import LogStore, RejectedRows, percentile_cont, store_for_url

from .helpers import T0, count_rows, make_row

LEVELS = ("l1", "l2", "l3", "miss")


def _log(store: LogStore, data_dir: Path) -> RequestLog:
    """The service's analytics over this store (rollups + raw edges)."""
    return RequestLog(store, Settings(data_dir=data_dir))


EMOTIONS = ("joy", "anger", "neutral", "sadness")


async def test_migrations_are_recorded_and_idempotent(store: LogStore) -> None:
    expected = [m.version for m in MIGRATIONS]
    assert await store.migrate() == expected
    assert await store.migrate() == expected


async def _migrate_at_once(url: str, replicas: int = 4) -> list[list[int]]:
    """What each of ``replicas`` stores opened on ``url`` at the same time reports as migrated."""
    stores = [store_for_url(url, "", 10) for _ in range(replicas)]
    try:
        return list(await asyncio.gather(*(s.migrate() for s in stores)))
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_replicas_migrating_at_once_do_not_collide(database_url: str) -> None:
    results = await _migrate_at_once(database_url)
    assert all(r == [m.version for m in MIGRATIONS] for r in results)


async def test_replicas_opening_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    # Four openers on a fresh file used to fail ~7 % of the time switching it to WAL ("database is
    # locked", no busy wait): 25 fresh files make a regression show in most runs.
    for round_ in range(25):
        results = await _migrate_at_once(f"sqlite:///{tmp_path / f'fresh-{round_}.sqlite3'}")
        assert all(r == [m.version for m in MIGRATIONS] for r in results), round_


async def test_insert_is_idempotent_by_row_id(store: LogStore) -> None:
    rows = [make_row() for _ in range(5)]
    assert await store.insert(rows) == 5
    assert await store.insert(rows) == 0  # a retried or replayed batch stores nothing twice
    assert await store.insert([*rows, make_row()]) == 1
    assert await count_rows(store) == 6


async def test_round_trip_of_every_column(store: LogStore) -> None:
    row = make_row(scores={"joy": 0.25, "anger": 0.125}, key_id="key-1", level="l2", ms=3.5)
    await store.insert([row])
    found = await store.lookup("m-1", [row.text_hash])
    assert json.loads(found[row.text_hash][0]) == {"joy": 0.25, "anger": 0.125}
    assert found[row.text_hash][1] is False


async def test_lookup_is_per_model_version_and_takes_the_latest(store: LogStore) -> None:
    h = "b" * 64
    await store.insert(
        [
            make_row(T0, text_hash=h, scores={"joy": 0.1}),
            make_row(T0 + timedelta(seconds=1), text_hash=h, scores={"joy": 0.9}),
            make_row(T0 + timedelta(seconds=2), text_hash=h, version="m-2", scores={"joy": 0.5}),
        ]
    )
    found = await store.lookup("m-1", [h, "c" * 64])
    assert set(found) == {h}
    assert json.loads(found[h][0]) == {"joy": 0.9}
    assert await store.lookup("m-3", [h]) == {}


async def test_nul_in_text_is_refused_as_content_not_as_an_outage(store: LogStore) -> None:
    row = make_row()
    bad = dataclasses.replace(row, text="a\x00b")
    if store.dialect == "postgresql":
        with pytest.raises(RejectedRows):
            await store.insert([bad])
    else:  # SQLite stores NUL inside text
        assert await store.insert([bad]) == 1


def _random_rows(n: int, rng: random.Random) -> list[LogRow]:
    rows = []
    at = T0
    for i in range(n):
        if i % 3 == 0:  # the texts of one request are logged at one time, as the service does
            at = T0 + timedelta(seconds=rng.uniform(-600, 4200))
        rows.append(
            make_row(
                at,
                request_id=f"req-{i // 3}",  # some requests carry several texts
                request_texts=min(3, n - i // 3 * 3),
                emotion=rng.choice(EMOTIONS),
                confidence=rng.random(),
                level=rng.choice(LEVELS),
                ms=rng.uniform(0.5, 200.0),
            )
        )
    return rows


async def test_analytics_equal_a_direct_computation_over_the_same_rows(store: LogStore, tmp_path: Path) -> None:
    rows = _random_rows(400, random.Random(7))
    await store.insert(rows)
    start, end = T0, T0 + timedelta(hours=1)
    inside = [r for r in rows if start <= r.created_at < end]
    assert 0 < len(inside) < len(rows)

    log = _log(store, tmp_path)
    by_emotion = {e["emotion"]: e for e in await log.emotion_counts(start, end)}
    for emotion in EMOTIONS:
        mine = [r for r in inside if r.primary_emotion == emotion]
        got = by_emotion[emotion]
        assert got["count"] == len(mine)
        assert got["mean_confidence"] == pytest.approx(sum(r.confidence for r in mine) / len(mine), rel=1e-9)
        assert got["mean_processing_ms"] == pytest.approx(sum(r.processing_time_ms for r in mine) / len(mine), rel=1e-9)
    counts = [e["count"] for e in by_emotion.values()]
    assert counts == sorted(counts, reverse=True)

    summary = await log.summary(start, end)
    times = sorted(r.processing_time_ms for r in inside)
    assert summary["texts"] == len(inside)
    assert summary["requests"] == len({r.request_id for r in inside})
    hits = sum(r.cache_level != "miss" for r in inside)
    assert summary["cache"]["hit_rate"] == round(hits / len(inside), 4)
    assert summary["cache"]["by_level"] == {lv: sum(r.cache_level == lv for r in inside) for lv in LEVELS}
    # percentiles come from the 5 %-wide latency histogram of the rollups: within 2.5 %
    assert summary["processing_time_ms"]["p50"] == pytest.approx(percentile_cont(times, 0.5), rel=0.026)
    assert summary["processing_time_ms"]["p95"] == pytest.approx(percentile_cont(times, 0.95), rel=0.026)
    assert summary["processing_time_ms"]["mean"] == pytest.approx(sum(times) / len(times), rel=1e-9)


async def test_analytics_of_an_empty_range(store: LogStore, tmp_path: Path) -> None:
    await store.insert([make_row(T0)])
    start = T0 + timedelta(days=1)
    log = _log(store, tmp_path)
    assert await log.emotion_counts(start, start + timedelta(hours=1)) == []
    summary = await log.summary(start, start + timedelta(hours=1))
    assert summary["texts"] == summary["requests"] == 0
    assert summary["processing_time_ms"] == {"p50": None, "p95": None, "mean": None}


async def test_range_is_half_open(store: LogStore, tmp_path: Path) -> None:
    await store.insert([make_row(T0), make_row(T0 + timedelta(hours=1))])
    assert (await _log(store, tmp_path).summary(T0, T0 + timedelta(hours=1)))["texts"] == 1


def test_percentile_cont_matches_postgres_definition() -> None:
    assert percentile_cont([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile_cont([10.0], 0.95) == 10.0
    assert percentile_cont([0.0, 100.0], 0.95) == pytest.approx(95.0)
    assert percentile_cont([], 0.5) is None


async def test_a_document_row_is_one_text_and_never_answers_l3(store: LogStore) -> None:
    single, document = make_row(text_hash="d" * 64), dataclasses.replace(make_row(text_hash="e" * 64), segment_count=7)
    await store.insert([single, document])
    assert set(await store.lookup("m-1", ["d" * 64, "e" * 64])) == {"d" * 64}  # L3 answers single texts only
    assert await count_rows(store) == 2  # analytics count texts: a document is one, whatever its segments


async def test_a_version_1_sqlite_log_gains_segment_count(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as conn:  # a log written before documents: migration 1 only
        conn.execute("CREATE TABLE samo_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for statement in MIGRATIONS[0].sqlite:
            conn.execute(statement)
        conn.execute("INSERT INTO samo_schema_migrations VALUES (1, 'create emotion_requests')")
        conn.execute(
            "INSERT INTO emotion_requests VALUES ('old', '2026-01-01T00:00:00+00:00', 'r', NULL, ?, NULL, 'joy', "
            "0.5, '{\"joy\": 0.5}', 'm-1', 'miss', 1.0, 0)",
            ("f" * 64,),
        )
    store = store_for_url(f"sqlite:///{path}", "", statement_timeout_s=10)
    try:
        assert await store.migrate() == [m.version for m in MIGRATIONS]
        assert set(await store.lookup("m-1", ["f" * 64])) == {"f" * 64}  # old rows are single texts
        assert await store.insert([dataclasses.replace(make_row(), segment_count=3)]) == 1
    finally:
        await store.close()


async def test_a_version_4_log_gains_label_rollups_counting_old_rows_by_their_primary(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite3"
    with sqlite3.connect(path) as conn:  # a log written before the label dimension: migrations 1-4
        conn.execute("CREATE TABLE samo_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for migration in MIGRATIONS[:4]:
            for statement in migration.sqlite:
                conn.execute(statement)
            conn.execute("INSERT INTO samo_schema_migrations VALUES (?, ?)", (migration.version, migration.name))
        at = T0.isoformat(timespec="microseconds")
        conn.execute(
            "INSERT INTO emotion_requests (id, created_at, request_id, text_hash, primary_emotion, confidence, "
            "emotions, model_version, cache_level, processing_time_ms, tenant_id, user_id, occurred_at) "
            "VALUES ('old', ?, 'r', ?, 'anger', 0.75, '{\"anger\": 0.75}', 'm-1', 'miss', 1.0, 'A', 'u1', ?)",
            (at, "f" * 64, at),
        )
    store = store_for_url(f"sqlite:///{path}", "", statement_timeout_s=10)
    try:
        assert await store.migrate() == [m.version for m in MIGRATIONS]
        await store.insert([make_row(T0, tenant="A", user="u1", emotion="joy", cleared={"joy": 0.9, "anger": 0.5})])
        log = RequestLog(store, Settings(data_dir=tmp_path), labels=["anger", "joy"])
        start, end = T0.replace(hour=0, minute=0), T0.replace(hour=0, minute=0) + timedelta(days=1)
        (day,) = await log.timeline("A", "u1", start, end, "day")
        assert day["labels"] == {"anger": {"count": 2, "mean_score": 0.625}, "joy": {"count": 1, "mean_score": 0.9}}
    finally:
        await store.close()


async def test_a_sqlite_batch_is_a_few_statements_whatever_its_size(tmp_path: Path) -> None:
    """Per-row statements (executemany) or per-row Python functions hand the GIL back and forth once per row,
    and a writer thread beside a busy event loop then waits for it each time: a batch must be a fixed
    handful of statements."""
    from samo_serve.storage.request_log.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "log.sqlite3", 5.0)
    await store.migrate()
    statements: dict[int, list[str]] = {}
    for size in (10, 3_000):
        traced: list[str] = []
        trace = traced.append
        await store._run(lambda c, trace=trace: c.set_trace_callback(trace))
        assert await store.insert([make_row(T0 + timedelta(seconds=i), ms=1 + i) for i in range(size)]) == size
        await store._run(lambda c: c.set_trace_callback(None))
        statements[size] = traced
    assert len(statements[3_000]) <= len(statements[10]) + 3, statements[3_000]
    assert len(statements[3_000]) < 20
    assert await count_rows(store) == 3_010
    await store.close()
