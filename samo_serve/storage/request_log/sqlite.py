"""The embedded default request log: one SQLite file, the same table and queries as PostgreSQL.

sqlite3 blocks, so every call runs in a worker thread on one connection behind a lock. WAL mode lets
several ingress replicas on one machine share the file (readers never block the writer).
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from samo_serve.storage.request_log.migrations import MIGRATIONS, MIGRATIONS_TABLE
from samo_serve.storage.request_log.rows import COLUMNS, LogRow, format_time
from samo_serve.storage.request_log.store import RejectedRows, Summary

__all__ = ["SqliteStore"]

T = TypeVar("T")
_INSERT = f"INSERT OR IGNORE INTO emotion_requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_WHERE = "FROM emotion_requests WHERE created_at >= ? AND created_at < ?"


def _values(row: LogRow) -> tuple[Any, ...]:
    return tuple(
        str(v) if c == "id" else format_time(v) if c == "created_at" else int(v) if c == "truncated" else v
        for c, v in ((c, getattr(row, c)) for c in COLUMNS)
    )


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, path: str | Path, statement_timeout_s: float) -> None:
        self.path = Path(path)
        self._timeout_s = statement_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Replicas opening a new file at once: switching it to WAL can fail with "database is locked"
            # at once, without waiting out the busy timeout (7 % of 4-way starts here). One opener at a
            # time, across processes; a lock file beside the database, because closing any descriptor of
            # the database file itself would drop SQLite's own POSIX locks in this process.
            with open(self.path.with_name(self.path.name + ".init-lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
                )
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
                    self._apply_migrations(conn)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _apply_migrations(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # one replica at a time
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            )
            done = {v for (v,) in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
            for migration in MIGRATIONS:
                if migration.version not in done:
                    for statement in migration.sqlite:
                        conn.execute(statement)
                    conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (?, ?)",
                        (migration.version, migration.name),
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._connection())

        return await asyncio.to_thread(locked)

    async def migrate(self) -> list[int]:
        rows = await self._run(lambda c: c.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY 1").fetchall())
        return [int(v) for (v,) in rows]

    async def insert(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        values = [_values(r) for r in rows]

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.execute("BEGIN")
            try:
                conn.executemany(_INSERT, values)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

        try:
            return await self._run(write)
        except (sqlite3.IntegrityError, sqlite3.DataError, UnicodeEncodeError) as exc:
            raise RejectedRows(f"{type(exc).__name__}: {exc}") from exc

    async def lookup(self, model_version: str, text_hashes: Sequence[str]) -> dict[str, tuple[str, bool]]:
        hashes = list(dict.fromkeys(text_hashes))
        if not hashes:
            return {}
        sql = (
            "SELECT text_hash, emotions, truncated FROM emotion_requests "
            f"WHERE model_version = ? AND text_hash IN ({', '.join('?' for _ in hashes)}) AND segment_count = 1 "
            "ORDER BY created_at"
        )
        rows = await self._run(lambda c: c.execute(sql, (model_version, *hashes)).fetchall())
        return {h: (e, bool(t)) for h, e, t in rows}  # ascending time: the latest row wins

    async def emotion_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        sql = (
            "SELECT primary_emotion, count(*) AS n, avg(confidence), avg(processing_time_ms) "
            f"{_WHERE} GROUP BY primary_emotion ORDER BY n DESC, primary_emotion"
        )
        rows = await self._run(lambda c: c.execute(sql, (format_time(start), format_time(end))).fetchall())
        return [
            {"emotion": e, "count": n, "mean_confidence": conf, "mean_processing_ms": ms} for e, n, conf, ms in rows
        ]

    async def summary(self, start: datetime, end: datetime) -> Summary:
        bounds = (format_time(start), format_time(end))

        def query(conn: sqlite3.Connection) -> Summary:
            texts, requests, mean = conn.execute(
                f"SELECT count(*), count(DISTINCT request_id), avg(processing_time_ms) {_WHERE}", bounds
            ).fetchone()
            levels = dict(conn.execute(f"SELECT cache_level, count(*) {_WHERE} GROUP BY cache_level", bounds))
            # SQLite has no percentile_cont: read the (at most two) neighbours of each percentile's position.
            percentiles: list[float | None] = []
            for q in (0.5, 0.95):
                position = q * (texts - 1)
                lo = math.floor(position)
                near = [
                    v
                    for (v,) in conn.execute(
                        f"SELECT processing_time_ms {_WHERE} ORDER BY processing_time_ms LIMIT 2 OFFSET ?",
                        (*bounds, lo),
                    )
                ]
                if not near:
                    percentiles.append(None)
                    continue
                hi_value = near[-1]  # percentile_cont: linear between the neighbours of the position
                percentiles.append(float(near[0] + (hi_value - near[0]) * (position - lo)))
            return Summary(texts, requests, levels, percentiles[0], percentiles[1], mean)

        return await self._run(query)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
