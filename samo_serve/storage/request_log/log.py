"""The request log as the service sees it: record rows, look earlier results up (L3), answer analytics."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from samo_serve.core.model_card import load_card
from samo_serve.core.results import CachedResult
from samo_serve.core.times import parse_utc
from samo_serve.errors import AnalyticsUnavailable, ValidationFailed
from samo_serve.settings import Settings
from samo_serve.storage.cache import LevelStats
from samo_serve.storage.circuit import CircuitBreaker
from samo_serve.storage.request_log import analytics
from samo_serve.storage.request_log.hashing import TextHasher
from samo_serve.storage.request_log.rows import LogRow, of_user
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.spill import erase_user as spill_erase
from samo_serve.storage.request_log.store import LogStore, Progress, RangeQuery, store_for_url
from samo_serve.storage.request_log.writer import LogWriter

__all__ = ["RequestLog", "parse_range"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RANGE = timedelta(hours=24)
_PING_TIMEOUT_S = 2.0


def _parse_time(value: str, name: str) -> datetime:
    try:
        return parse_utc(value)  # naive = UTC
    except ValueError as exc:
        raise ValidationFailed(f"`{name}`: {exc}", [{"loc": ["query", name], "msg": str(exc)}]) from None


def parse_range(start: str | None, end: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) from ISO-8601 strings; defaults: end = now, start = end - 24 h. Naive times are UTC.

    Raises:
        ValidationFailed: unparsable time, or start not before end (422).
    """
    end_at = _parse_time(end, "end") if end else (now or datetime.now(UTC))
    start_at = _parse_time(start, "start") if start else end_at - DEFAULT_RANGE
    if start_at >= end_at:
        raise ValidationFailed("`start` must be before `end`", [{"loc": ["query", "start"], "msg": "empty range"}])
    return start_at, end_at


