"""Versioned, idempotent schema migrations for the request log, one list for both dialects.

Each migration runs once, in order, inside a transaction that also records it in
``samo_schema_migrations``; replicas starting together serialize on a lock (PostgreSQL: an advisory
lock; SQLite: ``BEGIN IMMEDIATE``), so the second one finds the work done. Add a migration by
appending to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "MIGRATIONS_TABLE", "Migration"]

MIGRATIONS_TABLE = "samo_schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]


_INDEXES = (
    # time-range analytics, per-key queries, and L3 lookups by text
    "CREATE INDEX IF NOT EXISTS emotion_requests_created_at ON emotion_requests (created_at)",
    "CREATE INDEX IF NOT EXISTS emotion_requests_key_time ON emotion_requests (api_key_id, created_at)",
    "CREATE INDEX IF NOT EXISTS emotion_requests_text ON emotion_requests (text_hash, model_version)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "create emotion_requests",
        postgres=(
            """
            CREATE TABLE IF NOT EXISTS emotion_requests (
                id uuid PRIMARY KEY,
                created_at timestamptz NOT NULL,
                request_id text NOT NULL,
                api_key_id text,
                text_hash char(64) NOT NULL,
                text text,
                primary_emotion text NOT NULL,
                confidence double precision NOT NULL,
                emotions jsonb NOT NULL,
                model_version text NOT NULL,
                cache_level text NOT NULL,
                processing_time_ms double precision NOT NULL,
                truncated boolean NOT NULL DEFAULT false
            )
            """,
            *_INDEXES,
        ),
        sqlite=(
            """
            CREATE TABLE IF NOT EXISTS emotion_requests (
                id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                request_id TEXT NOT NULL,
                api_key_id TEXT,
                text_hash TEXT NOT NULL,
                text TEXT,
                primary_emotion TEXT NOT NULL,
                confidence REAL NOT NULL,
                emotions TEXT NOT NULL,
                model_version TEXT NOT NULL,
                cache_level TEXT NOT NULL,
                processing_time_ms REAL NOT NULL,
                truncated INTEGER NOT NULL DEFAULT 0
            )
            """,
            *_INDEXES,
        ),
    ),
    Migration(
        2,
        "emotion_requests.segment_count",
        # one row per text, a document too: it records how many segments the model read (docs/STORAGE.md)
        postgres=("ALTER TABLE emotion_requests ADD COLUMN IF NOT EXISTS segment_count integer NOT NULL DEFAULT 1",),
        sqlite=("ALTER TABLE emotion_requests ADD COLUMN segment_count INTEGER NOT NULL DEFAULT 1",),
    ),
)
