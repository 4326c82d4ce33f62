"""What a request-log database does, whichever it is (PostgreSQL or the embedded SQLite file)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from samo_serve.storage.request_log.rows import LogRow

__all__ = ["LogStore", "RejectedRows", "Summary", "percentile_cont", "store_for_url", "storable_text"]


class RejectedRows(Exception):
    """The database refused these rows' content (not a connection problem): retrying cannot help."""


class LogStore(Protocol):
    #: "postgresql" or "sqlite"
    dialect: str

    async def migrate(self) -> list[int]:
        """Apply pending migrations; returns every applied version. Connects first if needed."""
        ...

    async def insert(self, rows: Sequence[LogRow]) -> int:
        """Store rows, ignoring ids already stored (a retry stores nothing twice). Returns rows added.

        Raises:
            RejectedRows: the content was refused. Any other error means: try again later.
        """
        ...

    async def lookup(self, model_version: str, text_hashes: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """Earlier results by text hash for this model version: hash -> (emotions JSON, truncated)."""
        ...

    async def emotion_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per primary emotion in [start, end): count, mean confidence, mean processing time."""
        ...

    async def summary(self, start: datetime, end: datetime) -> Summary: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Summary:
    texts: int
    requests: int
    by_cache_level: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        hits = sum(n for level, n in self.by_cache_level.items() if level != "miss")
        return {
            "requests": self.requests,
            "texts": self.texts,
            "cache": {
                "hit_rate": round(hits / self.texts, 4) if self.texts else 0.0,
                "by_level": dict(sorted(self.by_cache_level.items())),
            },
            "processing_time_ms": {"p50": self.p50_ms, "p95": self.p95_ms, "mean": self.mean_ms},
        }


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
