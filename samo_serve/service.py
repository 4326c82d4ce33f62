"""Predictions: route each text through the caches, classify the misses in one call, log every result."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from samo_serve.calls import Charge, PredictCall, RequestContext, TextEntry, who
from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import Pipeline
from samo_serve.core.postprocess import Postprocessor, PredictOptions
from samo_serve.core.results import CachedResult
from samo_serve.core.segments import Plan, Segment, aggregate, has_content, plan_text
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.errors import AnalyticsUnavailable, BatchTooLarge, EmptyText, TextTooLong
from samo_serve.observability.drift_watch import DriftWatch, card_references
from samo_serve.observability.telemetry import Telemetry
from samo_serve.observability.tracing import Tracing
from samo_serve.settings import Settings
from samo_serve.storage.cache import L1Cache, TextKeys, text_keys
from samo_serve.storage.cache_router import CacheRouter
from samo_serve.storage.redis_cache import RedisCache
from samo_serve.storage.request_log import LogRow, RequestLog, TextHasher
from samo_serve.storage.request_log.rows import new_row_id
from samo_serve.storage.request_log.store import storable_text

__all__ = ["Charge", "EmotionService", "PredictCall", "RequestContext", "TextEntry", "check_text"]


#: a request whose texts add up to more characters is segmented off the event loop (a 50,000-character
#: entry takes tens of milliseconds to tokenize); below it the thread hop would cost more than the work
_PLAN_INLINE_CHARS = 4_000
#: the cache level a document reports: its slowest segment's ("miss": the model read at least one)
_LEVEL_ORDER = {"l1": 0, "l2": 1, "l3": 2, "miss": 3}


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    """Refuse what the model cannot classify; never rewrite the user's words."""
    if not has_content(text):
        raise EmptyText(f"`{field}` is empty, or only whitespace and punctuation")
    if len(text) > max_chars:
        raise TextTooLong(
            f"`{field}` has {len(text)} characters; the limit is {max_chars} (limits.max_text_chars)",
            {"limit": "max_text_chars", "value": max_chars},
        )


class _Row(NamedTuple):
    """What a text's request-log row records besides the request: one row per text, a document too."""

    text_hash: str
    scores: np.ndarray
    level: str
    truncated: bool
    segments: int
    #: the text's one result (None for a document, whose scores are aggregated): its JSON is kept there
    result: CachedResult | None = None


