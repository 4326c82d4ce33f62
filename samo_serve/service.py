"""Predictions: route each text through the caches, classify the misses in one call, log every result."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import Pipeline
from samo_serve.core.postprocess import Postprocessor, PredictOptions
from samo_serve.core.results import CachedResult
from samo_serve.errors import EmptyText, TextTooLong
from samo_serve.observability.telemetry import Telemetry
from samo_serve.settings import Settings
from samo_serve.storage.cache import L1Cache, TextKeys, text_keys
from samo_serve.storage.cache_router import CacheRouter
from samo_serve.storage.redis_cache import RedisCache
from samo_serve.storage.request_log import LogRow, RequestLog
from samo_serve.storage.request_log.store import storable_text

__all__ = ["EmotionService", "RequestContext", "check_text"]


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    """Refuse what the model cannot classify; never rewrite the user's words."""
    if not text.strip():
        raise EmptyText(f"`{field}` is empty or whitespace only")
    if len(text) > max_chars:
        raise TextTooLong(f"`{field}` has {len(text)} characters; the limit is {max_chars}")


@dataclass(frozen=True)
class RequestContext:
    """Who asked: what the request log records besides the prediction."""

    request_id: str = ""
    api_key_id: str | None = None


class EmotionService:
    """The prediction use case, independent of HTTP and of Ray.

    Args:
        l2: Redis cache shared by replicas (None: no L2).
        request_log: where every prediction is recorded (None: not recorded); also L3 when enabled.
        telemetry: counts the texts each cache level answered for /stats (None: not counted).
    """

    def __init__(
        self,
        card: ModelCard,
        pipeline: Pipeline,
        settings: Settings,
        l2: RedisCache | None = None,
        request_log: RequestLog | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.card = card
        self.pipeline = pipeline
        self.postprocessor = Postprocessor.from_card(card)
        self.request_log = request_log
        self.telemetry = telemetry
        self.log_text = settings.log_text
        # {"admiration":0.0123,...}, 9 digits: float32 exactly (L3 answers what the model said); a format
        # string is ~10x cheaper per row than json.dumps of a dict
        self._emotions_json = "{" + ",".join(f"{json.dumps(label)}:%.9g" for label in card.labels) + "}"
        cache = settings.cache
        self.cache = CacheRouter(
            card.version,
            card.labels,
            l1=L1Cache(cache.l1_max_entries, cache.l1_ttl_s) if cache.l1_enabled else None,
            l2=l2,
            l3=request_log if cache.l3_enabled else None,
        )

    @classmethod
    def from_settings(
        cls, card: ModelCard, pipeline: Pipeline, settings: Settings, telemetry: Telemetry | None = None
    ) -> EmotionService:
        """With L2 when ``redis_url`` is set, and the request log in PostgreSQL or SQLite when enabled."""
        l2 = None
        if settings.redis_url and settings.cache.l2_enabled:
            l2 = RedisCache.from_url(settings.redis_url, settings.cache, len(card.labels))
        request_log = RequestLog.from_settings(settings) if settings.request_log.enabled else None
        return cls(card, pipeline, settings, l2=l2, request_log=request_log, telemetry=telemetry)

    async def start(self) -> None:
        if self.request_log is not None:
            await self.request_log.start()

    async def stop(self) -> None:
        """Flush the request log (what the database will not take is spilled to disk) and close clients."""
        if self.request_log is not None:
            await self.request_log.stop()
        if self.cache.l2 is not None:
            await self.cache.l2.close()

    async def predict(
        self, texts: list[str], options: PredictOptions, context: RequestContext | None = None
    ) -> list[dict[str, Any]]:
        started = time.perf_counter()
        keys = [text_keys(self.card.version, t) for t in texts]
        found = await self.cache.lookup(keys)
        # Classify each distinct missing text once, all in one pipeline call.
        missing: dict[str, str] = {}
        for k, text in zip(keys, texts, strict=True):
            if k.cache_key not in found:
                missing.setdefault(k.cache_key, text)
        if missing:
            results = await self.pipeline.classify(list(missing.values()))
            fresh = dict(zip(missing, results, strict=True))
            found.update((key, (result, "miss")) for key, result in fresh.items())
            self.cache.fill(fresh)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if self.telemetry is not None:
            self.telemetry.on_texts([found[k.cache_key][1] for k in keys])
        out = []
        for k in keys:
            result, level = found[k.cache_key]
            rendered = self.postprocessor.render(result.scores, options.threshold, options.top_k, options.all_scores)
            rendered.update(
                model_version=self.card.version, cache=level, truncated=result.truncated, latency_ms=latency_ms
            )
            out.append(rendered)
        if self.request_log is not None:
            self.request_log.record(self._log_rows(texts, keys, found, out, latency_ms, context or RequestContext()))
        return out

    def _log_rows(
        self,
        texts: list[str],
        keys: list[TextKeys],
        found: dict[str, tuple[CachedResult, str]],
        rendered: list[dict[str, Any]],
        latency_ms: float,
        context: RequestContext,
    ) -> list[LogRow]:
        now = datetime.now(UTC)
        request_id = context.request_id or uuid.uuid4().hex
        rows = []
        for text, k, out in zip(texts, keys, rendered, strict=True):
            result, level = found[k.cache_key]
            rows.append(
                LogRow(
                    id=uuid.uuid4(),
                    created_at=now,
                    request_id=request_id,
                    api_key_id=context.api_key_id,
                    text_hash=k.text_hash,
                    text=storable_text(text) if self.log_text else None,
                    primary_emotion=out["primary"]["label"],
                    confidence=out["primary"]["score"],
                    emotions=self._emotions_json % tuple(result.scores.tolist()),
                    model_version=self.card.version,
                    cache_level=level,
                    processing_time_ms=latency_ms,
                    truncated=result.truncated,
                )
            )
        return rows

    async def dependencies(self) -> dict[str, Any]:
        """State of Redis and the request-log database, for /readyz (both optional: down = degraded)."""
        checks: dict[str, Any] = {}
        if self.cache.l2 is not None:
            checks["redis"] = self.cache.l2.health()
        if self.request_log is not None:
            checks["database"] = self.request_log.health()
        results = await asyncio.gather(*checks.values())
        return dict(zip(checks, results, strict=True))

    def counters(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Cumulative cache counters per level and request-log row counters (sampled into metrics)."""
        rows = self.request_log.writer.snapshot() if self.request_log is not None else None
        return self.cache.snapshot(), rows

    def stats(self) -> dict[str, Any]:
        return {
            "cache": self.cache.snapshot(),
            "request_log": self.request_log.snapshot() if self.request_log is not None else None,
        }
