"""The one place defaults live: a pydantic settings model read from ``SAMO_*`` env vars and Serve args.

Nested values use ``__`` in env names, e.g. ``SAMO_RUNNER__DEVICE=cpu``, ``SAMO_LIMITS__MAX_BATCH_TEXTS=32``.
Nothing is read at import time: build a :class:`Settings` where it is needed and pass typed sub-models on.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    "LimitSettings",
    "ObservabilitySettings",
    "RateLimitSettings",
    "RateTier",
    "RecommendationSettings",
    "RequestLogSettings",
    "RunnerSettings",
    "Settings",
    "default_data_dir",
    "default_keys_file",
    "default_model_dir",
    "ingress_min_ongoing_requests",
    "model_dir_named",
    "shipped_model_dir",
    "updated_batching",
]

DEFAULT_MODEL_NAME = "goemotions-minilm"

#: the p95 latency target in ms (the docs' "p95 < 500 ms"): /stats recommends more replicas above it
#: (``observability.recommendations.p95_target_ms``)
P95_TARGET_MS = 500.0

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerSettings(_Section):
    """ONNX Runtime: where and how the model runs."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: which exported variant of the card to serve: ``default`` is the card's (int8 on the shipped model)
    precision: Literal["default", "int8", "fp32", "fp16"] = "default"
    #: how a model call is run. ``per_text``: each text alone (batch 1, no padding), spread over
    #: ``sessions`` single-threaded ORT sessions: a text's scores never depend on its neighbours (dynamic
    #: int8 quantizes each padded batch with one activation scale) and, on arrival-order traffic, it
    #: measured fastest on CPUs (docs/PERFORMANCE.md, "The model's execution policy"). ``batched``:
    #: length-bucketed sub-batches of ``max_sub_batch`` (what a GPU needs). ``auto``: batched on CUDA,
    #: per_text on CPU
    policy: Literal["auto", "per_text", "batched"] = "auto"
    #: ORT sessions of this replica, each used by one thread at a time; 0: one per core this process may
    #: run on (one on CUDA)
    sessions: int = Field(default=0, ge=0)
    #: threads of each session; 0 = ORT decides (all physical cores)
    intra_op_threads: int = Field(default=1, ge=0)
    inter_op_threads: int = Field(default=1, ge=0)
    allow_spinning: bool = False
    #: this replica's share of a GPU (its num_gpus); gpu_mem_limit = fraction x device memory
    gpu_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    gpu_mem_limit_bytes: int | None = Field(default=None, gt=0)
    max_sub_batch: int = Field(default=64, ge=1)
    length_bucketing: bool = True
    max_pad_ratio: float = Field(default=1.5, ge=1.0)


class BatchingSettings(_Section):
    """Micro-batching on both batched hops. Runtime-tunable through Serve's ``user_config``.

    The model's concurrent batches are fixed at 1 in the deployment: Serve's ``@serve.batch`` cannot
    change that after the decorator runs.
    """

    ingress_max_batch_size: int = Field(default=64, ge=1)
    #: batches the ingress keeps in flight; calls arriving meanwhile queue and leave together (no timer)
    ingress_max_in_flight: int = Field(default=2, ge=1)
    #: counted in texts, not calls: one model call carries a whole ingress micro-batch
    model_max_batch_size: int = Field(default=128, ge=1)
    #: 0: take whatever calls are queued when the model frees up (they queue while it runs)
    model_batch_wait_s: float = Field(default=0.0, ge=0.0)


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


def updated_batching(current: BatchingSettings, user_config: dict[str, Any]) -> BatchingSettings:
    """Apply a Serve ``user_config`` (``{"batching": {...}}``) on top of the current values.

    Keys the update leaves out keep their current value (not the default), and the result is validated.
    """
    update = user_config.get("batching") or {}
    return BatchingSettings(**{**current.model_dump(), **update})


