"""Config overrides, the capacity planner, replica timelines and Serve deployment states (no Ray)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.serve.schema import ServeDeploySchema

from samo_serve.observability.recommendations import RecommendationSettings
from samo_serve.observability.telemetry import build_view, deployment_states, running_replicas
from samo_serve.observability.window_stats import WindowStats
from samo_serve.ops import cli
from samo_serve.ops.launcher import DEFAULT_CONFIG
from samo_serve.ops.planner import PlanError, apply_plan, gpus_per_replica, make_plan
from samo_serve.ops.serve_config import (
    FAST_AUTOSCALING,
    deployment,
    load_serve_config,
    override_args,
    override_deployment,
    write_serve_config,
)
from testkit.replica_watch import Sample, Timeline, _states

GPU_CONFIG = DEFAULT_CONFIG.parent / "serve-gpu.yaml"


# ------------------------------------------------------------------------------------ serve_config


def test_override_deployment_replaces_autoscaling_with_fixed_replicas_and_back() -> None:
    base = load_serve_config(DEFAULT_CONFIG)
    fixed = override_deployment(base, "EmotionModel", num_replicas=3)
    assert deployment(fixed, "EmotionModel")["num_replicas"] == 3
    assert "autoscaling_config" not in deployment(fixed, "EmotionModel")
    assert "autoscaling_config" in deployment(base, "EmotionModel"), "the original is not changed"
    scaled = override_deployment(fixed, "EmotionModel", autoscaling_config=FAST_AUTOSCALING)
    assert "num_replicas" not in deployment(scaled, "EmotionModel")
    ServeDeploySchema.model_validate(scaled)


def test_override_merges_actor_options_and_args() -> None:
    config = override_deployment(load_serve_config(GPU_CONFIG), "EmotionModel", ray_actor_options={"num_cpus": 0.05})
    assert deployment(config, "EmotionModel")["ray_actor_options"] == {"num_cpus": 0.05, "num_gpus": 0.25}
    config = override_args(config, runner={"precision": "int8"})
    assert config["applications"][0]["args"]["runner"] == {"device": "cuda", "precision": "int8", "gpu_fraction": 0.25}


def test_deployment_missing_is_created_and_unknown_app_refused() -> None:
    config = load_serve_config(DEFAULT_CONFIG)
    assert override_deployment(config, "Tokenizer", num_replicas=2)["applications"][0]["deployments"][-1] == {
        "name": "Tokenizer",
        "num_replicas": 2,
    }
    before = load_serve_config(DEFAULT_CONFIG)
    assert deployment(config, "Tokenizer") == {"name": "Tokenizer"}
    assert config == before, "a lookup does not add the entry"
    with pytest.raises(KeyError, match="no application 'other'"):
        deployment(config, "EmotionModel", app="other")


def test_write_serve_config_round_trips_with_a_comment_header(tmp_path: Path) -> None:
    config = load_serve_config(DEFAULT_CONFIG)
    path = write_serve_config(config, tmp_path / "s.yaml", header="made by a test\n\nsecond line")
    assert path.read_text().startswith("# made by a test\n#\n# second line\n")
    assert load_serve_config(path) == config


def test_fast_autoscaling_is_a_valid_serve_autoscaling_config() -> None:
    config = override_deployment(load_serve_config(DEFAULT_CONFIG), "EmotionModel", autoscaling_config=FAST_AUTOSCALING)
    ServeDeploySchema.model_validate(config)


# ----------------------------------------------------------------------------------------- planner


def _level(c: int, rps: float, p95: float, success: float = 1.0, replicas: dict[str, int] | None = None) -> dict:
    return {
        "concurrency": c,
        "rate": None,
        "batch": 1,
        "throughput_rps": rps,
        "success_rate": success,
        "latency_ms": {"p95": p95},
        "replicas": {"Ingress": 1, "EmotionModel": 1} if replicas is None else replicas,
    }


RESULTS = {"levels": [_level(1, 20, 60), _level(8, 80, 150), _level(32, 100, 400), _level(64, 101, 900)]}


def test_plan_divides_the_best_level_within_target_by_its_replicas() -> None:
    plan = make_plan(RESULTS, target_rps=320, p95_ms=500, headroom=0.8)
    assert plan.per_replica_rps == 100  # c=32: the most rps with p95 <= 500
    assert plan.model_replicas == 4  # 320 / (100 x 0.8)
    assert plan.ingress_replicas == 4
    assert plan.predicted_rps == 400
    assert plan.saturated
    assert plan.measured_at["concurrency"] == 32


def test_plan_uses_the_measured_replica_count() -> None:
    results = {"levels": [_level(32, 200, 300, replicas={"Ingress": 1, "EmotionModel": 2})]}
    plan = make_plan(results, target_rps=300, p95_ms=500, headroom=1.0)
    assert plan.per_replica_rps == 100
    assert plan.model_replicas == 3
    assert plan.ingress_replicas == 2
    assert not plan.saturated  # nothing broke the target: the capacity is a lower bound


def test_plan_tighter_p95_picks_a_lower_level_and_more_replicas() -> None:
    loose, tight = make_plan(RESULTS, 320, 500), make_plan(RESULTS, 320, 200)
    assert tight.per_replica_rps == 80
    assert tight.model_replicas == 5 > loose.model_replicas


def test_plan_skips_levels_that_failed_requests() -> None:
    results = {"levels": [_level(8, 80, 150), _level(32, 150, 300, success=0.9)]}
    assert make_plan(results, 100, 500).per_replica_rps == 80


def test_plan_counts_gpus_from_the_fraction_per_replica() -> None:
    plan = make_plan(RESULTS, 320, 500, gpus_per_replica=gpus_per_replica(load_serve_config(GPU_CONFIG)))
    assert plan.gpus == 1.0  # 4 replicas x 0.25
    assert make_plan(RESULTS, 400, 500).gpus == 0.0


def test_plan_stops_at_the_replicas_the_available_cpus_fit() -> None:
    # Measured: 1 replica with the whole 2-CPU machine. On those 2 CPUs a 2nd replica adds nothing.
    results = {**RESULTS, "host_cpus": 2}
    plan = make_plan(results, 320, 500, available_cpus=2)
    assert plan.cpu_limited
    assert plan.model_replicas == 1
    assert plan.predicted_rps == 100
    assert not plan.meets_target
    assert (plan.cpus_per_replica, plan.cpus) == (2.0, 2.0)
    roomy = make_plan(results, 320, 500, available_cpus=16)
    assert not roomy.cpu_limited
    assert roomy.model_replicas == 4
    assert roomy.cpus == 8.0
    assert roomy.meets_target
    assert make_plan(results, 320, 500).cpus == 8.0  # no budget given: the CPUs it needs, unbounded


def test_plan_cpu_budget_needs_the_measured_cpus() -> None:
    with pytest.raises(PlanError, match="--measured-cpus"):
        make_plan(RESULTS, 320, 500, available_cpus=4)
    assert make_plan(RESULTS, 320, 500, measured_cpus=4, available_cpus=8).model_replicas == 2


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"levels": [_level(1, 20, 600)]}, "no measured level had p95 <= 500"),
        ({"levels": []}, "no single-text levels"),
        ({"levels": [_level(8, 80, 150, replicas={})]}, "how many EmotionModel replicas"),
    ],
    ids=["target-unreachable", "empty", "no-replica-counts"],
)
def test_plan_refuses_what_cannot_be_planned(results: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(results, 100, 500)


@pytest.mark.parametrize(("target", "p95", "headroom"), [(0, 500, 0.8), (100, -1, 0.8), (100, 500, 1.5)])
def test_plan_refuses_bad_targets(target: float, p95: float, headroom: float) -> None:
    with pytest.raises(PlanError):
        make_plan(RESULTS, target, p95, headroom)


def test_apply_plan_autoscaling_and_fixed_are_valid_serve_configs() -> None:
    config = load_serve_config(DEFAULT_CONFIG)
    plan = make_plan(RESULTS, 320, 500)
    scaled = apply_plan(config, plan)
    model = deployment(scaled, "EmotionModel")["autoscaling_config"]
    assert (model["min_replicas"], model["max_replicas"]) == (1, 4)
    assert model["target_ongoing_requests"] == 1  # kept from the config
    assert deployment(scaled, "Ingress")["autoscaling_config"]["max_replicas"] == 4
    fixed = apply_plan(config, plan, fixed=True)
    assert deployment(fixed, "EmotionModel")["num_replicas"] == 4
    assert deployment(fixed, "Ingress")["num_replicas"] == 4
    for c in (scaled, fixed):
        ServeDeploySchema.model_validate(c)


def test_plan_command_prints_the_block_and_writes_a_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    out = tmp_path / "planned.yaml"
    code = cli.main(["plan", "--target-rps", "320", "--p95-ms", "500", "--from", str(results),
                     "--config", str(DEFAULT_CONFIG), "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "4 EmotionModel" in printed
    assert "max_replicas: 4" in printed
    assert deployment(load_serve_config(out), "EmotionModel")["autoscaling_config"]["max_replicas"] == 4
    code = cli.main(["plan", "--target-rps", "320", "--p95-ms", "10", "--from", str(results), "--json"])
    assert code == 1
    (line,) = capsys.readouterr().err.splitlines()  # one line, no traceback
    assert line.startswith("samo-serve: no measured level had p95 <= 10 ms"), line


# -------------------------------------------------------------------------- deployment states, timeline


class _State(StrEnum):
    RUNNING = "RUNNING"
    STARTING = "STARTING"


def test_deployment_states_from_serve_status_objects() -> None:
    status = {
        "EmotionModel": SimpleNamespace(
            status=SimpleNamespace(value="UPDATING"),
            replica_states={_State.RUNNING: 4, _State.STARTING: 1},
            message="1 replicas ... Resources required for each replica: GPU 0.25",
        ),
        "Ingress": SimpleNamespace(
            status="HEALTHY", replica_states={_State.RUNNING: 1, _State.STARTING: 0}, message=None
        ),
    }
    states = deployment_states(status)
    assert states["EmotionModel"] == {
        "status": "UPDATING",
        "replica_states": {"RUNNING": 4, "STARTING": 1},
        "message": "1 replicas ... Resources required for each replica: GPU 0.25",
    }
    assert states["Ingress"] == {"status": "HEALTHY", "replica_states": {"RUNNING": 1}, "message": ""}
    assert running_replicas(states) == {"EmotionModel": 4, "Ingress": 1}
    view = build_view(WindowStats(), {}, RecommendationSettings(), None, deployments=states)
    assert view["replicas"] == {"EmotionModel": 4, "Ingress": 1}
    assert view["deployments"] == states
    assert _states(view) == {"EmotionModel": {"RUNNING": 4, "STARTING": 1}, "Ingress": {"RUNNING": 1}}
    assert _states({"replicas": {"EmotionModel": 2}}) == {"EmotionModel": {"RUNNING": 2}}


def test_timeline_peak_settle_and_render() -> None:
    def s(t: float, loaded: bool, running: int, starting: int = 0) -> Sample:
        states = {"RUNNING": running} | ({"STARTING": starting} if starting else {})
        return Sample(t, loaded, {"EmotionModel": states})

    timeline = Timeline([s(0, True, 1), s(5, True, 1, 1), s(11, True, 2), s(30, False, 2), s(44, False, 1)])
    assert timeline.running("EmotionModel") == [1, 1, 2, 2, 1]
    assert timeline.peak_under_load("EmotionModel") == 2
    assert timeline.settled_after_load("EmotionModel") == 1
    assert timeline.render("EmotionModel").splitlines() == [
        "t=   0.0s  load  EmotionModel: 1 RUNNING",
        "t=   5.0s  load  EmotionModel: 1 RUNNING, 1 STARTING",
        "t=  11.0s  load  EmotionModel: 2 RUNNING",
        "t=  44.0s  idle  EmotionModel: 1 RUNNING",
    ]
    assert Timeline().settled_after_load("EmotionModel") is None