class RequestLog:
    def __init__(
        self,
        store: LogStore,
        settings: Settings,
        groups: dict[str, dict[str, str]] | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.settings = settings.request_log
        self.writer = LogWriter(store, settings.request_log, SpillFiles(settings.data_dir / "spill"))
        #: the keyed text hash for rows and L3 lookups (one instance: the same key for both)
        self.hasher = TextHasher.from_settings(settings)
        #: the model card's label -> Ekman / sentiment group, for the shares of timelines
        self.groups = groups or {}
        #: the model card's labels: a timeline lists each (0 included)
        self.labels = tuple(labels)
        self._stop_timeout_s = settings.request_log.statement_timeout_s
        cache = settings.cache
        self.l3_stats = LevelStats()
        self._l3_timeout_s = cache.l3_timeout_s
        self._l3_breaker = CircuitBreaker(cache.circuit_failures, cache.circuit_open_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLog:
        sqlite_default = str(Path(settings.data_dir) / "requests.sqlite3")
        store = store_for_url(settings.database_url, sqlite_default, settings.request_log.statement_timeout_s)
        try:
            card = load_card(settings.model_dir, verify=False)
        except (OSError, ValueError):  # no card: timelines without group shares or the labels with none
            return cls(store, settings)
        return cls(store, settings, card.groups, card.labels)

    async def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop(self._stop_timeout_s)
        await self.store.close()

    def record(self, rows: list[LogRow]) -> None:
        """Queue rows (usually one request's): never waits, never touches the database."""
        first = rows[0].request_id if rows else ""
        if all(row.request_id == first for row in rows):  # one request's rows (the service's): no Counter
            for row in rows:
                row.request_texts = len(rows)
        else:
            per_request = Counter(row.request_id for row in rows)
            for row in rows:
                row.request_texts = per_request[row.request_id]
        self.writer.enqueue(rows)

    async def lookup(
        self, model_version: str, text_hashes: Sequence[str], labels: list[str], tenant_id: str | None = None
    ) -> dict[str, CachedResult]:
        """L3: earlier results of these texts under this model version (of this tenant, unless None).

        Empty when the database is away.
        """
        if not self._l3_breaker.allow():
            return {}
        try:
            found = await asyncio.wait_for(self.store.lookup(model_version, text_hashes, tenant_id), self._l3_timeout_s)
        except Exception as exc:  # unavailable: serve without L3
            self.l3_stats.errors += 1
            self._l3_breaker.failure()
            log.debug("L3 lookup failed: %s", exc)
            return {}
        self._l3_breaker.success()
        results = {}
        for text_hash, (emotions, truncated) in found.items():
            scores = json.loads(emotions)
            results[text_hash] = CachedResult(np.array([scores[label] for label in labels], np.float32), truncated)
        self.l3_stats.hits += len(results)
        self.l3_stats.misses += len(set(text_hashes)) - len(results)
        return results

    @staticmethod
    async def _answered(work: Awaitable[T]) -> T:
        """What the database answers to analytics; its failure as AnalyticsUnavailable (503)."""
        try:
            return await work
        except Exception as exc:
            raise AnalyticsUnavailable(f"request-log database unavailable: {type(exc).__name__}") from exc

    async def _range(self, query: RangeQuery) -> list[tuple[Any, ...]]:
        return await self._answered(self.store.range(query))

    async def emotion_counts(
        self, start: datetime, end: datetime, tenant_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per primary emotion in [start, end) of a tenant (None: every tenant), or of one user of it."""
        return analytics.emotion_counts(await self._range(RangeQuery("emotion", start, end, tenant_id, user_id)))

    async def summary(
        self, start: datetime, end: datetime, tenant_id: str | None = None, user_id: str | None = None
    ) -> dict[str, Any]:
        """Tenant-wide: texts, requests, cache levels, processing times. A user's: texts, emotion mix and
        label counts."""
        if user_id is not None:
            rows = await self._range(RangeQuery("emotion", start, end, tenant_id, user_id))
            cleared = await self._range(RangeQuery("label", start, end, tenant_id, user_id))
            return {**analytics.emotion_mix(rows, self.groups), "labels": analytics.label_counts(cleared, self.labels)}
        cache = await self._range(RangeQuery("cache", start, end, tenant_id))
        latency = await self._range(RangeQuery("latency", start, end, tenant_id))
        return analytics.summary(cache, latency)

    async def timeline(
        self, tenant_id: str | None, user_id: str | None, start: datetime, end: datetime, bucket: analytics.Bucket
    ) -> list[dict[str, Any]]:
        """Per bucket of [start, end) (UTC; weeks from Monday): the emotion mix and label counts of a user,
        or of the tenant(s)."""
        days = bucket != "hour"  # UTC days nest in days, weeks and months: whole ones are read as one row each
        rows = await self._range(RangeQuery("emotion", start, end, tenant_id, user_id, True, days))
        cleared = await self._range(RangeQuery("label", start, end, tenant_id, user_id, True, days))
        return analytics.timeline(rows, start, end, bucket, self.groups, cleared, self.labels)

    async def drift_rows(
        self, start: datetime, end: datetime, tenant_id: str | None = None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Per tenant over [start, end): texts per ``version|primary`` and per ``version|tenth`` of the top
        score (observability.drift.window_report reads them)."""
        mix = await self._range(RangeQuery("drift_mix", start, end, tenant_id, by_tenant=True))
        confidence = await self._range(RangeQuery("drift_confidence", start, end, tenant_id, by_tenant=True))
        return mix, confidence

    async def pinned_references(self) -> list[tuple[str, str, str]]:
        """(tenant, model_version, reference JSON) of the drift references operators pinned."""
        return await self._answered(self.store.pinned_references())

    async def pin_references(self, tenant_id: str, references: dict[str, dict[str, Any]]) -> int:
        """Pin a tenant's drift references (model version -> reference); none: unpin them all."""
        encoded = {version: json.dumps(reference) for version, reference in references.items()}
        return await self._answered(self.store.pin_references(tenant_id, encoded, datetime.now(UTC)))

    async def user_texts(
        self, tenant_id: str | None, user_id: str, entry_id: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(model_version, tenant_id, text_hash) of the user's single-segment rows (one entry's, when
        given), queued or stored."""

        theirs = of_user(tenant_id, user_id, entry_id)
        queued = {
            (r.model_version, r.tenant_id, r.text_hash)
            for r in self.writer.queued()
            if theirs(r) and r.segment_count == 1
        }
        try:
            stored = await self.store.user_texts(tenant_id, user_id, entry_id)
        except Exception as exc:
            raise AnalyticsUnavailable(f"erasure could not complete: {type(exc).__name__}; retry") from exc
        return sorted(queued.union(stored))

    async def erase_user(self, tenant_id: str | None, user_id: str, entry_id: str | None = None) -> int:
        """Delete a user's rows (of one tenant, or all; of one entry, when given): queued, spilled, stored,
        and their part of the rollups.

        Returns rows deleted from the database (queued and spilled rows were never stored, so they do
        not count). With the rows gone L3 cannot answer from them.
        """
        self.writer.discard(of_user(tenant_id, user_id, entry_id))
        try:
            await asyncio.to_thread(spill_erase, self.writer.spill, tenant_id, user_id, entry_id)
            return await self.store.erase_user(tenant_id, user_id, entry_id)
        except Exception as exc:
            raise AnalyticsUnavailable(f"erasure could not complete: {type(exc).__name__}; retry") from exc

    async def rebuild_rollups(self, timeout_s: float | None = None, progress: Progress | None = None) -> None:
        await self.store.rebuild_rollups(timeout_s, progress)

    async def health(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.store.ping(), _PING_TIMEOUT_S)
            state = "up"
        except Exception:
            state = "down"
        return {"state": state, "dialect": self.store.dialect, "rows": self.writer.snapshot()}

    def snapshot(self) -> dict[str, Any]:
        return {"dialect": self.store.dialect, "rows": self.writer.snapshot()}
