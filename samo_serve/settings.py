"""The one place defaults live: a pydantic settings model read from ``SAMO_*`` env vars and Serve args.

Nested values use ``__`` in env names, e.g. ``SAMO_RUNNER__DEVICE=cpu``, ``SAMO_LIMITS__MAX_BATCH_TEXTS=32``.
Nothing is read at import time: build a :class:`Settings` where it is needed and pass typed sub-models on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BatchingSettings",
    "CacheSettings",
    "LimitSettings",
    "RunnerSettings",
    "Settings",
    "default_model_dir",
    "updated_batching",
]

DEFAULT_MODEL_NAME = "goemotions-minilm"


def default_model_dir() -> Path:
    """The model shipped in the repository's ``models/`` folder."""
    return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerSettings(_Section):
    """ONNX Runtime: where and how the model runs."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: which exported variant of the card to serve: ``default`` is the card's (int8 on the shipped model)
    precision: Literal["default", "int8", "fp32", "fp16"] = "default"
    intra_op_threads: int = Field(default=2, ge=0)  # 0 = ORT decides (all physical cores)
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
    l1_enabled: bool = True
    l1_max_entries: int = Field(default=50_000, ge=1)
    l1_ttl_s: float = Field(default=3600.0, gt=0)


class LimitSettings(_Section):
    """Input limits; see docs/API.md. Text longer than the model's tokens is truncated, not refused."""

    max_text_chars: int = Field(default=10_000, ge=1)
    max_batch_texts: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SAMO_", env_nested_delimiter="__", extra="forbid", protected_namespaces=(), frozen=True
    )

    model_dir: Path = Field(default_factory=default_model_dir)
    #: where texts are tokenized: in the ingress (default; measured 3.7 ms less per request at c=1 and
    #: +20% rps at c=32 on 2 cores than a hop to a Tokenizer deployment), or in a Tokenizer deployment
    #: that scales on its own (worth it only when tokenizing costs more than a hop: very long texts)
    tokenize_in: Literal["ingress", "deployment"] = "ingress"
    verify_model_sha256: bool = True
    runner: RunnerSettings = RunnerSettings()
    batching: BatchingSettings = BatchingSettings()
    cache: CacheSettings = CacheSettings()
    limits: LimitSettings = LimitSettings()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.batching.model_max_batch_size < self.batching.ingress_max_batch_size:
            raise ValueError("batching.model_max_batch_size must be >= batching.ingress_max_batch_size")
        if self.batching.ingress_max_batch_size < self.limits.max_batch_texts:
            # A /predict/batch request is one item of the ingress micro-batch, counted in texts.
            raise ValueError("batching.ingress_max_batch_size must be >= limits.max_batch_texts")
        return self
