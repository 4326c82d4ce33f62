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


def _rollup_tables(time_type: str, int_type: str, float_type: str, user_table: str | None = None) -> tuple[str, ...]:
    """The tenant and user rollup tables (migration 3), or one more user table of their shape (5)."""
    sums = f"texts {int_type} NOT NULL, requests {float_type} NOT NULL, confidence_sum {float_type} NOT NULL, "
    sums += f"ms_sum {float_type} NOT NULL"
    user = (
        f"CREATE TABLE IF NOT EXISTS {user_table or 'emotion_rollup_user'} (tenant_id text NOT NULL, "
        f"user_id text NOT NULL, bucket {time_type} NOT NULL, emotion text NOT NULL, {sums}, "
        "PRIMARY KEY (tenant_id, user_id, bucket, emotion))"
    )
    if user_table is not None:
        return (user,)
    return (
        f"CREATE TABLE IF NOT EXISTS emotion_rollup_tenant (dim text NOT NULL, span text NOT NULL, "
        f"tenant_id text NOT NULL, bucket {time_type} NOT NULL, key text NOT NULL, {sums}, "
        "PRIMARY KEY (dim, span, bucket, tenant_id, key))",
        user,
    )


_V3_INDEXES = (
    "CREATE INDEX IF NOT EXISTS emotion_requests_created_at ON emotion_requests (created_at)",
    "CREATE INDEX IF NOT EXISTS emotion_requests_key_time ON emotion_requests (api_key_id, created_at)",
    "CREATE INDEX IF NOT EXISTS emotion_requests_text ON emotion_requests (text_hash, model_version)",
    "CREATE INDEX IF NOT EXISTS emotion_requests_user ON emotion_requests (tenant_id, user_id)",
    # the partial first and last hour of an analytics range are read raw, by the time analytics bucket by
    "CREATE INDEX IF NOT EXISTS emotion_requests_occurred ON emotion_requests ((coalesce(occurred_at, created_at)))",
)

_PG_V3_TABLE = """
    CREATE TABLE emotion_requests (
        id uuid NOT NULL,
        created_at timestamptz NOT NULL,
        request_id text NOT NULL,
        api_key_id text,
        text_hash text NOT NULL,
        text text,
        primary_emotion text NOT NULL,
        confidence double precision NOT NULL,
        emotions jsonb NOT NULL,
        model_version text NOT NULL,
        cache_level text NOT NULL,
        processing_time_ms double precision NOT NULL,
        truncated boolean NOT NULL DEFAULT false,
        segment_count integer NOT NULL DEFAULT 1,
        tenant_id text NOT NULL DEFAULT '',
        user_id text,
        occurred_at timestamptz,
        request_texts integer NOT NULL DEFAULT 1,
        PRIMARY KEY (id, created_at)
    ) PARTITION BY RANGE (created_at)
"""
_OLD_COLUMNS = (
    "id, created_at, request_id, api_key_id, text_hash, text, primary_emotion, confidence, emotions, "
    "model_version, cache_level, processing_time_ms, truncated, segment_count"
)

MIGRATIONS += (
    Migration(
        3,
        "tenant, user and occurred_at; day partitions (PostgreSQL); hourly rollups",
        # PostgreSQL: retention drops whole day partitions (the store creates them ahead); rows of days
        # without a partition (history loaded later, or rows from before this version) live in the default
        # partition, from which retention deletes in batches. Rollups are filled from the rows already here.
        postgres=(
            "ALTER TABLE emotion_requests RENAME TO emotion_requests_v2",
            _PG_V3_TABLE,
            "CREATE TABLE emotion_requests_default PARTITION OF emotion_requests DEFAULT",
            f"INSERT INTO emotion_requests ({_OLD_COLUMNS}) SELECT {_OLD_COLUMNS} FROM emotion_requests_v2",
            "DROP TABLE emotion_requests_v2",
            *_V3_INDEXES,
            *_rollup_tables("timestamptz", "bigint", "double precision"),
        ),
        sqlite=(
            "ALTER TABLE emotion_requests ADD COLUMN tenant_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE emotion_requests ADD COLUMN user_id TEXT",
            "ALTER TABLE emotion_requests ADD COLUMN occurred_at TEXT",
            "ALTER TABLE emotion_requests ADD COLUMN request_texts INTEGER NOT NULL DEFAULT 1",
            *_V3_INDEXES,
            *_rollup_tables("TEXT", "INTEGER", "REAL"),
        ),
    ),
)

_ENTRY_INDEX = (
    # an entry's rows by (tenant, entry_id): an edit replaces them, a delete erases them (never found by text)
    "CREATE INDEX IF NOT EXISTS emotion_requests_entry ON emotion_requests (tenant_id, entry_id) "
    "WHERE entry_id IS NOT NULL"
)

MIGRATIONS += (
    Migration(
        4,
        "emotion_requests.entry_id",
        postgres=("ALTER TABLE emotion_requests ADD COLUMN IF NOT EXISTS entry_id text", _ENTRY_INDEX),
        sqlite=("ALTER TABLE emotion_requests ADD COLUMN entry_id TEXT", _ENTRY_INDEX),
    ),
)

MIGRATIONS += (
    Migration(
        5,
        "emotion_requests.cleared; label rollups",
        # the labels that cleared their tuned thresholds, with their scores (a JSON object): timelines count
        # a text under each of them (rollups.py's label dimension); filled from the rows already there
        postgres=(
            "ALTER TABLE emotion_requests ADD COLUMN IF NOT EXISTS cleared jsonb",
            *_rollup_tables("timestamptz", "bigint", "double precision", user_table="emotion_rollup_user_label"),
        ),
        sqlite=(
            "ALTER TABLE emotion_requests ADD COLUMN cleared TEXT",
            *_rollup_tables("TEXT", "INTEGER", "REAL", user_table="emotion_rollup_user_label"),
        ),
    ),
)

MIGRATIONS += (
    Migration(
        6,
        "drift_references",
        # a window of a tenant's texts an operator pinned as its drift reference (samo-serve drift pin), per
        # model version: the mix and confidence shares as JSON, no text and no user
        postgres=(
            "CREATE TABLE IF NOT EXISTS drift_references (tenant_id text NOT NULL, model_version text NOT NULL, "
            "reference jsonb NOT NULL, pinned_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, model_version))",
        ),
        sqlite=(
            "CREATE TABLE IF NOT EXISTS drift_references (tenant_id TEXT NOT NULL, model_version TEXT NOT NULL, "
            "reference TEXT NOT NULL, pinned_at TEXT NOT NULL, PRIMARY KEY (tenant_id, model_version))",
        ),
    ),
)
