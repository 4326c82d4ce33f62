"""The classification seam between the service and the model: texts in, scores out, in micro-batches.

:class:`BatchingPipeline` is the one request path to the model, with or without Ray: concurrent
``classify`` calls merge into micro-batches (the timer-free :class:`MicroBatcher`), each batch is
tokenized once and sent to the model in one :class:`ModelClient` call. The Ray ingress supplies a client
over the model deployment's handle (deployments/model.py); :class:`LocalPipeline` one that runs a
:class:`ModelRunner` in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from samo_serve.core.batching import flatten, unflatten
from samo_serve.core.micro_batcher import MicroBatcher
from samo_serve.core.model_runner import ModelRunner
from samo_serve.core.results import CachedResult
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch
from samo_serve.settings import BatchingSettings

__all__ = [
    "AsyncEncoder",
    "BatchObserver",
    "BatchingPipeline",
    "LocalModel",
    "LocalPipeline",
    "ModelClient",
    "ModelObserver",
    "Pipeline",
]


class Pipeline(Protocol):
    async def classify(self, texts: list[str]) -> list[CachedResult]:
        """One result per text, in order."""
        ...

    async def model_info(self) -> dict[str, object]:
        """Provider and health of the model behind the pipeline; raises if it does not answer."""
        ...


class ModelClient(Protocol):
    """The model as the pipeline sees it: one call per micro-batch."""

    async def predict(self, tokens: TokenBatch) -> np.ndarray:
        """Probabilities, float32 [len(tokens), n_labels], rows in the batch's order."""
        ...

    async def info(self) -> dict[str, object]:
        """Provider and health of the model; raises if it does not answer."""
        ...


class AsyncEncoder(Protocol):
    """A tokenizer elsewhere (the Tokenizer deployment): one call per micro-batch."""

    async def encode(self, texts: list[str]) -> TokenBatch: ...


class BatchObserver(Protocol):
    """What the pipeline reports for metrics (``Telemetry`` is one)."""

    def on_tokenize(self, seconds: float) -> None: ...

    def on_batch(self, size: int, capacity: int, wait_s: float) -> None:
        """A micro-batch of ``size`` texts (at most ``capacity``) left after its oldest call waited ``wait_s``."""
        ...


class BatchTracer(Protocol):
    """What the pipeline records spans with (``observability.tracing.Tracing`` is one)."""

    enabled: bool

    def current_parent(self) -> Any: ...

    def linked(self, name: str, parents: Sequence[Any], **attributes: Any) -> AbstractContextManager[Any]: ...

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]: ...


class _Traced(list[str]):
    """A call's texts with the span that submitted them: its micro-batch joins that trace."""

    __slots__ = ("parent",)

    def __init__(self, texts: list[str], parent: Any) -> None:
        super().__init__(texts)
        self.parent = parent


