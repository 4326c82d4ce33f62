"""Settings: defaults, ``SAMO_*`` env parsing, cross-field checks and refusals of bad values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from samo_serve.settings import (
    BatchingSettings,
    CacheSettings,
    LimitSettings,
    RunnerSettings,
    Settings,
    default_model_dir,
)


def test_no_samo_env_leaks_into_unit_tests() -> None:
    assert not [name for name in os.environ if name.upper().startswith("SAMO_")]


def test_ray_init_is_refused() -> None:
    ray = pytest.importorskip("ray")
    with pytest.raises(RuntimeError, match="must not start Ray"):
        ray.init()


def test_defaults_are_valid_and_consistent() -> None:
    s = Settings()
    assert s.batching.model_max_batch_size >= s.batching.ingress_max_batch_size >= s.limits.max_batch_texts
    assert s.model_dir == default_model_dir()
    assert s.verify_model_sha256 is True
    assert s.runner.device == "auto"


def test_default_model_dir_is_the_shipped_model() -> None:
    path = default_model_dir()
    assert path.is_absolute()
    assert path.name == "goemotions-minilm"
    assert path.parent.name == "models"


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"SAMO_RUNNER__DEVICE": "cpu"}, lambda s: s.runner.device == "cpu"),
        (
            {"SAMO_LIMITS__MAX_BATCH_TEXTS": "32"},
            lambda s: s.limits.max_batch_texts == 32,
        ),
        ({"SAMO_CACHE__L1_ENABLED": "false"}, lambda s: s.cache.l1_enabled is False),
        ({"SAMO_VERIFY_MODEL_SHA256": "false"}, lambda s: s.verify_model_sha256 is False),
        ({"SAMO_MODEL_DIR": "/tmp/some-model"}, lambda s: str(s.model_dir) == "/tmp/some-model"),
        (
            {"SAMO_RUNNER__GPU_FRACTION": "0.25", "SAMO_RUNNER__PRECISION": "fp16"},
            lambda s: s.runner.gpu_fraction == 0.25 and s.runner.precision == "fp16",
        ),
    ],
    ids=["runner-device", "limits-batch", "cache-disabled", "top-level-float", "model-dir", "two-nested"],
)
def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], check: Any) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert check(Settings())


@pytest.mark.parametrize(
    "env",
    [
        {"SAMO_RUNNER__GPU_FRACTION": "2"},
        {"SAMO_RUNNER__DEVICE": "tpu"},
        {"SAMO_LIMITS__MAX_BATCH_TEXTS": "0"},
        {"SAMO_LIMITS__MAX_BATCH_TEXTS": "1000"},  # over ingress_max_batch_size
        {"SAMO_CACHE__L1_TTL_S": "0"},
    ],
    ids=["gpu-fraction-2", "unknown-device", "zero-batch-texts", "batch-texts-over-ingress", "zero-ttl"],
)
def test_bad_env_values_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batching": {"ingress_max_batch_size": 8}},
        {"batching": {"model_max_batch_size": 32}},
        {"batching": {"ingress_max_batch_size": 256}},  # model_max_batch_size 128 < 256
        {"limits": {"max_batch_texts": 65}},
        {"unknown_option": 1},
        {"runner": {"no_such_field": 1}},
        {"runner": {"intra_op_threads": -1}},
        {"limits": {"max_body_bytes": 100}},
        {"cache": {"l1_ttl_s": 0}},
        {"cache": {"l1_max_entries": 0}},
    ],
    ids=[
        "ingress-below-batch-texts",
        "model-below-ingress",
        "ingress-above-model",
        "batch-texts-above-ingress",
        "unknown-top-level",
        "unknown-nested",
        "negative-timeout",
        "tiny-body-limit",
        "zero-ttl",
        "zero-entries",
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**kwargs)


def test_consistent_smaller_limits_are_accepted() -> None:
    s = Settings(batching={"ingress_max_batch_size": 8, "model_max_batch_size": 8}, limits={"max_batch_texts": 8})
    assert s.limits.max_batch_texts == 8


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RunnerSettings, {"gpu_fraction": 2}),
        (RunnerSettings, {"gpu_fraction": -0.1}),
        (RunnerSettings, {"device": "tpu"}),
        (RunnerSettings, {"precision": "int4"}),
        (RunnerSettings, {"intra_op_threads": -1}),
        (RunnerSettings, {"max_sub_batch": 0}),
        (RunnerSettings, {"max_pad_ratio": 0.5}),
        (RunnerSettings, {"gpu_mem_limit_bytes": 0}),
        (BatchingSettings, {"ingress_max_batch_size": 0}),
        (BatchingSettings, {"model_batch_wait_s": -0.001}),
        (CacheSettings, {"l1_ttl_s": -1}),
        (LimitSettings, {"max_text_chars": 0}),
        (LimitSettings, {"max_body_bytes": 1023}),
    ],
    ids=[
        "gpu-fraction-2",
        "gpu-fraction-negative",
        "device-tpu",
        "precision-int4",
        "negative-threads",
        "zero-sub-batch",
        "pad-ratio-below-1",
        "zero-mem-limit",
        "zero-ingress-batch",
        "negative-wait",
        "negative-ttl",
        "zero-text-chars",
        "body-below-1k",
    ],
)
def test_invalid_section_values_are_refused(cls: type[Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        cls(**kwargs)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0], ids=["zero", "quarter", "one"])
def test_gpu_fraction_bounds_accepted(fraction: float) -> None:
    assert RunnerSettings(gpu_fraction=fraction).gpu_fraction == fraction


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.verify_model_sha256 = False  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.runner.device = "cpu"  # type: ignore[misc]


def test_user_config_updates_only_the_keys_it_names() -> None:
    from samo_serve.settings import BatchingSettings, updated_batching

    current = BatchingSettings(ingress_max_in_flight=3, model_batch_wait_s=0.004)
    updated = updated_batching(current, {"batching": {"model_batch_wait_s": 0.0}})
    assert updated.model_batch_wait_s == 0.0
    assert updated.ingress_max_in_flight == 3  # kept, not reset to the default
    assert updated_batching(current, {}) == current
    with pytest.raises(ValidationError):
        updated_batching(current, {"batching": {"ingress_max_batch_size": 0}})


def test_model_dir_takes_a_shipped_models_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from samo_serve.settings import default_model_dir

    monkeypatch.chdir(tmp_path)  # no folder of that name here: the name means the shipped model
    monkeypatch.setenv("SAMO_MODEL_DIR", "goemotions-minilm")
    assert Settings().model_dir == default_model_dir()
    (tmp_path / "goemotions-minilm").mkdir()  # a folder of that name where the server starts wins: a path
    assert Settings().model_dir == Path("goemotions-minilm")
    monkeypatch.setenv("SAMO_MODEL_DIR", "no-such-model")  # neither: kept as given, the launcher says it is missing
    assert Settings().model_dir == Path("no-such-model")


def test_the_p95_target_has_one_home(monkeypatch: pytest.MonkeyPatch) -> None:
    from samo_serve.observability import recommendations
    from samo_serve.settings import P95_TARGET_MS, RecommendationSettings

    assert recommendations.RecommendationSettings is RecommendationSettings  # one class, kept where recommend is
    assert (
        Settings().observability.recommendations.p95_target_ms
        == P95_TARGET_MS
        == RecommendationSettings().p95_target_ms
    )
    monkeypatch.setenv("SAMO_OBSERVABILITY__RECOMMENDATIONS__P95_TARGET_MS", "300")
    assert Settings().observability.recommendations.p95_target_ms == 300


def test_deployment_cpu_defaults_fit_two_cores() -> None:
    from samo_serve.settings import INGRESS_NUM_CPUS, MODEL_NUM_CPUS, STATS_HUB_NUM_CPUS, TOKENIZER_NUM_CPUS

    cpus = [INGRESS_NUM_CPUS, MODEL_NUM_CPUS, TOKENIZER_NUM_CPUS, STATS_HUB_NUM_CPUS]
    assert all(0 < n < 1 for n in cpus)
    assert sum(cpus) < 2  # every deployment once, with room left for Ray's own actors


def test_command_defaults_are_the_flags_defaults() -> None:
    from samo_serve.ops import cli
    from samo_serve.settings import DEFAULT_METRICS_PORT, PLAN_HEADROOM, READY_TIMEOUT_S

    run = cli._parser().parse_args(["run"])
    assert (run.metrics_port, run.ready_timeout) == (DEFAULT_METRICS_PORT, READY_TIMEOUT_S) == (8080, 600.0)
    plan = cli._parser().parse_args(["plan", "--target-rps", "1", "--p95-ms", "1"])
    assert plan.headroom == PLAN_HEADROOM == 0.8
