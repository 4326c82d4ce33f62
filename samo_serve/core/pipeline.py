"""The classification seam between the ingress and the model: texts in, scores out.

``LocalPipeline`` runs tokenizer and model in-process (tests, benchmarks, single-process use); the
Ray ingress implements the same protocol over deployment handles, one hop per micro-batch.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from samo_serve.core.model_runner import ModelRunner
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.storage.cache import CachedResult

__all__ = ["LocalPipeline", "Pipeline"]


class Pipeline(Protocol):
    async def classify(self, texts: list[str]) -> list[CachedResult]:
        """One result per text, in order."""
        ...

    async def model_info(self) -> dict[str, object]:
        """Provider and health of the model behind the pipeline; raises if it does not answer."""
        ...


class LocalPipeline:
    def __init__(self, tokenizer: TextTokenizer, runner: ModelRunner) -> None:
        self._tokenizer = tokenizer
        self._runner = runner

    def classify_sync(self, texts: list[str]) -> list[CachedResult]:
        batch = self._tokenizer.encode_batch(texts)
        scores = self._runner.predict(batch)
        return [CachedResult(scores[i], bool(batch.truncated[i])) for i in range(len(texts))]

    async def classify(self, texts: list[str]) -> list[CachedResult]:
        return await asyncio.to_thread(self.classify_sync, texts)

    async def model_info(self) -> dict[str, object]:
        self._runner.health()
        return {"provider": self._runner.provider}
