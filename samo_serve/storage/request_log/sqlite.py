"""The embedded default request log: one SQLite file, the same table and queries as PostgreSQL.

sqlite3 blocks, so every call runs in a worker thread on one connection behind a lock. WAL mode lets
several ingress replicas on one machine share the file (readers never block the writer).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from samo_serve.storage.files import create_private, open_private, private_dir
from samo_serve.storage.request_log import rollups
from samo_serve.storage.request_log.migrations import MIGRATIONS, MIGRATIONS_TABLE
from samo_serve.storage.request_log.rows import COLUMNS, LogRow, format_time
from samo_serve.storage.request_log.store import (
    Progress,
    RangeQuery,
    RejectedRows,
    replaced_rows,
    reported,
    superseded,
    user_filter,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")
_DELETE_BATCH = 5_000
# A batch is staged in a temporary table: the rows not stored yet are inserted and added to the rollups
# from there, in one transaction (so a retried batch counts nothing twice).
_BATCH_TABLE = f"CREATE TEMP TABLE IF NOT EXISTS samo_batch (id TEXT PRIMARY KEY, {', '.join(COLUMNS[1:])})"
# Staged by multi-row INSERTs of up to this many rows, not executemany: sqlite3 lets go of the GIL around
# every statement it steps, and a worker thread waits up to the interpreter's switch interval (5 ms) to get it
# back from a busy event loop, once per row with executemany (measured: 1,000 rows took 20 ms on an idle
# process and ~4 s beside one busy Python thread, so a loaded server spilled half its rows to disk)
_STAGE_ROWS = 1_000
_ROW_PLACEHOLDERS = f"({', '.join('?' for _ in COLUMNS)})"


@functools.cache
def _stage(rows: int) -> str:
    return f"INSERT OR IGNORE INTO samo_batch ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW_PLACEHOLDERS] * rows)}"


# Correlated, so each staged id is one primary-key probe: `id IN (SELECT id FROM main.emotion_requests)` reads
# the whole table's key index per batch (SQLite walks the IN list), a cost that grew with the log (measured:
# the writer thread was a third of the one-process server's samples at ~1,000 rows/s with 15k rows stored)
_DROP_STORED = "DELETE FROM samo_batch WHERE EXISTS (SELECT 1 FROM main.emotion_requests r WHERE r.id = samo_batch.id)"
# An entry's rows: the batch keeps its latest row per (tenant, entry_id), drops the ones a stored row is newer
# than, and replaces (subtracting their rollups first) the stored ones it is newer than. Only run for a batch
# that has entry ids: nothing is added to the common batch.
_DROP_SUPERSEDED = (
    "DELETE FROM samo_batch WHERE entry_id IS NOT NULL AND (EXISTS (SELECT 1 FROM samo_batch l "
    "WHERE l.tenant_id = samo_batch.tenant_id AND l.entry_id = samo_batch.entry_id AND (l.created_at > "
    "samo_batch.created_at OR l.created_at = samo_batch.created_at AND l.id > samo_batch.id)) "
    f"OR {superseded('samo_batch')})"
)
_REPLACED = replaced_rows("samo_batch")
_SUBTRACT_REPLACED = rollups.upsert_statements(rollups.SQLITE, "emotion_requests AS e", _REPLACED, sign=-1)
_DELETE_REPLACED = f"DELETE FROM emotion_requests AS e WHERE {_REPLACED}"
_INSERT = f"INSERT INTO emotion_requests ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM samo_batch"
_ROLLUP_UPSERTS = rollups.upsert_statements(rollups.SQLITE, "samo_batch")


def _values(row: LogRow) -> tuple[Any, ...]:
    values = {c: getattr(row, c) for c in COLUMNS}
    values["id"] = str(row.id)
    values["created_at"] = format_time(row.created_at)
    values["occurred_at"] = format_time(row.occurred_at or row.created_at)
    values["truncated"] = int(row.truncated)
    return tuple(values.values())


def _math_functions(conn: sqlite3.Connection) -> None:
    """``ln`` and ``floor`` for the rollups' latency bucket, in Python where SQLite was built without them."""
    try:
        conn.execute("SELECT ln(2.0), floor(2.5)")
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("floor", 1, math.floor, deterministic=True)


