"""What a request-log database does, whichever it is (PostgreSQL or the embedded SQLite file)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from samo_serve.storage.request_log.rollups import Dialect, Dim, range_query
from samo_serve.storage.request_log.rows import LogRow

__all__ = [
    "LogStore",
    "Progress",
    "RangeQuery",
    "RejectedRows",
    "percentile_cont",
    "reported",
    "store_for_url",
    "replaced_rows",
    "storable_text",
    "superseded",
    "user_filter",
]

#: told what a long maintenance statement did and how long it took: (step, seconds)
Progress = Callable[[str, float], None]


@contextmanager
def reported(progress: Progress | None, step: str) -> Iterator[None]:
    """Time the block and tell ``progress`` (if any) when it is done."""
    started = time.perf_counter()
    yield
    if progress is not None:
        progress(step, time.perf_counter() - started)


def user_filter(tenant_id: str | None, entry_id: str | None = None) -> str:
    """The rows of ``:user`` (of ``:tenant``, unless every tenant's; only entry ``:entry``'s when one is
    given): the same text in both dialects."""
    where = "user_id = :user" + ("" if tenant_id is None else " AND tenant_id = :tenant")
    return where + ("" if entry_id is None else " AND entry_id = :entry")


def replaced_rows(batch: str) -> str:
    """Where a stored row ``e`` is replaced by the incoming rows ``batch`` (a table or CTE of id,
    created_at, tenant_id, entry_id): the same (tenant, entry_id), written no later, and not one of the
    batch's own rows (a retried batch replaces nothing of itself). Both dialects."""
    return (
        f"e.entry_id IS NOT NULL AND (e.tenant_id, e.entry_id) IN "
        f"(SELECT tenant_id, entry_id FROM {batch} WHERE entry_id IS NOT NULL) AND EXISTS (SELECT 1 FROM {batch} b "
        "WHERE b.tenant_id = e.tenant_id AND b.entry_id = e.entry_id AND b.created_at >= e.created_at AND b.id <> e.id)"
    )


def superseded(row: str) -> str:
    """Where the incoming row ``row`` is older than a stored row of its entry: it is not stored (a spill
    file replayed after an edit must not undo the edit). Both dialects."""
    return (
        f"{row}.entry_id IS NOT NULL AND EXISTS (SELECT 1 FROM emotion_requests n WHERE n.tenant_id = {row}.tenant_id "
        f"AND n.entry_id = {row}.entry_id AND n.created_at > {row}.created_at)"
    )


class RejectedRows(Exception):
    """The database refused these rows' content (not a connection problem): retrying cannot help."""


