"""The application builder: ``import_path: deployments.app:build_app`` in configs/serve.yaml.

Args from the config's ``args:`` block are validated by :class:`samo_serve.settings.Settings` here, at
build time, so a bad config fails before any replica starts. The deployment options below are defaults
(their values live in samo_serve/settings.py with the rest); the ``deployments:`` section of
configs/serve.yaml overrides them (replicas, autoscaling, resources).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.model import EmotionModel
from deployments.stats_hub import StatsHub
from deployments.tokenizer import Tokenizer
from samo_serve.settings import (
    INGRESS_HEALTH_CHECK_PERIOD_S,
    INGRESS_NUM_CPUS,
    MODEL_MIN_ONGOING_REQUESTS,
    MODEL_NUM_CPUS,
    STATS_HUB_NUM_CPUS,
    TOKENIZER_MAX_ONGOING_REQUESTS,
    TOKENIZER_NUM_CPUS,
    Settings,
    ingress_min_ongoing_requests,
)

__all__ = ["build_app"]


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Bind Ingress -> EmotionModel (tokenizing in the ingress), or Ingress -> Tokenizer -> EmotionModel.

    Example:
        ``serve run configs/serve.yaml`` or, from Python, ``serve.run(build_app({"runner": {"device": "cpu"}}))``.
    """
    settings = Settings(**(args or {}))
    # Replicas get the validated values (plain JSON: it must pickle and must not re-read another env).
    plain = settings.model_dump(mode="json")
    batch = settings.batching
    model = serve.deployment(
        name="EmotionModel",
        ray_actor_options={"num_cpus": MODEL_NUM_CPUS},
        # One call is one ingress micro-batch; several must queue here for batches to merge.
        max_ongoing_requests=max(MODEL_MIN_ONGOING_REQUESTS, batch.model_max_batch_size),
    )(EmotionModel).bind(plain)
    ingress = serve.deployment(
        name="Ingress",
        ray_actor_options={"num_cpus": INGRESS_NUM_CPUS},
        # Above the micro-batch size, the app's in-flight bound and its connection cap (the function says why).
        max_ongoing_requests=ingress_min_ongoing_requests(settings),
        health_check_period_s=INGRESS_HEALTH_CHECK_PERIOD_S,
    )(serve.ingress()(Ingress))
    # Merges every ingress replica's per-second windows for /stats (a twentieth of a CPU: it adds arrays).
    hub = serve.deployment(
        name="StatsHub",
        num_replicas=1,
        ray_actor_options={"num_cpus": STATS_HUB_NUM_CPUS},
    )(StatsHub).bind(plain)
    if settings.tokenize_in == "ingress":
        app: Application = ingress.bind(model, plain, None, hub)
        return app
    tokenizer = serve.deployment(
        name="Tokenizer",
        ray_actor_options={"num_cpus": TOKENIZER_NUM_CPUS},
        max_ongoing_requests=TOKENIZER_MAX_ONGOING_REQUESTS,
    )(Tokenizer).bind(plain)
    app = ingress.bind(model, plain, tokenizer, hub)
    return app