class BatchingPipeline:
    """The :class:`Pipeline`: micro-batches of ``classify`` calls, tokenized and scored one batch at a time.

    Args:
        encoder: the in-process tokenizer (~20 us a text: cheaper than a hop), or one elsewhere.
        model: the model, one ``predict`` per micro-batch.
        batching: ``ingress_max_batch_size`` and ``ingress_max_in_flight`` shape the micro-batches.
    """

    def __init__(self, encoder: TextTokenizer | AsyncEncoder, model: ModelClient, batching: BatchingSettings) -> None:
        self._encoder = encoder
        self._model = model
        self._observer: BatchObserver | None = None
        self._tracer: BatchTracer | None = None
        # Not @serve.batch: its fixed wait window cost every request at low load (samo_serve.core.micro_batcher).
        self._batcher: MicroBatcher[list[str], list[CachedResult]] = MicroBatcher(
            self._run_batch, batching.ingress_max_batch_size, batching.ingress_max_in_flight
        )
        self.apply_batching(batching)

    def observe(self, observer: BatchObserver) -> None:
        """Report tokenizer time and micro-batch sizes and waits to ``observer``."""
        self._observer = observer
        self._batcher.on_batch = lambda size, wait_s: observer.on_batch(size, self._batcher.max_size, wait_s)

    def trace(self, tracer: BatchTracer) -> None:
        """Record each micro-batch (tokenize, the model call) in the traces of the calls in it."""
        self._tracer = tracer if tracer.enabled else None

    def apply_batching(self, batching: BatchingSettings) -> None:
        """New micro-batch limits; batches already formed keep theirs."""
        self.batching = batching
        self._batcher.max_size = batching.ingress_max_batch_size
        self._batcher.max_in_flight = batching.ingress_max_in_flight

    async def classify(self, texts: list[str]) -> list[CachedResult]:
        if not texts:
            return []
        size, parent = self._batcher.max_size, None
        if self._tracer is not None:
            parent = self._tracer.current_parent()
        if len(texts) <= size:
            return await self._batcher.submit(texts if parent is None else _Traced(texts, parent))
        # A document's segments can outnumber a micro-batch; the model refuses a call past its own batch
        # size, so they go as full micro-batches (merging with other requests' texts like any call).
        calls = [texts[i : i + size] for i in range(0, len(texts), size)]
        parts = await asyncio.gather(
            *(self._batcher.submit(c if parent is None else _Traced(c, parent)) for c in calls)
        )
        return [result for part in parts for result in part]

    async def model_info(self) -> dict[str, object]:
        return await self._model.info()

    async def _run_batch(self, calls: list[list[str]]) -> list[list[CachedResult]]:
        texts, sizes = flatten(calls)
        parents = [c.parent for c in calls if isinstance(c, _Traced)]
        if self._tracer is None or not parents:
            tokens = await self._encode(texts)
            scores = await self._model.predict(tokens)
        else:  # in the first traced call's trace, linked to the other traced calls
            size = {"samo.batch_size": len(texts), "samo.calls": len(calls)}
            with self._tracer.linked("micro_batch", parents, **size):
                with self._tracer.span("tokenize"):
                    tokens = await self._encode(texts)
                with self._tracer.span("model.call", **{"samo.batch_size": len(texts)}):
                    scores = await self._model.predict(tokens)
        results = [CachedResult(row, bool(flag)) for row, flag in zip(scores, tokens.truncated, strict=True)]
        return unflatten(results, sizes)

    async def _encode(self, texts: list[str]) -> TokenBatch:
        if not isinstance(self._encoder, TextTokenizer):
            return await self._encoder.encode(texts)
        started = time.perf_counter()
        tokens = self._encoder.encode_batch(texts)  # on the loop: a thread hop costs more than it takes
        if self._observer is not None:
            self._observer.on_tokenize(time.perf_counter() - started)
        return tokens


class ModelObserver(Protocol):
    """What a model call reports for metrics (``observability.metrics.Metrics`` is one)."""

    def on_model_batch(self, size: int, seconds: float) -> None: ...


class LocalModel:
    """A :class:`ModelClient` over a :class:`ModelRunner` in this process.

    ORT releases the GIL: the runner works in a thread, so the event loop serves and the next batch fills.
    ``observer`` gets each call's size and ORT time, as the model deployment records them in Ray mode.
    """

    def __init__(self, runner: ModelRunner, observer: ModelObserver | None = None) -> None:
        self.runner = runner
        self._observer = observer

    async def predict(self, tokens: TokenBatch) -> np.ndarray:
        started = time.perf_counter()
        scores = await asyncio.to_thread(self.runner.predict, tokens)
        if self._observer is not None:
            self._observer.on_model_batch(len(tokens), time.perf_counter() - started)
        return scores

    async def info(self) -> dict[str, object]:
        await asyncio.to_thread(self.runner.health)
        return {"provider": self.runner.provider}


class LocalPipeline(BatchingPipeline):
    """The pipeline with tokenizer and model in this process (tests, benchmarks, one-process serving)."""

    def __init__(self, tokenizer: TextTokenizer, runner: ModelRunner, batching: BatchingSettings | None = None) -> None:
        super().__init__(tokenizer, LocalModel(runner), batching or BatchingSettings())