class LogStore(Protocol):
    #: "postgresql" or "sqlite"
    dialect: str

    async def migrate(self) -> list[int]:
        """Apply pending migrations; returns every applied version. Connects first if needed."""
        ...

    async def insert(self, rows: Sequence[LogRow]) -> int:
        """Store rows and add them to the rollups, ignoring ids already stored (a retry stores and counts
        nothing twice). A row with an ``entry_id`` replaces the stored rows of its (tenant, entry_id) that
        are not newer (their rollups subtracted), and is dropped where a newer one is stored (a replayed
        spill file never undoes an edit). Returns rows added.

        Raises:
            RejectedRows: the content was refused. Any other error means: try again later.
        """
        ...

    async def lookup(
        self, model_version: str, text_hashes: Sequence[str], tenant_id: str | None = None
    ) -> dict[str, tuple[str, bool]]:
        """Earlier results by text hash for this model version (and tenant): hash -> (emotions JSON, truncated)."""
        ...

    async def range(self, query: RangeQuery) -> list[tuple[Any, ...]]:
        """The query's rows: [hour,] key, texts, requests, confidence_sum, ms_sum."""
        ...

    async def rebuild_rollups(self, timeout_s: float | None = None, progress: Progress | None = None) -> None:
        """Recompute the rollups of every hour that has raw rows (rows loaded by plain SQL included), in one
        transaction, then refresh the planner's statistics of the rollup tables. ``timeout_s``: per
        statement (None: none, not the request path's ``statement_timeout_s``); ``progress(step, seconds)``
        after each statement."""
        ...

    async def user_texts(
        self, tenant_id: str | None, user_id: str, entry_id: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(model_version, tenant_id, text_hash) of the user's single-segment rows (one entry's, when given),
        distinct: what their cache entries are keyed by (a document's segments are not in the log)."""
        ...

    async def erase_user(self, tenant_id: str | None, user_id: str, entry_id: str | None = None) -> int:
        """Delete the user's rows (of one tenant, or every tenant; of one entry, when given) and exactly
        their part of the rollups; rows deleted."""
        ...

    async def maintain(self, retention_days: int | None, now: datetime) -> dict[str, int]:
        """Partitions ahead (PostgreSQL) and retention of raw rows; counts of what was done."""
        ...

    async def pin_references(self, tenant_id: str, references: dict[str, str], now: datetime) -> int:
        """Keep ``references`` (model version -> reference JSON) as the tenant's drift references, replacing
        the ones of those versions; with none, the tenant's are removed. Versions stored."""
        ...

    async def pinned_references(self) -> list[tuple[str, str, str]]:
        """(tenant_id, model_version, reference JSON) of every pinned drift reference."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class RangeQuery:
    """Sums per key of one rollup dimension over [start, end), for one tenant / user or all."""

    dim: Dim
    start: datetime
    end: datetime
    tenant_id: str | None = None
    user_id: str | None = None
    by_hour: bool = False
    #: with by_hour: whole days as one row each (from the day rollups), for buckets of a day or longer
    whole_days: bool = False
    #: sums per tenant (the first column), for every tenant at once
    by_tenant: bool = False

    def sql(self, dialect: Dialect) -> str:
        user, tenant = self.user_id is not None, self.tenant_id is not None
        shape = {"by_hour": self.by_hour, "whole_days": self.whole_days, "by_tenant": self.by_tenant}
        return range_query(dialect, self.dim, tenant=tenant, user=user, **shape)

    def params(self, as_time: Callable[[datetime], Any] = lambda t: t) -> dict[str, Any]:
        """start/end and the whole hours between them (lo, hi), in the driver's time form."""
        lo, hi = _inner(self.start, self.end, timedelta(hours=1))
        dlo, dhi = _inner(lo, hi, timedelta(days=1))
        times = {"start": self.start, "end": self.end, "lo": lo, "hi": hi, "dlo": dlo, "dhi": dhi}
        params = {name: as_time(value) for name, value in times.items()}
        return {**params, "tenant": self.tenant_id, "user": self.user_id}


def _inner(start: datetime, end: datetime, step: timedelta) -> tuple[datetime, datetime]:
    """The whole steps (UTC hours or days) inside [start, end), as [lo, hi); lo = hi = end if none."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    lo = epoch + -((epoch - start) // step) * step  # start rounded up
    hi = epoch + ((end - epoch) // step) * step
    return (lo, hi) if lo < hi else (end, end)


def percentile_cont(sorted_values: Sequence[float], q: float) -> float | None:
    """PostgreSQL's ``percentile_cont`` (linear interpolation) over values sorted ascending."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    lo, hi = math.floor(position), math.ceil(position)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (position - lo))


def storable_text(text: str) -> str:
    """What a text column can hold: PostgreSQL refuses NUL, and neither database takes lone surrogates.

    Only the logged copy changes; the text is classified as sent.
    """
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def store_for_url(url: str | None, sqlite_default: str, statement_timeout_s: float) -> LogStore:
    """PostgreSQL for ``postgresql://``/``postgres://``, SQLite for ``sqlite:///path`` or no URL."""
    if url is None or url.startswith("sqlite:"):
        from samo_serve.storage.request_log.sqlite import SqliteStore

        path = url.removeprefix("sqlite:///").removeprefix("sqlite://") if url else sqlite_default
        return SqliteStore(path, statement_timeout_s)
    if url.startswith(("postgresql://", "postgres://")):
        from samo_serve.storage.request_log.postgres import PostgresStore

        return PostgresStore(url, statement_timeout_s)
    raise ValueError(f"database_url must start with postgresql:// or sqlite:///, not {url.split(':')[0]}:")