class EmotionService:
    """The prediction use case, independent of HTTP and of Ray.

    Args:
        l2: Redis cache shared by replicas (None: no L2).
        request_log: where every prediction is recorded (None: not recorded); also L3 when enabled.
        telemetry: counts the texts each cache level answered for /stats (None: not counted).
        tokenizer: splits documents (default: the card's, from ``settings.model_dir``).
    """

    def __init__(
        self,
        card: ModelCard,
        pipeline: Pipeline,
        settings: Settings,
        l2: RedisCache | None = None,
        request_log: RequestLog | None = None,
        telemetry: Telemetry | None = None,
        tokenizer: TextTokenizer | None = None,
    ) -> None:
        self.card = card
        self.pipeline = pipeline
        self.postprocessor = Postprocessor.from_card(card)
        self.request_log = request_log
        self.telemetry = telemetry
        self.tracing = telemetry.tracing if telemetry is not None else Tracing.off()
        self.log_text = settings.log_text
        self.documents = settings.documents
        self.limits = settings.limits
        self.max_segments = settings.limits.max_segments
        self.tokenizer = None
        if settings.documents.enabled:
            self.tokenizer = tokenizer or TextTokenizer.for_card(card, settings.model_dir)
        # ~4 characters a token in English: a text this short is sent whole, its fit checked by the model's
        # own tokenization (measured: 60 us a text saved on the hot path; docs/API.md, "Documents")
        self._assume_fits = 4 * self.tokenizer.window if self.tokenizer is not None else 0
        # {"admiration":0.0123,...}, 9 digits: float32 exactly (L3 answers what the model said); a format
        # string is ~10x cheaper per row than json.dumps of a dict
        self._emotions_json = "{" + ",".join(f"{json.dumps(label)}:%.9g" for label in card.labels) + "}"
        cache = settings.cache
        self.shared_cache = cache.shared_across_tenants
        # One keyed hash (the server's secret) for log rows, L3 lookups and, through them, the L1/L2 keys:
        # without it, whoever reads Redis or a dump could test whether a tenant sent a sentence. With neither
        # a log nor Redis nothing leaves the process, and plain sha256 will do for L1.
        hasher = request_log.hasher if request_log is not None else None
        if hasher is None and l2 is not None:
            hasher = TextHasher.from_settings(settings)
        self._text_hash = hasher.hash_normalized if hasher is not None else None
        self.cache = CacheRouter(
            card.version,
            card.labels,
            l1=L1Cache(cache.l1_max_entries, cache.l1_ttl_s) if cache.l1_enabled else None,
            l2=l2,
            l3=request_log if cache.l3_enabled else None,
        )
        self.cache.tracing = self.tracing
        self.drift: DriftWatch | None = None  # the log's rollups against the card's reference
        if request_log is not None:
            request_log.writer.tracing = self.tracing
            metrics = telemetry.metrics if telemetry is not None else None
            self.drift = DriftWatch(request_log, settings.observability.drift, card_references(card), metrics)

    @classmethod
    def from_settings(
        cls,
        card: ModelCard,
        pipeline: Pipeline,
        settings: Settings,
        telemetry: Telemetry | None = None,
        tokenizer: TextTokenizer | None = None,
    ) -> EmotionService:
        """With L2 when ``redis_url`` is set, and the request log in PostgreSQL or SQLite when enabled."""
        l2 = None
        if settings.redis_url and settings.cache.l2_enabled:
            l2 = RedisCache.from_url(settings.redis_url, settings.cache, len(card.labels))
        request_log = RequestLog.from_settings(settings) if settings.request_log.enabled else None
        return cls(card, pipeline, settings, l2, request_log, telemetry, tokenizer)

    async def start(self) -> None:
        if self.request_log is not None:
            await self.request_log.start()
        if self.drift is not None:
            self.drift.start()

    async def stop(self) -> None:
        """Flush the request log (what the database will not take is spilled to disk) and close clients."""
        if self.drift is not None:
            await self.drift.stop()
        if self.request_log is not None:
            await self.request_log.stop()
        if self.cache.l2 is not None:
            await self.cache.l2.close()

    async def run(
        self, call: PredictCall, context: RequestContext, charge: Charge | None = None
    ) -> list[dict[str, Any]]:
        """The one request function of every prediction route: validate, plan, charge, predict, render.

        The routes (``/predict``, ``/predict/batch``, V2 infer) only parse their wire format into a
        :class:`PredictCall` and encode what this returns, so each rule holds the same way on all three:
        a text costs its segments (a document its sentences and windows), charged before any model work,
        and a short text found longer than the model's window once it was read is charged its extra
        segments before they are classified.

        Raises:
            BatchTooLarge: more than ``limits.max_batch_texts`` texts.
            EmptyText, TextTooLong: a text the model cannot classify, or too long (characters, segments).
            RateLimited: from ``charge``, before anything is classified.
        """
        texts = call.texts
        if len(texts) > self.limits.max_batch_texts:
            raise BatchTooLarge(f"{len(texts)} texts; the limit is {self.limits.max_batch_texts} per request")
        with self.tracing.span("validate", **{"samo.texts": len(texts)}):
            for i, text in enumerate(texts):
                check_text(text, self.limits.max_text_chars, call.field(i))
            plans = await self._plan(call)
        if charge is not None:
            await charge(sum(p.cost for p in plans))
        return await self._predict(call, context, plans, charge)

    async def predict(
        self, texts: list[str], options: PredictOptions, context: RequestContext | None = None
    ) -> list[dict[str, Any]]:
        """One result per text, unmetered (:meth:`run` is the request path; this is for callers in-process)."""
        return await self.run(PredictCall(texts, options), context or RequestContext())

    async def _plan(self, call: PredictCall) -> list[Plan]:
        """Each text's segments (:func:`samo_serve.core.segments.plan_text`).

        A text of at most ``4 x window`` characters is sent whole without tokenizing it here: nearly all
        fit, and the pipeline's own tokenization flags those that do not (:meth:`_predict` re-plans them).

        Raises:
            TextTooLong: a text has more than ``limits.max_segments`` segments (unless set to truncate).
        """
        texts = call.texts
        if sum(len(t) for t in texts) <= _PLAN_INLINE_CHARS:
            plans = [self._plan_one(t, self._assume_fits) for t in texts]
        else:
            plans = await asyncio.to_thread(lambda: [self._plan_one(t, self._assume_fits) for t in texts])
        for i, p in enumerate(plans):
            self._check_segments(p, call.field(i))
        return plans

    def _plan_one(self, text: str, assume_fits_chars: int = 0) -> Plan:
        return plan_text(text, self.tokenizer, self.max_segments, assume_fits_chars, self.documents.name_emoji)

    def _check_segments(self, plan: Plan, field: str) -> None:
        if plan.capped and self.documents.over_max_segments == "reject":
            raise TextTooLong(
                f"`{field}` has more than {self.max_segments} segments (sentences and windows); "
                f"the limit is {self.max_segments} (limits.max_segments)",
                {"limit": "max_segments", "value": self.max_segments},
            )

    async def _predict(
        self, call: PredictCall, context: RequestContext, plans: list[Plan], charge: Charge | None
    ) -> list[dict[str, Any]]:
        started = time.perf_counter()
        texts, options = call.texts, call.options
        # Each tenant has caches of its own (unless shared): another tenant's text is never a hit.
        tenant = "" if self.shared_cache else context.tenant_id
        # Every segment of every text is a text of its own to the caches and the model: one call for all.
        keys = [[self.keys(t, tenant) for t in p.texts] for p in plans]
        found = await self._answer(keys, plans, context)
        cut = [i for i, p in enumerate(plans) if not p.checked and found[keys[i][0].cache_key][0].truncated]
        if cut:  # sent whole on their length, but past the window: read as documents after all
            for i in cut:
                plans[i] = await asyncio.to_thread(self._plan_one, texts[i])
                self._check_segments(plans[i], call.field(i))
                keys[i] = [self.keys(t, tenant) for t in plans[i].texts]
            if charge is not None:  # the whole text was charged as one segment: the rest are charged now
                await charge(sum(plans[i].cost - 1 for i in cut))
            found.update(await self._answer([keys[i] for i in cut], [plans[i] for i in cut], context))
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if self.telemetry is not None:
            self.telemetry.on_texts([found[k.cache_key][1] for ks in keys for k in ks])
        out: list[dict[str, Any]] = []
        rows: list[_Row] = []
        for text, p, ks in zip(texts, plans, keys, strict=True):
            rendered, row = self._render(text, p, [found[k.cache_key] for k in ks], ks[0], options)
            rendered.update(model_version=self.card.version, latency_ms=latency_ms)
            out.append(rendered)
            rows.append(row)
        if self.request_log is not None:
            self.request_log.record(self._log_rows(texts, rows, out, latency_ms, context, call.entries))
        return out

    def keys(self, text: str, tenant: str = "") -> TextKeys:
        """The cache key and text hash this service gives ``text`` (of what the model reads) for ``tenant``."""
        return text_keys(self.card.version, text, tenant, self._text_hash)

    async def _answer(
        self, keys: list[list[TextKeys]], plans: list[Plan], context: RequestContext
    ) -> dict[str, tuple[CachedResult, str]]:
        """Results of every segment: from the caches, and the distinct misses from one pipeline call."""
        flat = [k for ks in keys for k in ks]
        with self.tracing.span("cache.lookup", **{"samo.keys": len(flat)}):
            found = await self.cache.lookup(flat, None if self.shared_cache else context.tenant_id)
            self.tracing.set_attributes(**{"samo.hits": len(found)})
        missing: dict[str, str] = {}
        for k, text in zip(flat, (t for p in plans for t in p.texts), strict=True):
            if k.cache_key not in found:
                missing.setdefault(k.cache_key, text)
        if missing:
            with self.tracing.span("classify", **{"samo.texts": len(missing)}):
                results = await self.pipeline.classify(list(missing.values()))
            fresh = dict(zip(missing, results, strict=True))
            found.update((key, (result, "miss")) for key, result in fresh.items())
            self.cache.fill(fresh)
        return found

    def _render(
        self, text: str, plan: Plan, parts: list[tuple[CachedResult, str]], first: TextKeys, options: PredictOptions
    ) -> tuple[dict[str, Any], _Row]:
        """The response of one text and its log row's content."""
        if plan.spans is None and not options.segments:  # a single text, as it always was
            result, level = parts[0]
            choice = (options.threshold, options.top_k, options.all_scores)
            shown = result.derived.get(choice)
            if shown is None:
                shown = result.derived[choice] = self.postprocessor.render(result.scores, *choice)
            rendered = {**shown, "cache": level, "truncated": result.truncated}
            if result.truncated:
                rendered["truncated_by"] = "model_window"
            return rendered, _Row(first.text_hash, result.scores, level, result.truncated, 1, result)
        scores = np.stack([result.scores for result, _ in parts])
        lengths = np.fromiter((len(t) for t in plan.texts), dtype=np.int64, count=len(plan.texts))
        doc = aggregate(scores, lengths, self.documents.aggregation)
        level = max((lvl for _, lvl in parts), key=_LEVEL_ORDER.__getitem__)
        window_cut = any(result.truncated for result, _ in parts)
        rendered = self.postprocessor.render(doc, options.threshold, options.top_k, options.all_scores)
        if self.documents.primary == "coverage":
            rendered["primary"] = self.postprocessor.document_primary(scores, lengths, doc, options.threshold)
        rendered.update(cache=level, truncated=plan.capped or window_cut, segment_count=plan.cost)
        if plan.capped or window_cut:
            rendered["truncated_by"] = "max_segments" if plan.capped else "model_window"
        rendered.update(self.postprocessor.render_groups(doc))
        if options.segments:
            spans = plan.spans or [Segment(0, len(text))]
            rendered["segments"] = [
                {
                    "start": span.start,
                    "end": span.end,
                    **self.postprocessor.render(result.scores, options.threshold, options.top_k, options.all_scores),
                }
                for span, (result, _) in zip(spans, parts, strict=True)
            ]
        # a document's row is keyed by the whole text: L3 answers only single texts (segment_count 1)
        text_hash = first.text_hash if plan.spans is None else self.keys(text, "").text_hash
        return rendered, _Row(text_hash, doc, level, plan.capped or window_cut, plan.cost)

    def _log_rows(
        self,
        texts: list[str],
        rows: list[_Row],
        rendered: list[dict[str, Any]],
        latency_ms: float,
        context: RequestContext,
        entries: Sequence[TextEntry | None] | None = None,
    ) -> list[LogRow]:
        now = datetime.now(UTC)
        request_id = context.request_id or new_row_id().hex
        people = [who(e, context) for e in (entries or [None] * len(texts))]
        return [
            LogRow(
                id=new_row_id(),
                created_at=now,
                request_id=request_id,
                api_key_id=context.api_key_id,
                text_hash=row.text_hash,
                text=storable_text(text) if self.log_text else None,
                primary_emotion=out["primary"]["label"],
                confidence=out["primary"]["score"],
                emotions=self._derived_json(row, "json"),
                cleared=self._derived_json(row, "cleared"),
                model_version=self.card.version,
                cache_level=row.level,
                processing_time_ms=latency_ms,
                truncated=row.truncated,
                segment_count=row.segments,
                tenant_id=context.tenant_id,
                user_id=user_id,
                occurred_at=occurred_at,
                entry_id=entry_id,
            )
            for text, row, out, (user_id, occurred_at, entry_id) in zip(texts, rows, rendered, people, strict=True)
        ]

    def _derived_json(self, row: _Row, kind: str) -> str:
        """A row's scores as JSON: every label's (``json``) or the cleared ones (``cleared``), kept on the
        cached result so a repeated text formats them once."""
        if row.result is not None and (text := row.result.derived.get(kind)) is not None:
            return str(text)
        if kind == "json":
            text = self._emotions_json % tuple(row.scores.tolist())
        else:
            text = self.postprocessor.cleared_json(row.scores)
        if row.result is not None:
            row.result.derived[kind] = text
        return text

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

    async def erase_user(self, tenant_id: str | None, user_id: str, entry_id: str | None = None) -> int:
        """Erase a person (of one tenant, or of every tenant), or one entry of theirs: the cache entries
        first (so that an unreachable Redis fails the erasure, 503, before anything is gone), then the rows;
        rows deleted."""
        if self.request_log is None:
            raise AnalyticsUnavailable("the request log is off (request_log.enabled=false): nothing is kept")
        texts = await self.request_log.user_texts(tenant_id, user_id, entry_id)
        await self.cache.forget(texts, self.shared_cache)
        return await self.request_log.erase_user(tenant_id, user_id, entry_id)

    def stats(self) -> dict[str, Any]:
        return {
            "cache": self.cache.snapshot(),
            "request_log": self.request_log.snapshot() if self.request_log is not None else None,
        }