@contextmanager
def _in_transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """The block in one transaction: committed at its end, rolled back if it (or the commit) fails."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _transaction(conn: sqlite3.Connection, statements: list[tuple[str, dict[str, Any]]]) -> int:
    """Run the statements in one write transaction; the rows the last one changed."""
    changed = 0
    with _in_transaction(conn):
        for sql, params in statements:
            changed = conn.execute(sql, params).rowcount
    return changed


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, path: str | Path, statement_timeout_s: float) -> None:
        self.path = Path(path)
        self._timeout_s = statement_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            private_dir(self.path.parent)
            # Replicas opening a new file at once: switching it to WAL can fail with "database is locked"
            # at once, without waiting out the busy timeout (7 % of 4-way starts here). One opener at a
            # time, across processes; a lock file beside the database, because closing any descriptor of
            # the database file itself would drop SQLite's own POSIX locks in this process.
            with open_private(self.path.with_name(self.path.name + ".init-lock")) as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                # owner-only before SQLite makes it (it gives its -wal and -shm the database's own mode)
                create_private(self.path, *(self.path.with_name(f"{self.path.name}{end}") for end in ("-wal", "-shm")))
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
                )
                try:
                    _math_functions(conn)
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
                    self._apply_migrations(conn)
                    conn.execute(_BATCH_TABLE)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _apply_migrations(conn: sqlite3.Connection) -> None:
        with _in_transaction(conn):  # one replica at a time
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            )
            done = {v for (v,) in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
            applied: set[int] = set()
            for migration in MIGRATIONS:
                if migration.version not in done:
                    for statement in migration.sqlite:
                        conn.execute(statement)
                    conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (?, ?)",
                        (migration.version, migration.name),
                    )
                    applied.add(migration.version)
            for statement in rollups.fill_after_migrations(rollups.SQLITE, applied):
                conn.execute(statement)

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
        entries = any(r.entry_id is not None for r in rows)

        def write(conn: sqlite3.Connection) -> int:
            per = max(1, min(_STAGE_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)))
            with _in_transaction(conn, "BEGIN"):
                conn.execute("DELETE FROM samo_batch")
                for i in range(0, len(values), per):
                    chunk = values[i : i + per]
                    conn.execute(_stage(len(chunk)), [v for row in chunk for v in row])
                conn.execute(_DROP_STORED)
                if entries:
                    for statement in (_DROP_SUPERSEDED, *_SUBTRACT_REPLACED, _DELETE_REPLACED, *rollups.EMPTY_ROLLUPS):
                        conn.execute(statement)
                stored: int = conn.execute(_INSERT).rowcount
                for statement in _ROLLUP_UPSERTS:
                    conn.execute(statement)
            return stored

        try:
            return await self._run(write)
        except (sqlite3.IntegrityError, sqlite3.DataError, UnicodeEncodeError) as exc:
            raise RejectedRows(f"{type(exc).__name__}: {exc}") from exc

    async def lookup(
        self, model_version: str, text_hashes: Sequence[str], tenant_id: str | None = None
    ) -> dict[str, tuple[str, bool]]:
        hashes = list(dict.fromkeys(text_hashes))
        if not hashes:
            return {}
        tenant = "" if tenant_id is None else "AND tenant_id = ? "
        sql = (
            "SELECT text_hash, emotions, truncated FROM emotion_requests "
            f"WHERE model_version = ? AND text_hash IN ({', '.join('?' for _ in hashes)}) AND segment_count = 1 "
            f"{tenant}ORDER BY created_at"
        )
        args = (model_version, *hashes, *(() if tenant_id is None else (tenant_id,)))
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return {h: (e, bool(t)) for h, e, t in rows}  # ascending time: the latest row wins

    async def range(self, query: RangeQuery) -> list[tuple[Any, ...]]:
        sql, params = query.sql(rollups.SQLITE), query.params(format_time)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [tuple(r) for r in rows]

    async def rebuild_rollups(self, timeout_s: float | None = None, progress: Progress | None = None) -> None:
        # SQLite has no statement timeout (its busy timeout is the connection's): timeout_s is the protocol's

        def rebuild(conn: sqlite3.Connection) -> None:
            with _in_transaction(conn):
                for step, statement in rollups.rebuild_steps(rollups.SQLITE):
                    with reported(progress, step):
                        conn.execute(statement)
            for statement in rollups.ANALYZE_AFTER_REBUILD:
                with reported(progress, statement):
                    conn.execute(statement)

        await self._run(rebuild)

    async def user_texts(
        self, tenant_id: str | None, user_id: str, entry_id: str | None = None
    ) -> list[tuple[str, str, str]]:
        where = user_filter(tenant_id, entry_id)
        sql = (
            "SELECT DISTINCT model_version, tenant_id, text_hash FROM emotion_requests "
            f"WHERE {where} AND segment_count = 1"
        )
        params = {"user": user_id, "tenant": tenant_id, "entry": entry_id}
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [(str(v), str(t), str(h)) for v, t, h in rows]

    async def erase_user(self, tenant_id: str | None, user_id: str, entry_id: str | None = None) -> int:
        where = user_filter(tenant_id, entry_id)
        params = {"user": user_id, "tenant": tenant_id, "entry": entry_id}
        subtract, *subtract_user = rollups.upsert_statements(rollups.SQLITE, "emotion_requests", where, sign=-1)
        # a whole person: their user rollups go; one entry: its part of them is subtracted
        user = [(f"DELETE FROM {t} WHERE {user_filter(tenant_id)}", params) for t in rollups.USER_ROLLUPS.values()]
        if entry_id is not None:
            user = [(sql, params) for sql in subtract_user]

        def erase(conn: sqlite3.Connection) -> int:
            return _transaction(
                conn,
                [
                    (subtract, params),
                    *user,
                    *((sql, {}) for sql in rollups.EMPTY_ROLLUPS),
                    (f"DELETE FROM emotion_requests WHERE {where}", params),
                ],
            )

        return await self._run(erase)

    async def maintain(self, retention_days: int | None, now: datetime) -> dict[str, int]:
        if not retention_days:
            return {"rows_deleted": 0}
        cutoff = format_time(now - timedelta(days=retention_days))
        sql = (
            "DELETE FROM emotion_requests WHERE rowid IN "
            "(SELECT rowid FROM emotion_requests WHERE created_at < ? LIMIT ?)"
        )
        deleted = 0
        while True:  # short transactions: the writer gets the file between batches
            batch = await self._run(lambda c: c.execute(sql, (cutoff, _DELETE_BATCH)).rowcount)
            deleted += batch
            if batch < _DELETE_BATCH:
                return {"rows_deleted": deleted}

    async def pin_references(self, tenant_id: str, references: dict[str, str], now: datetime) -> int:
        statements: list[tuple[str, dict[str, Any]]] = []
        if not references:
            statements.append(("DELETE FROM drift_references WHERE tenant_id = :tenant", {"tenant": tenant_id}))
        for version, reference in references.items():
            params = {"tenant": tenant_id, "version": version, "reference": reference, "at": format_time(now)}
            statements.append(
                ("INSERT OR REPLACE INTO drift_references VALUES (:tenant, :version, :reference, :at)", params)
            )
        await self._run(lambda c: _transaction(c, statements) if statements else 0)
        return len(references)

    async def pinned_references(self) -> list[tuple[str, str, str]]:
        sql = "SELECT tenant_id, model_version, reference FROM drift_references"
        rows = await self._run(lambda c: c.execute(sql).fetchall())
        return [(str(t), str(v), str(r)) for t, v, r in rows]

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