class CacheSettings(_Section):
    """L1 in each ingress replica, L2 in Redis (only when ``redis_url`` is set), L3 in the request log."""

    l1_enabled: bool = True
    l1_max_entries: int = Field(default=50_000, ge=1)
    l1_ttl_s: float = Field(default=3600.0, gt=0)
    l2_enabled: bool = True
    l2_ttl_s: int = Field(default=86_400, ge=1)
    #: a new value format gets a new prefix, so old replicas and new ones never read each other's values
    l2_prefix: str = "samo:r1:"
    #: Redis sits on the request path: a slow Redis must cost at most this, then the model answers
    l2_timeout_s: float = Field(default=0.05, gt=0)
    l2_max_connections: int = Field(default=32, ge=1)
    #: look earlier results up in the request log (by text hash and model version); off: it costs a query
    l3_enabled: bool = False
    l3_timeout_s: float = Field(default=0.1, gt=0)
    #: consecutive errors that open a level's circuit, and how long it stays open before one trial call
    circuit_failures: int = Field(default=3, ge=1)
    circuit_open_s: float = Field(default=5.0, gt=0)
    #: one cache for every tenant: a repeat of another tenant's text is a hit (faster, fewer model calls),
    #: but then a tenant can test whether any other tenant sent a given text (a "cache" of l1/l2/l3). Off:
    #: every level is keyed by tenant, so another tenant's texts are always a miss
    shared_across_tenants: bool = False


class RequestLogSettings(_Section):
    """The request log: a bounded queue written in batches, off the request path (docs/STORAGE.md)."""

    enabled: bool = True
    #: rows held in memory; past this they are spilled to a file under ``data_dir/spill`` and replayed later
    queue_max_rows: int = Field(default=20_000, ge=1)
    flush_interval_ms: int = Field(default=250, ge=1)
    flush_rows: int = Field(default=1_000, ge=1)
    #: a failed write is retried with exponential backoff up to this many seconds apart
    retry_max_backoff_s: float = Field(default=5.0, gt=0)
    #: per-statement bound, so a hung database cannot stall shutdown
    statement_timeout_s: float = Field(default=10.0, gt=0)
    #: raw rows older than this many days (by ``created_at``) are dropped (PostgreSQL: whole day partitions;
    #: SQLite: batched deletes); the hourly rollups that analytics read stay. None: keep every row
    retention_days: int | None = Field(default=None, ge=1)
    #: how often the writer task creates partitions ahead and applies retention
    maintenance_interval_s: float = Field(default=3600.0, gt=0)
    #: key of the keyed ``text_hash`` (HMAC-SHA256); never logged or returned. Unset: read from
    #: ``hash_key_file``, which is generated on first use. Replicas on several machines must share it
    hash_key: SecretStr | None = None
    #: where the generated key is kept; default ``data_dir/request-log.key`` (beside the SQLite log)
    hash_key_file: Path | None = None


