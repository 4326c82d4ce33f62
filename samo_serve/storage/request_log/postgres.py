"""The request log in PostgreSQL through an asyncpg pool.

The pool is created on first use and migrations run once per process, so a database that is down
when a replica starts only delays the log (rows queue, then spill), never the replica. A batch is one
statement: ``INSERT .. SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING ..`` feeding the
rollup upserts, so only rows actually stored are counted (a retry adds nothing twice), in one round trip.
The raw table is partitioned by day of ``created_at`` (postgres_partitions.py: retention drops days).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from samo_serve.storage.request_log import rollups
from samo_serve.storage.request_log.migrations import MIGRATIONS, MIGRATIONS_TABLE
from samo_serve.storage.request_log.postgres_partitions import maintain_partitions
from samo_serve.storage.request_log.rows import COLUMNS, LogRow
from samo_serve.storage.request_log.store import (
    Progress,
    RangeQuery,
    RejectedRows,
    replaced_rows,
    reported,
    superseded,
    user_filter,
)

__all__ = ["PostgresStore", "numbered"]

_LOCK_ID = 0x5A4D0_1  # pg_advisory_xact_lock key for migrations
_CONNECT_TIMEOUT_S = 5.0
# Hour buckets are UTC hours. No JIT: the planner guesses 100 rows from each jsonb_each of a row's cleared
# labels, so a rebuild of 200,000 rows was costed as 20 million and spent 8.8 s compiling a plan that
# ran in 0.9 s; every statement here is short or a plain scan, which JIT does not speed up.
_SERVER_SETTINGS = {"timezone": "UTC", "jit": "off"}
_TYPES = (
    "uuid", "timestamptz", "text", "text", "text", "text", "text",
    "float8", "text", "text", "text", "float8", "bool", "int4",
    "text", "text", "timestamptz", "int4", "text", "text",
)  # fmt: skip
_STORED = (
    "tenant_id, user_id, occurred_at, created_at, primary_emotion, confidence, cache_level, "
    "processing_time_ms, request_texts, cleared, model_version"
)  # what the rollups read of each row
_JSON = ("emotions", "cleared")


def _upserts(source: str, sign: int = 1, users: bool = True) -> str:
    """The rollup upserts of the rows of CTE ``source`` (the tenant rollups alone without ``users``), as CTEs
    of one statement."""
    statements = rollups.upsert_statements(rollups.POSTGRES, source, sign=sign)
    return ", ".join(f"r{i} AS ({sql})" for i, sql in enumerate(statements if users else statements[:1]))


_INSERT = (
    f"WITH ins AS (INSERT INTO emotion_requests ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(f'{c}::jsonb' if c in _JSON else c for c in COLUMNS)} "
    f"FROM unnest({', '.join(f'${i}::{t}[]' for i, t in enumerate(_TYPES, 1))}) AS t({', '.join(COLUMNS)}) "
    f"ON CONFLICT (id, created_at) DO NOTHING RETURNING {_STORED}), "
    f"{_upserts('ins')} SELECT count(*) FROM ins"
)
# A batch with entry ids (two statements more, in the insert's transaction; none for any other batch):
# each entry's lock (writers on several replicas take them in one order), then its stored rows that the
# batch replaces deleted and subtracted from the rollups, then the insert, which skips a row that a stored
# row of its entry is newer than. The batch itself keeps only its latest row per entry (insert()).
_ENTRY_COLUMNS = "id, created_at, tenant_id, entry_id"
_BATCH = f"SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) AS b({_ENTRY_COLUMNS})"
_LOCK_ENTRIES = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(tenant_id || chr(31) || entry_id, 0) "
    f"AS k FROM ({_BATCH}) AS b WHERE entry_id IS NOT NULL ORDER BY k) AS locks"
)
_REPLACE = (
    f"WITH batch AS ({_BATCH}), old AS (DELETE FROM emotion_requests e WHERE {replaced_rows('batch')} "
    f"RETURNING {', '.join(f'e.{c}' for c in _STORED.split(', '))}), "
    f"{_upserts('old', sign=-1)} SELECT count(*) FROM old"
)
_INSERT_ENTRIES = _INSERT.replace(
    f"AS t({', '.join(COLUMNS)}) ON CONFLICT", f"AS t({', '.join(COLUMNS)}) WHERE NOT ({superseded('t')}) ON CONFLICT"
)
_PARAM = re.compile(r"(?<!:):([a-z_]+)")


def numbered(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``:name`` parameters (the shared SQL's style) as asyncpg's ``$n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = _PARAM.sub(number, sql)
    return text, [params[n] for n in names]


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, dsn: str, statement_timeout_s: float, max_connections: int = 4) -> None:
        self._dsn = dsn
        self._timeout_s = statement_timeout_s
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._ready = False
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None and self._ready:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_connections,
                    command_timeout=self._timeout_s,
                    timeout=_CONNECT_TIMEOUT_S,
                    server_settings=_SERVER_SETTINGS,
                )
            if not self._ready:
                # its own connection, without the request path's command timeout: a migration that fills
                # rollups from the rows already there (5: the label dimension) reads the whole log
                conn = await asyncpg.connect(self._dsn, timeout=_CONNECT_TIMEOUT_S, server_settings=_SERVER_SETTINGS)
                try:
                    await self._apply_migrations(conn)
                finally:
                    await conn.close()
                self._ready = True
        return self._pool

    async def migrate(self) -> list[int]:
        pool = await self._get_pool()
        rows = await pool.fetch(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [int(r["version"]) for r in rows]

    @staticmethod
    async def _apply_migrations(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {MIGRATIONS_TABLE}")}
            applied: set[int] = set()
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.postgres:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
                applied.add(migration.version)
            for statement in rollups.fill_after_migrations(rollups.POSTGRES, applied):
                await conn.execute(statement)

    async def insert(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        pool = await self._get_pool()
        entries = any(row.entry_id is not None for row in rows)
        if entries:  # an entry sent twice in one batch: its latest row (as SQLite's _DROP_SUPERSEDED)
            latest: dict[tuple[str, str], LogRow] = {}
            for r in rows:
                if r.entry_id is not None:
                    key = (r.tenant_id, r.entry_id)
                    if key not in latest or (r.created_at, r.id) > (latest[key].created_at, latest[key].id):
                        latest[key] = r
            rows = [r for r in rows if r.entry_id is None or latest[(r.tenant_id, r.entry_id)] is r]
        columns = [[getattr(row, c) for row in rows] for c in COLUMNS]
        columns[COLUMNS.index("occurred_at")] = [row.occurred_at or row.created_at for row in rows]
        try:
            if not entries:
                stored: int = await pool.fetchval(_INSERT, *columns)
                return stored
            keys = [columns[COLUMNS.index(c)] for c in _ENTRY_COLUMNS.split(", ")]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOCK_ENTRIES, *keys)
                await conn.fetchval(_REPLACE, *keys)
                for statement in rollups.EMPTY_ROLLUPS:
                    await conn.execute(statement)
                stored = await conn.fetchval(_INSERT_ENTRIES, *columns)
                return stored
        except (asyncpg.DataError, UnicodeEncodeError) as exc:
            raise RejectedRows(f"{type(exc).__name__}: {exc}") from exc

    async def lookup(
        self, model_version: str, text_hashes: Sequence[str], tenant_id: str | None = None
    ) -> dict[str, tuple[str, bool]]:
        pool = await self._get_pool()
        tenant = "" if tenant_id is None else "AND tenant_id = $3 "
        rows = await pool.fetch(
            "SELECT DISTINCT ON (text_hash) text_hash, emotions::text AS emotions, truncated FROM emotion_requests "
            f"WHERE model_version = $1 AND text_hash = ANY($2::text[]) AND segment_count = 1 {tenant}"
            "ORDER BY text_hash, created_at DESC",
            model_version,
            list(text_hashes),
            *(() if tenant_id is None else (tenant_id,)),
        )
        return {r["text_hash"].strip(): (r["emotions"], bool(r["truncated"])) for r in rows}

    async def range(self, query: RangeQuery) -> list[tuple[Any, ...]]:
        sql, args = numbered(query.sql(rollups.POSTGRES), query.params())
        pool = await self._get_pool()
        return [tuple(r) for r in await pool.fetch(sql, *args)]

    async def rebuild_rollups(self, timeout_s: float | None = None, progress: Progress | None = None) -> None:
        await self._get_pool()  # migrated
        # Its own connection: a pool connection's command_timeout (the request path's statement_timeout_s)
        # applies to every call that passes none, so a rebuild of 5M rows died at 10 s with TimeoutError.
        conn = await asyncpg.connect(
            self._dsn, command_timeout=timeout_s, timeout=_CONNECT_TIMEOUT_S, server_settings=_SERVER_SETTINGS
        )
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL statement_timeout = {0 if timeout_s is None else int(timeout_s * 1000)}")
                for step, statement in rollups.rebuild_steps(rollups.POSTGRES):
                    with reported(progress, step):
                        await conn.execute(statement)
            for statement in rollups.ANALYZE_AFTER_REBUILD:
                with reported(progress, statement):
                    await conn.execute(statement)
        finally:
            await conn.close()

    async def user_texts(
        self, tenant_id: str | None, user_id: str, entry_id: str | None = None
    ) -> list[tuple[str, str, str]]:
        sql, args = numbered(
            "SELECT DISTINCT model_version, tenant_id, text_hash FROM emotion_requests "
            f"WHERE {user_filter(tenant_id, entry_id)} AND segment_count = 1",
            {"user": user_id, "tenant": tenant_id, "entry": entry_id},
        )
        pool = await self._get_pool()
        return [(r[0], r[1], r[2].strip()) for r in await pool.fetch(sql, *args)]

    async def erase_user(self, tenant_id: str | None, user_id: str, entry_id: str | None = None) -> int:
        """Delete the user's rows (one entry's, when given) and subtract exactly those rows from the tenant
        rollups (and, for one entry, from the user's), atomically; a whole person's user rollups go."""
        where = user_filter(tenant_id, entry_id)
        params = {"user": user_id, "tenant": tenant_id, "entry": entry_id}
        subtract = _upserts("del", sign=-1, users=entry_id is not None)
        erase, args = numbered(
            f"WITH del AS (DELETE FROM emotion_requests WHERE {where} RETURNING {_STORED}), "
            f"{subtract} SELECT count(*) FROM del",
            params,
        )
        forget = [
            numbered(f"DELETE FROM {table} WHERE {user_filter(tenant_id)}", params)
            for table in rollups.USER_ROLLUPS.values()
        ]
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            deleted: int = await conn.fetchval(erase, *args)
            if entry_id is None:
                for sql, forget_args in forget:
                    await conn.execute(sql, *forget_args)
            for statement in rollups.EMPTY_ROLLUPS:
                await conn.execute(statement)
        return deleted

    async def maintain(self, retention_days: int | None, now: datetime) -> dict[str, int]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            return await maintain_partitions(conn, retention_days, now)

    async def pin_references(self, tenant_id: str, references: dict[str, str], now: datetime) -> int:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            if not references:
                await conn.execute("DELETE FROM drift_references WHERE tenant_id = $1", tenant_id)
            for version, reference in references.items():
                await conn.execute(
                    "INSERT INTO drift_references VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (tenant_id, "
                    "model_version) DO UPDATE SET reference = excluded.reference, pinned_at = excluded.pinned_at",
                    tenant_id, version, reference, now,
                )  # fmt: skip
        return len(references)

    async def pinned_references(self) -> list[tuple[str, str, str]]:
        pool = await self._get_pool()
        rows = await pool.fetch("SELECT tenant_id, model_version, reference::text FROM drift_references")
        return [(r[0], r[1], r[2]) for r in rows]

    async def ping(self) -> None:
        pool = await self._get_pool()
        await pool.fetchval("SELECT 1", timeout=_CONNECT_TIMEOUT_S)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool, self._ready = self._pool, None, False
            try:
                await asyncio.wait_for(pool.close(), timeout=_CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
