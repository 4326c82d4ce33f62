"""Ingress deployment: the FastAPI app of ``samo_serve.http.app`` over the core pipeline, the model by handle."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.common import served_card, settings_from_args
from deployments.model import EmotionModelClient
from deployments.stats_hub import HubClient
from deployments.tokenizer import TokenizerClient
from samo_serve.core.pipeline import AsyncEncoder, BatchingPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.http.app import create_app
from samo_serve.observability.memory import check_memory
from samo_serve.observability.ray_metrics import RayFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService
from samo_serve.settings import updated_batching


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
        # In-process by default (cheaper than a hop), or the Tokenizer deployment when one is bound.
        encoder: TextTokenizer | AsyncEncoder = (
            TokenizerClient(tokenizer)
            if tokenizer is not None
            else TextTokenizer.for_card(card, self._settings.model_dir)
        )
        self._pipeline = BatchingPipeline(encoder, EmotionModelClient(model), self._settings.batching)
        self._telemetry = Telemetry.from_settings(
            self._settings,
            RayFactory(),  # Ray's metrics pipeline: scraped from Ray's Prometheus endpoint (docs/METRICS.md)
            hub=HubClient(stats_hub) if stats_hub is not None else None,
            replica_id=serve.get_replica_context().replica_id.unique_id,
        )
        # Redis, the request log and its writer task come up in the app's lifespan (Serve runs it per replica).
        self._service = EmotionService.from_settings(card, self._pipeline, self._settings, telemetry=self._telemetry)
        self._pipeline.observe(self._telemetry)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve (proxy or direct ingress) sets X-Request-ID on every response itself: the id our handlers see.
        return create_app(self._settings, self._service, echo_request_id=False)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._pipeline.apply_batching(updated_batching(self._pipeline.batching, user_config))

    def check_health(self) -> None:
        # Past its memory bound the replica reports unhealthy and Serve replaces it.
        check_memory(self._settings.limits.max_rss_mb)


__all__ = ["Ingress"]
