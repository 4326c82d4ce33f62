"""Day partitions of ``emotion_requests`` on PostgreSQL: created ahead, dropped by retention.

A partition per UTC day of ``created_at`` is created for every day within retention and two days
ahead, so rows (the writer's, or a plain ``INSERT INTO emotion_requests``) land in one. A day whose
rows already sit in the default partition keeps them there (creating its partition would have to move
them); retention deletes such rows from the default partition in batches. Only one replica maintains
at a time (an advisory lock); the others skip.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import asyncpg

__all__ = ["maintain_partitions", "partition_name"]

_MAINTAIN_LOCK = 0x5A4D0_2
_AHEAD_DAYS = 2
_DELETE_BATCH = 10_000


def partition_name(day: date) -> str:
    return f"emotion_requests_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def _partitions(conn: asyncpg.Connection) -> dict[str, date]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'emotion_requests'::regclass AND c.relname ~ '^emotion_requests_p[0-9]{8}$'"
    )
    return {r["relname"]: datetime.strptime(r["relname"][-8:], "%Y%m%d").date() for r in rows}


async def _create_ahead(conn: asyncpg.Connection, existing: dict[str, date], first: date, last: date) -> int:
    created = 0
    day = first
    while day <= last:
        name, lo, hi = partition_name(day), _day_start(day), _day_start(day + timedelta(days=1))
        day += timedelta(days=1)
        if name in existing:
            continue
        busy = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM emotion_requests_default WHERE created_at >= $1 AND created_at < $2)", lo, hi
        )
        if busy:  # that day's rows stay in the default partition
            continue
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF emotion_requests "
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
        created += 1
    return created


async def maintain_partitions(conn: asyncpg.Connection, retention_days: int | None, now: datetime) -> dict[str, int]:
    """Create day partitions ahead and apply retention; counts of what was done (empty: another replica is)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _MAINTAIN_LOCK):
        return {}
    try:
        today = now.astimezone(UTC).date()
        first = today - timedelta(days=retention_days) if retention_days else today
        existing = await _partitions(conn)
        created = await _create_ahead(conn, existing, first, today + timedelta(days=_AHEAD_DAYS))
        dropped = deleted = 0
        if retention_days:
            cutoff = now - timedelta(days=retention_days)
            for name, day in sorted(existing.items(), key=lambda item: item[1]):
                if _day_start(day + timedelta(days=1)) <= cutoff:  # the whole day is past retention
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
                    dropped += 1
            while True:
                status = await conn.execute(
                    "DELETE FROM emotion_requests_default WHERE ctid IN "
                    "(SELECT ctid FROM emotion_requests_default WHERE created_at < $1 LIMIT $2)",
                    cutoff,
                    _DELETE_BATCH,
                )
                batch = int(status.rsplit(" ", 1)[-1])
                deleted += batch
                if batch < _DELETE_BATCH:
                    break
        return {"partitions_created": created, "partitions_dropped": dropped, "rows_deleted": deleted}
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MAINTAIN_LOCK)
