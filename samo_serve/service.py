"""Predictions with caching: look up each text, classify the misses in one call, render responses."""

from __future__ import annotations

import time
from typing import Any

from samo_serve.cache import CachedResult, L1Cache, cache_key
from samo_serve.errors import EmptyText, TextTooLong
from samo_serve.model_card import ModelCard
from samo_serve.pipeline import Pipeline
from samo_serve.postprocess import Postprocessor
from samo_serve.schemas import PredictOptions
from samo_serve.settings import Settings

__all__ = ["EmotionService", "check_text"]


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    """Refuse what the model cannot classify; never rewrite the user's words."""
    if not text.strip():
        raise EmptyText(f"`{field}` is empty or whitespace only")
    if len(text) > max_chars:
        raise TextTooLong(f"`{field}` has {len(text)} characters; the limit is {max_chars}")


class EmotionService:
    """The prediction use case, independent of HTTP and of Ray."""

    def __init__(self, card: ModelCard, pipeline: Pipeline, settings: Settings) -> None:
        self.card = card
        self.pipeline = pipeline
        self.postprocessor = Postprocessor.from_card(card)
        cache = settings.cache
        self.l1 = L1Cache(cache.l1_max_entries, cache.l1_ttl_s) if cache.l1_enabled else None

    async def predict(self, texts: list[str], options: PredictOptions) -> list[dict[str, Any]]:
        started = time.perf_counter()
        keys = [cache_key(self.card.version, t) for t in texts]
        found: dict[str, tuple[CachedResult, str]] = {}
        if self.l1 is not None:
            for key in keys:
                if key not in found and (hit := self.l1.get(key)) is not None:
                    found[key] = (hit, "l1")
        # Classify each distinct missing text once, all in one pipeline call.
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found:
                missing.setdefault(key, text)
        if missing:
            results = await self.pipeline.classify(list(missing.values()))
            for key, result in zip(missing, results, strict=True):
                found[key] = (result, "miss")
                if self.l1 is not None:
                    self.l1.set(key, result)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        out = []
        for key in keys:
            result, level = found[key]
            rendered = self.postprocessor.render(result.scores, options.threshold, options.top_k, options.all_scores)
            rendered.update(
                model_version=self.card.version, cache=level, truncated=result.truncated, latency_ms=latency_ms
            )
            out.append(rendered)
        return out

    def cache_stats(self) -> dict[str, Any]:
        return {"l1": self.l1.stats() if self.l1 is not None else None}
