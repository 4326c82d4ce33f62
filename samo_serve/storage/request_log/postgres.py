"""The request log in PostgreSQL through an asyncpg pool.

The pool is created on first use and migrations run once per process, so a database that is down
when a replica starts only delays the log (rows queue, then spill), never the replica. A batch is one
``INSERT .. SELECT FROM unnest(arrays) ON CONFLICT (id) DO NOTHING``: one round trip, idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from samo_serve.storage.request_log.migrations import MIGRATIONS, MIGRATIONS_TABLE
from samo_serve.storage.request_log.rows import COLUMNS, LogRow
from samo_serve.storage.request_log.store import RejectedRows, Summary

__all__ = ["PostgresStore"]

_LOCK_ID = 0x5A4D0_1  # pg_advisory_xact_lock key for migrations
_CONNECT_TIMEOUT_S = 5.0
_TYPES = (
    "uuid", "timestamptz", "text", "text", "text", "text", "text",
    "float8", "text", "text", "text", "float8", "bool", "int4",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO emotion_requests ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join('emotions::jsonb' if c == 'emotions' else c for c in COLUMNS)} "
    f"FROM unnest({', '.join(f'${i}::{t}[]' for i, t in enumerate(_TYPES, 1))}) AS t({', '.join(COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)


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
                )
            if not self._ready:
                await self._apply_migrations(self._pool)
                self._ready = True
        return self._pool

    async def migrate(self) -> list[int]:
        pool = await self._get_pool()
        rows = await pool.fetch(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [int(r["version"]) for r in rows]

    @staticmethod
    async def _apply_migrations(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {MIGRATIONS_TABLE}")}
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.postgres:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)", migration.version, migration.name
                )

    async def insert(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        pool = await self._get_pool()
        columns = [[getattr(row, c) for row in rows] for c in COLUMNS]
        try:
            status: str = await pool.execute(_INSERT, *columns)
        except (asyncpg.DataError, UnicodeEncodeError) as exc:
            raise RejectedRows(f"{type(exc).__name__}: {exc}") from exc
        return int(status.rsplit(" ", 1)[-1])

    async def lookup(self, model_version: str, text_hashes: Sequence[str]) -> dict[str, tuple[str, bool]]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            "SELECT DISTINCT ON (text_hash) text_hash, emotions::text AS emotions, truncated FROM emotion_requests "
            "WHERE model_version = $1 AND text_hash = ANY($2::text[]) AND segment_count = 1 "
            "ORDER BY text_hash, created_at DESC",
            model_version,
            list(text_hashes),
        )
        return {r["text_hash"].strip(): (r["emotions"], bool(r["truncated"])) for r in rows}

    async def emotion_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            "SELECT primary_emotion, count(*) AS n, avg(confidence) AS conf, avg(processing_time_ms) AS ms "
            "FROM emotion_requests WHERE created_at >= $1 AND created_at < $2 "
            "GROUP BY primary_emotion ORDER BY n DESC, primary_emotion",
            start,
            end,
        )
        return [
            {
                "emotion": r["primary_emotion"],
                "count": r["n"],
                "mean_confidence": r["conf"],
                "mean_processing_ms": r["ms"],
            }
            for r in rows
        ]

    async def summary(self, start: datetime, end: datetime) -> Summary:
        pool = await self._get_pool()
        where = "FROM emotion_requests WHERE created_at >= $1 AND created_at < $2"
        totals = await pool.fetchrow(
            "SELECT count(*) AS texts, count(DISTINCT request_id) AS requests, avg(processing_time_ms) AS mean, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY processing_time_ms) AS p50, "
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_time_ms) AS p95 {where}",
            start,
            end,
        )
        levels = await pool.fetch(f"SELECT cache_level, count(*) AS n {where} GROUP BY cache_level", start, end)
        assert totals is not None
        return Summary(
            texts=totals["texts"],
            requests=totals["requests"],
            by_cache_level={r["cache_level"]: r["n"] for r in levels},
            p50_ms=totals["p50"],
            p95_ms=totals["p95"],
            mean_ms=totals["mean"],
        )

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
