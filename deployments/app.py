"""The application builder: ``import_path: deployments.app:build_app`` in configs/serve.yaml.

Args from the config's ``args:`` block are validated by :class:`samo_serve.settings.Settings` here, at
build time, so a bad config fails before any replica starts. Deployment options below are defaults;
the ``deployments:`` section of configs/serve.yaml overrides them (replicas, autoscaling, resources).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.model import EmotionModel
from deployments.stats_hub import StatsHub
from deployments.tokenizer import Tokenizer
from samo_serve.settings import Settings

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
        ray_actor_options={"num_cpus": 0.5},
        # One call is one ingress micro-batch; several must queue here for batches to merge.
        max_ongoing_requests=max(64, batch.model_max_batch_size),
    )(EmotionModel).bind(plain)
    ingress = serve.deployment(
        name="Ingress",
        ray_actor_options={"num_cpus": 0.25},
        # Must be >= the micro-batch size, or it caps the batch (Serve's default is 5).
        max_ongoing_requests=max(256, batch.ingress_max_batch_size * 2),
    )(serve.ingress()(Ingress))
    # Merges every ingress replica's per-second windows for /stats (a twentieth of a CPU: it adds arrays).
    hub = serve.deployment(name="StatsHub", num_replicas=1, ray_actor_options={"num_cpus": 0.05})(StatsHub).bind(plain)
    if settings.tokenize_in == "ingress":
        app: Application = ingress.bind(model, plain, None, hub)
        return app
    tokenizer = serve.deployment(
        name="Tokenizer",
        ray_actor_options={"num_cpus": 0.25},
        max_ongoing_requests=64,
    )(Tokenizer).bind(plain)
    app = ingress.bind(model, plain, tokenizer, hub)
    return app
