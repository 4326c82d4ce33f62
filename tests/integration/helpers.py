"""Rows for request-log tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from samo_serve.storage.request_log.rows import LogRow
from samo_serve.storage.request_log.store import LogStore, RangeQuery

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def make_row(
    at: datetime = T0,
    *,
    request_id: str = "r",
    text_hash: str = "a" * 64,
    version: str = "m-1",
    emotion: str = "joy",
    confidence: float = 0.5,
    level: str = "miss",
    ms: float = 10.0,
    scores: dict[str, float] | None = None,
    key_id: str | None = None,
    tenant: str = "",
    user: str | None = None,
    occurred_at: datetime | None = None,
    request_texts: int = 1,
    entry: str | None = None,
    cleared: dict[str, float] | None = None,
) -> LogRow:
    return LogRow(
        id=uuid.uuid4(),
        created_at=at,
        request_id=request_id,
        api_key_id=key_id,
        text_hash=text_hash,
        text=None,
        primary_emotion=emotion,
        confidence=confidence,
        emotions=json.dumps(scores or {emotion: confidence}),
        model_version=version,
        cache_level=level,
        processing_time_ms=ms,
        truncated=False,
        tenant_id=tenant,
        user_id=user,
        occurred_at=occurred_at,
        request_texts=request_texts,
        entry_id=entry,
        cleared=None if cleared is None else json.dumps(cleared),
    )


async def count_rows(store: LogStore) -> int:
    everything = RangeQuery("cache", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return sum(int(texts) for _key, texts, *_ in await store.range(everything))
