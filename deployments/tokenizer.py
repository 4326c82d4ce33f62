"""Tokenizer deployment: one call encodes a whole ingress micro-batch; :class:`TokenizerClient` calls it."""

from __future__ import annotations

import time
from typing import Any

from ray.serve.handle import DeploymentHandle

from deployments.common import served_card, settings_from_args
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch
from samo_serve.observability.metrics import Metrics, NullFactory
from samo_serve.observability.ray_metrics import RayFactory

__all__ = ["Tokenizer", "TokenizerClient"]


class Tokenizer:
    def __init__(self, args: dict[str, Any]) -> None:
        settings = settings_from_args(args)
        card = served_card(settings, verify=False)
        self._tokenizer = TextTokenizer.for_card(card, settings.model_dir)
        self._metrics = Metrics(RayFactory() if settings.observability.metrics_enabled else NullFactory())

    def encode(self, texts: list[str]) -> TokenBatch:
        started = time.perf_counter()
        tokens = self._tokenizer.encode_batch(texts)
        self._metrics.tokenize.observe(time.perf_counter() - started)
        return tokens


class TokenizerClient:
    """The :class:`samo_serve.core.pipeline.AsyncEncoder` over a Tokenizer handle (``tokenize_in: deployment``)."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def encode(self, texts: list[str]) -> TokenBatch:
        tokens: TokenBatch = await self._handle.encode.remote(texts)
        return tokens
