"""Ingress deployment: the FastAPI app of ``samo_serve.http.app`` over a handle-backed pipeline."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from deployments.common import served_card, settings_from_args
from deployments.stats_hub import HubClient
from samo_serve.core.batching import flatten, unflatten
from samo_serve.core.micro_batcher import MicroBatcher
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch
from samo_serve.errors import ModelUnavailable, Overloaded
from samo_serve.http.app import create_app
from samo_serve.observability.memory import check_memory
from samo_serve.observability.ray_metrics import RayFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService
from samo_serve.settings import BatchingSettings, updated_batching
from samo_serve.storage.cache import CachedResult

log = logging.getLogger(__name__)

# A model replica killed or restarting under a call: the batch is sent again (Serve routes it elsewhere).
REPLICA_GONE = (RayActorError, ReplicaUnavailableError)
REPLICA_RETRIES = 2


class HandlePipeline:
    """The :class:`samo_serve.core.pipeline.Pipeline` over Ray handles: one hop per micro-batch per deployment."""

    def __init__(
        self,
        tokenizer: TextTokenizer | DeploymentHandle[Any],
        model: DeploymentHandle[Any],
        batching: BatchingSettings,
    ) -> None:
        self._tokenizer = tokenizer  # in-process, or a handle to the Tokenizer deployment
        self._model = model
        # Not @serve.batch: its fixed wait window cost every request at low load (samo_serve.core.micro_batcher).
        self._batcher: MicroBatcher[list[str], list[CachedResult]] = MicroBatcher(
            self._classify_batch, batching.ingress_max_batch_size, batching.ingress_max_in_flight
        )
        self.telemetry: Telemetry | None = None
        self.apply_batching(batching)

    def observe(self, telemetry: Telemetry) -> None:
        """Report tokenizer time and micro-batch sizes and waits to ``telemetry``."""
        self.telemetry = telemetry
        self._batcher.on_batch = lambda size, wait_s: telemetry.on_batch(size, self._batcher.max_size, wait_s)

    def apply_batching(self, batching: BatchingSettings) -> None:
        self.batching = batching
        self._batcher.max_size = batching.ingress_max_batch_size
        self._batcher.max_in_flight = batching.ingress_max_in_flight

    async def classify(self, texts: list[str]) -> list[CachedResult]:
        return await self._batcher.submit(texts)

    async def _classify_batch(self, calls: list[list[str]]) -> list[list[CachedResult]]:
        texts, sizes = flatten(calls)
        if isinstance(self._tokenizer, TextTokenizer):
            started = time.perf_counter()
            tokens = self._tokenizer.encode_batch(texts)  # ~20 us a text: cheaper than a hop
            if self.telemetry is not None:
                self.telemetry.on_tokenize(time.perf_counter() - started)
        else:
            tokens = await self._tokenizer.encode.remote(texts)
        scores = await self._predict(tokens)
        results = [CachedResult(row, bool(flag)) for row, flag in zip(scores, tokens.truncated, strict=True)]
        return unflatten(results, sizes)

    async def _predict(self, tokens: TokenBatch) -> Any:
        """One model call; a replica that died under it is retried on another (Serve replaces the dead one)."""
        for attempt in range(REPLICA_RETRIES + 1):
            try:
                return await self._model.predict.remote(tokens)
            except BackPressureError as exc:
                raise Overloaded("the model's queue is full; retry shortly", headers={"Retry-After": "1"}) from exc
            except REPLICA_GONE as exc:
                if attempt == REPLICA_RETRIES:
                    raise ModelUnavailable(f"model replica unavailable: {type(exc).__name__}") from exc
                log.warning("model replica gone (%s); retrying on another", type(exc).__name__)
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def model_info(self) -> dict[str, object]:
        info: dict[str, object] = await self._model.info.remote()
        return info


class Ingress:
    def __init__(
        self,
        model: DeploymentHandle[Any],
        args: dict[str, Any],
        tokenizer: DeploymentHandle[Any] | None = None,
        stats_hub: DeploymentHandle[Any] | None = None,
    ) -> None:
        self._settings = settings_from_args(args)
        card = served_card(self._settings, verify=False)
        tokenize: TextTokenizer | DeploymentHandle[Any] = tokenizer or TextTokenizer.for_card(
            card, self._settings.model_dir
        )
        self._pipeline = HandlePipeline(tokenize, model, self._settings.batching)
        # Redis, the request log and its writer task come up in the app's lifespan (Serve runs it per replica).
        self._service = EmotionService.from_settings(card, self._pipeline, self._settings)
        self._telemetry = Telemetry.from_settings(
            self._settings,
            RayFactory(),  # Ray's metrics pipeline: scraped from Ray's Prometheus endpoint (docs/METRICS.md)
            hub=HubClient(stats_hub) if stats_hub is not None else None,
            replica_id=serve.get_replica_context().replica_id.unique_id,
        )
        self._pipeline.observe(self._telemetry)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve (proxy or direct ingress) sets X-Request-ID on every response itself: the id our handlers see.
        return create_app(self._settings, self._service, echo_request_id=False, telemetry=self._telemetry)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._pipeline.apply_batching(updated_batching(self._pipeline.batching, user_config))

    def check_health(self) -> None:
        # Past its memory bound the replica reports unhealthy and Serve replaces it.
        check_memory(self._settings.limits.max_rss_mb)


__all__ = ["HandlePipeline", "Ingress"]
