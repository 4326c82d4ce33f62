"""One row of the request log per classified text (a document too), and its JSON line form (spill files)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["COLUMNS", "LogRow", "format_time", "new_row_id", "of_user", "row_from_json", "row_to_json"]

_VERSION_7 = (0x7 << 76) | (0b10 << 62)  # RFC 9562: version 7, variant 10
_LOW_62 = (1 << 62) - 1


def new_row_id() -> uuid.UUID:
    """A time-ordered row id (UUID version 7: 48 bits of Unix milliseconds, 74 random bits).

    Ids that grow with time append to the primary-key index instead of landing on a random page of it,
    so a batch dirties a few of its pages rather than one per row. ``random`` (reseeded in every forked
    process) instead of ``os.urandom``: no system call per row; uniqueness needs no secrecy.
    """
    ms = time.time_ns() // 1_000_000
    bits = random.getrandbits(74)
    return uuid.UUID(int=(ms << 80) | _VERSION_7 | (bits >> 62) << 64 | (bits & _LOW_62))


@dataclass(slots=True)  # not frozen: frozen dataclasses build ~3x slower, and one is built per text
class LogRow:
    #: generated here, so a retried or replayed write can never store a row twice (ON CONFLICT DO NOTHING)
    id: uuid.UUID
    created_at: datetime  # UTC
    request_id: str
    api_key_id: str | None
    #: HMAC-SHA256 of the normalized text under the server's key (hashing.TextHasher), never a bare hash
    #: that could be reversed by guessing; the text itself only with SAMO_LOG_TEXT
    text_hash: str
    text: str | None
    primary_emotion: str
    confidence: float
    #: every label's score as a JSON object, so L3 can answer from it
    emotions: str
    model_version: str
    cache_level: str
    processing_time_ms: float
    truncated: bool
    #: a document's sentences and windows (1: a text read whole); its row holds the aggregated scores.
    #: Defaulted: rows spilled by an older version replay without it
    segment_count: int = 1
    #: the key's tenant ("" = no keys configured); user ids are scoped to it
    tenant_id: str = ""
    #: the caller's opaque user id, if it sent one
    user_id: str | None = None
    #: when the text was written (analytics bucket by it); None = created_at
    occurred_at: datetime | None = None
    #: texts in this row's request: analytics count a request as the sum of 1/request_texts over its rows,
    #: so rollups split by emotion or hour still add up to whole requests (set by RequestLog.record)
    request_texts: int = 1
    #: the caller's id of the journal entry this text is (unique within the tenant): a row sent again with
    #: the same one replaces the earlier (an edit), and DELETE /users/{user}/entries/{entry} erases it
    entry_id: str | None = None
    #: the labels that cleared their tuned thresholds, with their scores, as a JSON object (timelines count
    #: the text under each); None in rows spilled by an older version (they count their primary only)
    cleared: str | None = None


COLUMNS = tuple(f.name for f in fields(LogRow))


def of_user(tenant_id: str | None, user_id: str, entry_id: str | None = None) -> Callable[[LogRow], bool]:
    """Whether a row (queued, or in a spill file) is the user's (of one tenant, or of every tenant; of one
    entry, when given): the rows an erasure removes before they reach the database."""
    return lambda row: (
        row.user_id == user_id
        and (tenant_id is None or row.tenant_id == tenant_id)
        and (entry_id is None or row.entry_id == entry_id)
    )


def format_time(moment: datetime) -> str:
    """Fixed-width ISO-8601 in UTC: sorts as text (SQLite stores it so) and reads as time."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def row_to_json(row: LogRow) -> str:
    """One spill line. orjson (a tenth of ``json.dumps`` of ``asdict``: spilling runs on the request path
    when the queue is full); the standard library for what orjson refuses (a text with lone surrogates)."""
    data: dict[str, Any] = {c: getattr(row, c) for c in COLUMNS}
    data["id"] = str(row.id)
    data["created_at"] = format_time(row.created_at)
    data["occurred_at"] = None if row.occurred_at is None else format_time(row.occurred_at)
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def row_from_json(line: str) -> LogRow:
    data = json.loads(line)
    data["id"] = uuid.UUID(data["id"])
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    if data.get("occurred_at") is not None:
        data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
    return LogRow(**data)
