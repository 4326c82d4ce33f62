"""The composition root: the one place a running service is wired from settings, in Ray and in one process.

Both ways of serving call :func:`build_service` with what differs between them, passed in: the model
client (a Serve handle to the model deployment, or the runner in this process) and the telemetry over
the metrics backend (Ray's metrics pipeline, or a Prometheus registry). Everything else (the one
tokenizer of the process, the micro-batching pipeline, caches, request log, the service) is built here
the same way for both.

Example:
    One process (``samo_serve.ops.single_process``)::

        telemetry = Telemetry.from_settings(settings, PrometheusFactory())
        runner = OrtModelRunner.for_card(card, settings.model_dir, settings.runner)
        service = build_service(settings, LocalModel(runner, telemetry.metrics), telemetry, card)
"""

from __future__ import annotations

from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import AsyncEncoder, BatchingPipeline, ModelClient
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

__all__ = ["build_service"]


def build_service(
    settings: Settings,
    model: ModelClient,
    telemetry: Telemetry,
    card: ModelCard,
    encoder: AsyncEncoder | None = None,
) -> EmotionService:
    """The prediction service over ``model``, recording into ``telemetry``.

    Args:
        card: the served model's card (``samo_serve.core.model_card.served_card``).
        encoder: a tokenizer elsewhere (the Tokenizer deployment); default: this process's tokenizer,
            the same one that splits documents (one per process).

    Redis, the request log and its writer task come up in the app's lifespan (``EmotionService.start``).
    """
    tokenizer = TextTokenizer.for_card(card, settings.model_dir)
    pipeline = BatchingPipeline(encoder or tokenizer, model, settings.batching)
    pipeline.observe(telemetry)
    pipeline.trace(telemetry.tracing)
    return EmotionService.from_settings(card, pipeline, settings, telemetry=telemetry, tokenizer=tokenizer)