class LimitSettings(_Section):
    """Input limits and backpressure; see docs/API.md. A text longer than the model's window is read as a
    document, segment by segment (``documents``)."""

    #: 50,000: a long journal entry with room to spare (~8,000 words)
    max_text_chars: int = Field(default=50_000, ge=1)
    #: sentences and windows one text may have; past it 413 TEXT_TOO_LONG naming the limit (or, with
    #: ``documents.over_max_segments: truncate``, the first ones are read). Sized for 50,000 characters
    #: of short sentences; each segment costs what a text does
    max_segments: int = Field(default=1_000, ge=1)
    max_batch_texts: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    #: a request's body must have arrived whole within this, from the moment it is read: else 408
    #: BODY_TIMEOUT (a client sending a byte a second held a slot for as long as it liked)
    body_timeout_s: float = Field(default=10.0, gt=0)
    #: headers of one request, in number and in bytes (names and values): past either, 431
    max_header_count: int = Field(default=100, ge=8)
    max_header_bytes: int = Field(default=32_768, ge=1024)
    #: a request's line and headers must arrive within this (samo_serve.http.connections): else 408
    #: HEADER_TIMEOUT and the connection closes (one that never sent a request was held for good)
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: connections one server process holds; past it 503 TOO_MANY_CONNECTIONS. Below ``ulimit -n`` (20,000
    #: idle sockets took the last descriptor). An Ingress's ``max_ongoing_requests`` is at least this
    #: (``ingress_min_ongoing_requests``), so Serve never queues a request behind slow uploads
    max_connections: int = Field(default=1024, ge=16)
    #: requests a replica works on at once (waiting for a body is not work); past it 503 OVERLOADED at once.
    #: ``INGRESS_PROBE_HEADROOM`` below the Ingress's ``max_ongoing_requests``, or Serve queues first
    max_in_flight_requests: int = Field(default=192, ge=1)
    #: a prediction taking longer is answered 503 TIMEOUT (and its work cancelled)
    request_timeout_s: float = Field(default=30.0, gt=0)
    #: a replica whose resident memory passes this fails its health check, so Serve replaces it
    max_rss_mb: int | None = Field(default=None, ge=64)


class DocumentSettings(_Section):
    """Texts longer than the model's window: sentences and windows, scores aggregated (docs/API.md)."""

    #: false: the model reads the first ``max_length`` tokens of a long text, as before 0.6 (``truncated``)
    enabled: bool = True
    #: document score of each label from its segments' (samo_serve.core.segments.AGGREGATIONS); ``max``
    #: keeps each sentence's strongest emotions: the union of its sentences' labels (docs/MODEL.md)
    aggregation: Literal["max", "mean", "length_mean", "top2_mean", "noisy_or"] = "max"
    #: a document's ``primary``: the label over its threshold in most of the text (``neutral`` only if
    #: nothing else is), or ``max``: the strongest score (docs/MODEL.md)
    primary: Literal["coverage", "max"] = "coverage"
    #: past ``limits.max_segments``: refuse the text (413), or read its first segments (``truncated_by``)
    over_max_segments: Literal["reject", "truncate"] = "reject"
    #: emoji become their names before the model reads a text (the cache key follows). Off: the shipped
    #: model was not trained on names and reads them literally ("face with tears of joy" adds joy): on the
    #: GoEmotions test texts with emoji, micro-F1 0.587 as they are, 0.542 named (docs/MODEL.md, "Emoji")
    name_emoji: bool = False


class RecommendationSettings(_Section):
    """Thresholds of the /stats recommendations (samo_serve.observability.recommendations, docs/METRICS.md)."""

    #: p95 latency over the last 5 minutes above this many ms: advise more EmotionModel replicas
    p95_target_ms: float = Field(default=P95_TARGET_MS, gt=0)
    #: below this share of texts answered by any cache level (with enough traffic to judge)
    low_hit_rate: float = Field(default=0.1, ge=0, le=1)
    #: below this mean fill of the ingress micro-batches while traffic is high enough to batch
    low_batch_fill: float = Field(default=0.05, ge=0, le=1)
    #: throughput (requests/s) from which micro-batches below ``low_batch_fill`` are advised on
    busy_rps: float = Field(default=20.0, ge=0)
    #: above this share of failed requests: the errors advice, with what failed
    error_rate: float = Field(default=0.01, ge=0, le=1)
    #: a replica's resident memory above this share of ``limits.max_rss_mb``: the memory advice
    memory_share: float = Field(default=0.85, gt=0, le=1)
    #: requests in the window before the hit-rate, latency and error advice judge anything
    min_requests: int = Field(default=100, ge=1)


class ObservabilitySettings(_Section):
    """Metrics (docs/METRICS.md) and the thresholds behind /stats recommendations."""

    metrics_enabled: bool = True
    recommendations: RecommendationSettings = RecommendationSettings()


class RateTier(_Section):
    #: texts per second refilled, and the most texts at once
    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


class RateLimitSettings(_Section):
    """Token buckets per API key (per client IP when no key is configured), in Redis when it is set."""

    enabled: bool = False
    #: a key's tier is chosen at ``samo-serve keys create --tier``; unknown tiers get ``default``
    tiers: dict[str, RateTier] = Field(default_factory=lambda: {"default": RateTier(per_second=50, burst=100)})
    anonymous: RateTier = RateTier(per_second=20, burst=40)
    redis_prefix: str = "samo:rl:"

    @model_validator(mode="after")
    def _has_default(self) -> RateLimitSettings:
        if "default" not in self.tiers:
            raise ValueError("rate_limits.tiers needs a `default` tier")
        return self


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
