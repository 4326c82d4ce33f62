"""Model deployment: ONNX Runtime behind ``@serve.batch``, merging calls from every ingress replica;
and :class:`EmotionModelClient`, the ingress's way to call it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from deployments.common import served_card, settings_from_args
from samo_serve.core.batching import count_texts, merge_token_batches, split_rows
from samo_serve.core.model_runner import OrtModelRunner, with_gpu_share
from samo_serve.core.tokenizer import TokenBatch
from samo_serve.errors import ModelUnavailable, Overloaded
from samo_serve.observability.memory import check_memory
from samo_serve.observability.metrics import Metrics, NullFactory, ProcessSampler
from samo_serve.observability.ray_metrics import RayFactory
from samo_serve.observability.tracing import Tracing, traceparent_of_current
from samo_serve.settings import BatchingSettings, updated_batching

__all__ = ["REPLICA_GONE", "REPLICA_RETRIES", "EmotionModel", "EmotionModelClient"]

log = logging.getLogger(__name__)

# A model replica killed or restarting under a call: the batch is sent again (Serve routes it elsewhere).
REPLICA_GONE = (RayActorError, ReplicaUnavailableError)
REPLICA_RETRIES = 2
_BATCHING = BatchingSettings()  # the defaults, for the decorator below (no environment is read)


class EmotionModel:
    def __init__(self, args: dict[str, Any]) -> None:
        settings = settings_from_args(args)
        self._max_rss_mb = settings.limits.max_rss_mb
        self._card = served_card(settings, verify=settings.verify_model_sha256)
        # The ORT memory cap follows this replica's num_gpus unless runner.gpu_fraction says otherwise.
        assigned = ray.get_runtime_context().get_assigned_resources().get("GPU")  # type: ignore[no-untyped-call]
        runner_settings = with_gpu_share(settings.runner, assigned)
        self._runner = OrtModelRunner.for_card(self._card, settings.model_dir, runner_settings)
        factory = RayFactory() if settings.observability.metrics_enabled else NullFactory()
        self._metrics = Metrics(factory)
        self._tracing = Tracing(settings.tracing, "model", on_export_failure=self._metrics.trace_export_failures.inc)
        self._sampler = ProcessSampler(self._metrics)
        self._info_tags = {"version": self._card.version, "provider": self._runner.provider}
        self._metrics.model_info.set(1, self._info_tags)
        self._apply_batching(settings.batching)

    def _apply_batching(self, batching: BatchingSettings) -> None:
        self._batching = batching
        self.predict.set_max_batch_size(batching.model_max_batch_size)  # type: ignore[attr-defined]
        self.predict.set_batch_wait_timeout_s(batching.model_batch_wait_s)  # type: ignore[attr-defined]

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._apply_batching(updated_batching(self._batching, user_config))

    # max_batch_size counts texts (batch_size_fn), not calls: each call is a micro-batch already. The values
    # are the settings' defaults; __init__ and reconfigure() apply the configured ones.
    @serve.batch(
        max_batch_size=_BATCHING.model_max_batch_size,
        batch_wait_timeout_s=_BATCHING.model_batch_wait_s,
        batch_size_fn=count_texts,
    )
    async def predict(self, batches: list[TokenBatch]) -> list[np.ndarray]:
        merged = merge_token_batches(batches)
        started, began = time.perf_counter(), time.time()
        # ORT releases the GIL: run it off the event loop so the next batch fills meanwhile.
        scores = await asyncio.to_thread(self._runner.predict, merged)
        self._metrics.on_model_batch(len(merged), time.perf_counter() - started)
        if self._tracing.enabled:
            self._tracing.model_spans(batches, began, time.time(), len(merged))
        return split_rows(scores, [len(b) for b in batches])

    def info(self) -> dict[str, object]:
        self._runner.health()
        return {"provider": self._runner.provider, "version": self._card.version}

    def check_health(self) -> None:
        # Serve calls this every 10 s: memory, CPU and the model gauge ride along (a gauge set only once in
        # __init__ was sometimes missing from the first exports of a fresh replica).
        self._sampler.sample_process()
        self._metrics.model_info.set(1, self._info_tags)
        self._runner.health()
        check_memory(self._max_rss_mb)  # past its bound the replica is replaced by Serve


class EmotionModelClient:
    """The :class:`samo_serve.core.pipeline.ModelClient` over an EmotionModel handle: one call per micro-batch.

    A replica that dies under a call is retried on another (Serve replaces the dead one); a full queue
    is the client's to retry later (503 with Retry-After), not a failure of the service.
    """

    def __init__(self, handle: DeploymentHandle[Any], backoff_s: float = 0.05) -> None:
        self._handle = handle
        self._backoff_s = backoff_s

    async def predict(self, tokens: TokenBatch) -> np.ndarray:
        if (traceparent := traceparent_of_current()) is not None:  # the model replica's spans join this trace
            tokens = dataclasses.replace(tokens, traceparent=traceparent, sent_at=time.time())
        for attempt in range(REPLICA_RETRIES + 1):
            try:
                scores: np.ndarray = await self._handle.predict.remote(tokens)
                return scores
            except BackPressureError as exc:
                raise Overloaded("the model's queue is full; retry shortly", headers={"Retry-After": "1"}) from exc
            except REPLICA_GONE as exc:
                if attempt == REPLICA_RETRIES:
                    raise ModelUnavailable(f"model replica unavailable: {type(exc).__name__}") from exc
                log.warning("model replica gone (%s); retrying on another", type(exc).__name__)
                await asyncio.sleep(self._backoff_s * (attempt + 1))
        raise AssertionError("unreachable")

    async def info(self) -> dict[str, object]:
        info: dict[str, object] = await self._handle.info.remote()
        return info
