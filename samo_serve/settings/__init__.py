"""The one place defaults live: a pydantic settings model read from ``SAMO_*`` env vars and Serve args.

Nested values use ``__`` in env names, e.g. ``SAMO_RUNNER__DEVICE=cpu``, ``SAMO_LIMITS__MAX_BATCH_TEXTS=32``.
Nothing is read at import time: build a :class:`Settings` where it is needed and pass typed sub-models on.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from samo_serve.settings.sections import (
    P95_TARGET_MS,
    BatchingSettings,
    CacheSettings,
    DocumentSettings,
    DriftSettings,
    LimitSettings,
    ObservabilitySettings,
    RateLimitSettings,
    RateTier,
    RecommendationSettings,
    RequestLogSettings,
    RunnerSettings,
    TracingSettings,
    updated_batching,
)

__all__ = [
    "DEFAULT_METRICS_PORT",
    "INGRESS_HEALTH_CHECK_PERIOD_S",
    "INGRESS_MIN_ONGOING_REQUESTS",
    "INGRESS_NUM_CPUS",
    "INGRESS_ONGOING_BATCH_FACTOR",
    "INGRESS_PROBE_HEADROOM",
    "INGRESS_TARGET_ONGOING_REQUESTS",
    "MODEL_MIN_ONGOING_REQUESTS",
    "MODEL_NUM_CPUS",
    "P95_TARGET_MS",
    "PLAN_HEADROOM",
    "READY_TIMEOUT_S",
    "STATS_HUB_NUM_CPUS",
    "TOKENIZER_MAX_ONGOING_REQUESTS",
    "TOKENIZER_NUM_CPUS",
    "BatchingSettings",
    "CacheSettings",
    "DocumentSettings",
    "DriftSettings",
    "LimitSettings",
    "ObservabilitySettings",
    "RateLimitSettings",
    "RateTier",
    "RecommendationSettings",
    "RequestLogSettings",
    "RunnerSettings",
    "Settings",
    "TracingSettings",
    "default_data_dir",
    "default_keys_file",
    "default_model_dir",
    "ingress_min_ongoing_requests",
    "model_dir_named",
    "shipped_model_dir",
    "updated_batching",
]

DEFAULT_MODEL_NAME = "goemotions-minilm"


# Options of the commands around the service (not read from SAMO_* or args:; their flags override them).

#: Ray's Prometheus endpoint of a local run (``samo-serve run --metrics-port``), on 127.0.0.1
DEFAULT_METRICS_PORT = 8080
#: seconds ``samo-serve run`` waits for /readyz to answer before it gives up (``--ready-timeout``)
READY_TIMEOUT_S = 600.0
#: ``samo-serve plan --headroom``: the share of one replica's measured capacity a plan counts on
PLAN_HEADROOM = 0.8

# Ray Serve options of the deployments ``deployments.app:build_app`` creates, where the Serve config's
# ``deployments:`` section does not set them (it overrides each one). Fractional CPUs: the deployments,
# the StatsHub and Ray's own actors fit a 2-core machine.

#: ``ray_actor_options.num_cpus`` of each Ingress replica
INGRESS_NUM_CPUS = 0.25
#: ``ray_actor_options.num_cpus`` of each EmotionModel replica
MODEL_NUM_CPUS = 0.5
#: ``ray_actor_options.num_cpus`` of each Tokenizer replica (``tokenize_in: deployment``)
TOKENIZER_NUM_CPUS = 0.25
#: ``ray_actor_options.num_cpus`` of the one StatsHub replica (it merges the ingress replicas' windows
#: for /stats: it adds arrays)
STATS_HUB_NUM_CPUS = 0.05
#: an EmotionModel replica's ``max_ongoing_requests``: this, or ``batching.model_max_batch_size`` when
#: larger. One call is one ingress micro-batch; several must queue there for batches to merge
MODEL_MIN_ONGOING_REQUESTS = 64
INGRESS_MIN_ONGOING_REQUESTS = 256  #: the least Ingress ``max_ongoing_requests`` (``ingress_min_ongoing_requests``)
#: an Ingress replica's ``max_ongoing_requests`` is at least this many times ``batching.ingress_max_batch_size``
INGRESS_ONGOING_BATCH_FACTOR = 2
#: an Ingress replica's ``max_ongoing_requests`` exceeds ``limits.max_in_flight_requests`` by at least this:
#: the slots Serve still admits when the app refuses work, for /healthz, /readyz and the 503s themselves
INGRESS_PROBE_HEADROOM = 64
#: seconds between Serve's health checks of an Ingress (Serve's: 10): nothing calls it by handle, so a
#: killed one is noticed only at its next check (10 s of a 10.5 s outage measured; docs/PERFORMANCE.md)
INGRESS_HEALTH_CHECK_PERIOD_S = 2.0
#: a Tokenizer replica's ``max_ongoing_requests``
TOKENIZER_MAX_ONGOING_REQUESTS = 64
#: ``autoscaling_config.target_ongoing_requests`` of an Ingress that ``samo-serve plan`` scales where the
#: config gives none: requests in flight per replica (what configs/serve-gpu.yaml asks for)
INGRESS_TARGET_ONGOING_REQUESTS = 64


def default_data_dir() -> Path:
    """Where the embedded default keeps its SQLite request log and spill files (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "samo-serve"


def default_keys_file() -> Path:
    """Where ``samo-serve keys`` writes and the server looks when ``SAMO_API_KEYS_FILE`` is unset (XDG config
    home): a key created in any shell reaches a server started in another, without a restart."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "samo" / "keys.json"


def default_model_dir() -> Path:
    """The shipped model: package data of ``samo_serve`` (``samo_serve/models/``), in a checkout or a wheel."""
    return shipped_model_dir(DEFAULT_MODEL_NAME)


def shipped_model_dir(name: str) -> Path:
    """The folder of the shipped model ``name`` (package data), whether it exists or not."""
    return Path(str(resources.files("samo_serve") / "models" / name))


def model_dir_named(value: str | Path) -> Path:
    """A model folder given as a path, or as the bare name of a shipped model (``goemotions-minilm-l6``): the
    choice works the same from a checkout and from an installed wheel. A folder of that name where the
    command runs wins; a name that is neither stays a path (whoever opens it says it is missing)."""
    if "/" not in str(value) and not Path(value).exists():
        shipped = shipped_model_dir(str(value))
        if (shipped / "card.json").is_file():
            return shipped
    return Path(value)


def _model_dir_named(value: object) -> object:
    return model_dir_named(value) if isinstance(value, str | Path) else value


def ingress_min_ongoing_requests(settings: Settings) -> int:
    """The least ``max_ongoing_requests`` an Ingress replica may have under ``settings``: at least twice
    the micro-batch size (or it caps the batch), the app's in-flight bound plus ``INGRESS_PROBE_HEADROOM``
    (or OVERLOADED never fires), and ``limits.max_connections`` (or requests waiting for a slow body fill
    Serve's slots and everything else queues behind them)."""
    return max(
        INGRESS_MIN_ONGOING_REQUESTS,
        settings.batching.ingress_max_batch_size * INGRESS_ONGOING_BATCH_FACTOR,
        settings.limits.max_in_flight_requests + INGRESS_PROBE_HEADROOM,
        settings.limits.max_connections,
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SAMO_", env_nested_delimiter="__", extra="forbid", protected_namespaces=(), frozen=True
    )

    #: a folder, or the name of a shipped model (docs/MODEL.md, "The student")
    model_dir: Annotated[Path, BeforeValidator(_model_dir_named)] = Field(default_factory=default_model_dir)
    #: where texts are tokenized: in the ingress (default; measured 3.7 ms less per request at c=1 and
    #: +20% rps at c=32 on 2 cores than a hop to a Tokenizer deployment), or in a Tokenizer deployment
    #: that scales on its own (worth it only when tokenizing costs more than a hop: very long texts)
    tokenize_in: Literal["ingress", "deployment"] = "ingress"
    verify_model_sha256: bool = True
    runner: RunnerSettings = RunnerSettings()
    batching: BatchingSettings = BatchingSettings()
    cache: CacheSettings = CacheSettings()
    limits: LimitSettings = LimitSettings()
    documents: DocumentSettings = DocumentSettings()
    request_log: RequestLogSettings = RequestLogSettings()
    #: L2 cache (and shared rate limits): ``redis://host:6379/0``; unset: no L2
    redis_url: str | None = None
    #: request log: ``postgresql://user@host:5432/db`` or ``sqlite:///path``; unset: SQLite in ``data_dir``
    database_url: str | None = None
    #: the SQLite request log and spill files of the embedded default
    data_dir: Path = Field(default_factory=default_data_dir)
    rate_limits: RateLimitSettings = RateLimitSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    tracing: TracingSettings = TracingSettings()
    #: API keys (``samo-serve keys create``); while the file holds an active key, every route but
    #: /healthz, /readyz and the docs needs one. Re-read when it changes; null: keys off for good
    api_keys_file: Path | None = Field(default_factory=default_keys_file)
    #: origins allowed to call the API from a browser; empty: no CORS headers at all
    cors_origins: list[str] = Field(default_factory=list)
    #: also store each text in the request log. Off by default: journal text is private; the log keeps
    #: a sha256 of the normalized text either way
    log_text: bool = False

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.batching.model_max_batch_size < self.batching.ingress_max_batch_size:
            raise ValueError("batching.model_max_batch_size must be >= batching.ingress_max_batch_size")
        if self.batching.ingress_max_batch_size < self.limits.max_batch_texts:
            # A /predict/batch request is one item of the ingress micro-batch, counted in texts.
            raise ValueError("batching.ingress_max_batch_size must be >= limits.max_batch_texts")
        return self
