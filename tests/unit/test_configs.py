"""configs/*.yaml agree with the settings model and with the deployments build_app creates."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from samo_serve.settings import (
    INGRESS_HEALTH_CHECK_PERIOD_S,
    INGRESS_NUM_CPUS,
    MODEL_NUM_CPUS,
    STATS_HUB_NUM_CPUS,
    TOKENIZER_NUM_CPUS,
    Settings,
    ingress_min_ongoing_requests,
    updated_batching,
)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
DEPLOYMENTS = {"ingress": {"Ingress", "EmotionModel"}, "deployment": {"Ingress", "Tokenizer", "EmotionModel"}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_serve_config_is_valid(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert config["http_options"]["host"] == "127.0.0.1"
    (app,) = config["applications"]
    assert app["import_path"] == "deployments.app:build_app"
    settings = Settings(**app["args"])
    by_name = {d["name"]: d for d in app["deployments"]}
    assert set(by_name) <= DEPLOYMENTS[settings.tokenize_in]  # Serve refuses overrides of unknown deployments
    for name, deployment in by_name.items():
        batching = updated_batching(settings.batching, deployment.get("user_config", {}))
        # Serve's max_ongoing_requests caps the batch a replica can form.
        cap = {"Ingress": batching.ingress_max_batch_size, "EmotionModel": batching.model_max_batch_size}
        assert deployment["max_ongoing_requests"] >= cap.get(name, 1)
        if name == "Ingress":  # else OVERLOADED never fires, or slow uploads fill Serve's slots (Serve queues first)
            assert deployment["max_ongoing_requests"] >= ingress_min_ongoing_requests(settings)
        assert deployment["ray_actor_options"]["num_cpus"] < 1  # deployments + Ray's actors on 2 cores
        scaling = deployment.get("autoscaling_config")
        if scaling:
            assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
            assert scaling["target_ongoing_requests"] > 0


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_model_autoscaling_can_reach_its_max_replicas(path: Path) -> None:
    # The ingress micro-batches: the model never sees more than (Ingress replicas x ingress_max_in_flight)
    # calls at once, and Serve wants ceil(ongoing / target) replicas. A target above that never scales.
    # One Ingress replica: what `samo-serve run` deploys (direct ingress), the least the model can see.
    (app,) = yaml.safe_load(path.read_text())["applications"]
    settings = Settings(**app["args"])
    by_name = {d["name"]: d for d in app["deployments"]}
    ingress, model = by_name["Ingress"], by_name["EmotionModel"]
    in_flight = updated_batching(settings.batching, ingress.get("user_config", {})).ingress_max_in_flight
    scaling = model["autoscaling_config"]
    reachable = math.ceil(in_flight / scaling["target_ongoing_requests"])
    assert reachable >= scaling["max_replicas"], f"EmotionModel can reach {reachable} of {scaling['max_replicas']}"


@pytest.mark.parametrize(
    ("args", "ongoing"),
    [
        ({}, {"Ingress": 1024, "EmotionModel": 128, "Tokenizer": None}),  # limits.max_connections
        ({"limits": {"max_in_flight_requests": 1000}}, {"Ingress": 1064, "EmotionModel": 128, "Tokenizer": None}),
        (
            {
                "tokenize_in": "deployment",
                "batching": {"ingress_max_batch_size": 200, "model_max_batch_size": 300},
                "limits": {"max_connections": 64},
            },
            {"Ingress": 400, "EmotionModel": 300, "Tokenizer": 64},
        ),
    ],
    ids=["defaults", "in-flight-bound", "larger-batches"],
)
def test_build_app_takes_its_deployment_options_from_settings(args: dict[str, Any], ongoing: dict[str, Any]) -> None:
    """The options a config's ``deployments:`` leaves out come from samo_serve/settings/ (no Ray started)."""
    from ray.serve._private.build_app import build_app as serve_build_app  # how Serve walks the bound graph

    from deployments.app import build_app

    built = {d.name: d for d in serve_build_app(build_app(args), name="samo").deployments}
    cpus = {"Ingress": INGRESS_NUM_CPUS, "EmotionModel": MODEL_NUM_CPUS, "StatsHub": STATS_HUB_NUM_CPUS}
    if "Tokenizer" in built:
        cpus["Tokenizer"] = TOKENIZER_NUM_CPUS
    assert {name: d.ray_actor_options["num_cpus"] for name, d in built.items()} == cpus
    for name, expected in ongoing.items():
        assert (built[name].max_ongoing_requests if name in built else None) == expected, name
    assert built["StatsHub"].num_replicas == 1
    assert (
        built["Ingress"]._deployment_config.health_check_period_s == INGRESS_HEALTH_CHECK_PERIOD_S
    )  # a kill is seen soon
