"""The sections of :class:`samo_serve.settings.Settings`, each a frozen pydantic model of one concern.

Import them from ``samo_serve.settings``; they live here so that the settings stay one home of every
default without one module growing past what a reader takes in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: the p95 latency target in ms (the docs' "p95 < 500 ms"): /stats recommends more replicas above it
#: (``observability.recommendations.p95_target_ms``)
P95_TARGET_MS = 500.0


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


class TracingSettings(_Section):
    """OpenTelemetry traces of requests across the hops, exported as OTLP/HTTP (docs/METRICS.md, "Traces")."""

    enabled: bool = False
    #: the collector's base URL, e.g. ``http://127.0.0.1:4318``: spans go to ``{otlp_endpoint}/v1/traces``
    otlp_endpoint: str = "http://127.0.0.1:4318"
    #: the share of requests traced where the caller's ``traceparent`` has not decided (parent-based)
    sample_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    #: ``service.name`` of the spans
    service_name: str = "samo-serve"
    #: seconds one export may take before it is dropped (counted in ``samo_trace_export_failures_total``)
    export_timeout_s: float = Field(default=5.0, gt=0)


class DriftSettings(_Section):
    """The drift watch: each tenant's recent texts against the model's reference (docs/METRICS.md, "Drift")."""

    enabled: bool = True
    #: the sliding window: each tenant's texts of the last this many hours (read from the hourly rollups)
    window_hours: int = Field(default=24, ge=1, le=744)
    #: seconds between updates of the ``samo_drift_*`` gauges (each ingress replica, while the log is on)
    interval_s: float = Field(default=60.0, gt=0)
    #: texts a tenant's window needs before its drift is judged (fewer: no gauge, ``judged: false``)
    min_texts: int = Field(default=200, ge=1)
    #: past this Jensen-Shannon divergence of the emotion mix, a tenant has drifted (the alert's threshold)
    mix_js_threshold: float = Field(default=0.1, gt=0, le=1)
    #: past this population-stability index of the top score, the model is less (or more) sure than it was
    confidence_psi_threshold: float = Field(default=0.25, gt=0)


class ObservabilitySettings(_Section):
    """Metrics (docs/METRICS.md) and the thresholds behind /stats recommendations."""

    metrics_enabled: bool = True
    recommendations: RecommendationSettings = RecommendationSettings()
    drift: DriftSettings = DriftSettings()


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
