"""The request-log writer against real databases: batching, outages, spill and replay, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from samo_serve.settings import RequestLogSettings
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.store import LogStore, store_for_url
from samo_serve.storage.request_log.writer import LogWriter
from testkit.local_services import PostgresServer

from .helpers import count_rows, make_row

FAST = {"flush_interval_ms": 20, "retry_max_backoff_s": 0.2, "statement_timeout_s": 3}


def make_writer(store: LogStore, spill_dir: Path, **settings: object) -> LogWriter:
    return LogWriter(store, RequestLogSettings(**{**FAST, **settings}), SpillFiles(spill_dir))


async def test_rows_are_written_in_batches(store: LogStore, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path, flush_rows=50)
    writer.start()
    for _ in range(12):
        writer.enqueue([make_row() for _ in range(25)])
    assert await writer.flush()
    await writer.stop(5)
    assert await count_rows(store) == 300
    c = writer.counters
    assert (c.queued, c.written, c.spilled, c.dropped, c.rejected) == (300, 300, 0, 0, 0)


async def test_enqueue_never_waits_for_the_database(store: LogStore, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path, flush_interval_ms=60_000, flush_rows=10_000)
    writer.start()
    writer.enqueue([make_row()])
    await asyncio.sleep(0.05)
    assert writer.pending == 1  # not written until the interval, the row bound, a flush or a stop
    await writer.stop(5)
    assert await count_rows(store) == 1


async def test_postgres_outage_loses_no_row(fresh_postgres: PostgresServer, tmp_path: Path) -> None:
    store = store_for_url(fresh_postgres.url, "", 3)
    writer = make_writer(store, tmp_path / "spill", queue_max_rows=100, flush_rows=40)
    writer.start()
    sent = 0
    for _ in range(5):
        writer.enqueue([make_row() for _ in range(10)])
        sent += 10
    assert await writer.flush()
    fresh_postgres.stop()  # like a crash
    for _ in range(30):  # 300 rows while the database is down: 100 queue, the rest spill
        writer.enqueue([make_row() for _ in range(10)])
        sent += 10
        await asyncio.sleep(0.01)
    assert writer.database_up is False
    assert writer.pending <= 100
    assert writer.counters.spilled >= 200
    assert list((tmp_path / "spill").glob("*.jsonl"))
    fresh_postgres.start()
    assert await writer.flush(timeout_s=30)
    await writer.stop(5)
    assert await count_rows(store) == sent
    c = writer.counters
    assert c.replayed == c.spilled
    assert c.dropped == 0
    assert not list((tmp_path / "spill").glob("*.jsonl"))  # replayed files are gone
    await store.close()


async def test_stop_while_the_database_is_down_spills_and_the_next_start_replays(
    fresh_postgres: PostgresServer, tmp_path: Path
) -> None:
    store = store_for_url(fresh_postgres.url, "", 3)
    await store.migrate()
    fresh_postgres.stop()
    writer = make_writer(store, tmp_path / "spill", flush_rows=10)
    writer.start()
    writer.enqueue([make_row() for _ in range(25)])
    await asyncio.sleep(0.2)
    await writer.stop(5)
    assert writer.counters.spilled == 25
    assert writer.pending == 0

    fresh_postgres.start()
    await store.close()
    store = store_for_url(fresh_postgres.url, "", 3)
    next_writer = make_writer(store, tmp_path / "spill")  # e.g. the replica after a restart
    next_writer.start()
    assert await next_writer.flush()
    await next_writer.stop(5)
    assert next_writer.counters.replayed == 25
    assert await count_rows(store) == 25
    await store.close()


async def test_a_spill_file_another_writer_holds_is_not_replayed(store: LogStore, tmp_path: Path) -> None:
    other = SpillFiles(tmp_path)
    other.append([make_row() for _ in range(3)])  # still open and locked by its owner
    writer = make_writer(store, tmp_path)
    writer.start()
    assert await writer.flush()
    assert writer.counters.replayed == 0
    other.rotate()  # the owner closes it (or dies): now it can be replayed
    writer._spill_waiting = True
    assert await writer.flush()
    await writer.stop(5)
    assert writer.counters.replayed == 3
    assert await count_rows(store) == 3


async def test_a_torn_spill_line_is_counted_not_fatal(store: LogStore, tmp_path: Path) -> None:
    spill = SpillFiles(tmp_path)
    spill.append([make_row(), make_row()])
    spill.rotate()
    (path,) = tmp_path.glob("*.jsonl")
    path.write_text(path.read_text() + '{"id": "cut sho', encoding="utf-8")  # a crash mid-write
    writer = make_writer(store, tmp_path)
    writer.start()
    assert await writer.flush()
    await writer.stop(5)
    assert (writer.counters.replayed, writer.counters.dropped) == (2, 1)


async def test_rows_the_database_refuses_are_set_aside_not_retried_forever(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    store = store_for_url(postgres_server.url, "", 3)
    good, bad = make_row(datetime.now(UTC)), make_row()
    bad = dataclasses.replace(bad, text="nul \x00 inside")  # PostgreSQL text cannot hold NUL
    writer = make_writer(store, tmp_path)
    writer.start()
    writer.enqueue([bad])
    writer.enqueue([good])
    assert await writer.flush()
    await writer.stop(5)
    assert (writer.counters.rejected, writer.counters.written) == (1, 1)
    assert list((tmp_path / "rejected").glob("*.jsonl"))
    assert good.text_hash in await store.lookup(good.model_version, [good.text_hash])
    await store.close()
