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
from samo_serve.compose import build_service
from samo_serve.core.pipeline import BatchingPipeline
from samo_serve.http.app import create_app
from samo_serve.observability.memory import check_memory
from samo_serve.observability.ray_metrics import RayFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.ops.launcher import harden_direct_ingress
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
        harden_direct_ingress(self._settings.limits)  # before Serve starts this replica's server (direct ingress)
        telemetry = Telemetry.from_settings(
            self._settings,
            RayFactory(),  # Ray's metrics pipeline: scraped from Ray's Prometheus endpoint (docs/METRICS.md)
            hub=HubClient(stats_hub) if stats_hub is not None else None,
            replica_id=serve.get_replica_context().replica_id.unique_id,
        )
        # The tokenizer in this process by default (cheaper than a hop), or the Tokenizer deployment when bound.
        encoder = TokenizerClient(tokenizer) if tokenizer is not None else None
        card = served_card(self._settings, verify=False)
        self._service = build_service(self._settings, EmotionModelClient(model), telemetry, card, encoder)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve (proxy or direct ingress) sets X-Request-ID on every response itself: the id our handlers see.
        return create_app(self._settings, self._service, echo_request_id=False)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        pipeline = self._service.pipeline
        if isinstance(pipeline, BatchingPipeline):  # always, as build_service makes it
            pipeline.apply_batching(updated_batching(pipeline.batching, user_config))

    def check_health(self) -> None:
        # Past its memory bound the replica reports unhealthy and Serve replaces it.
        check_memory(self._settings.limits.max_rss_mb)


__all__ = ["Ingress"]
