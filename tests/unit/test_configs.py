"""configs/*.yaml agree with the settings model and with the deployments build_app creates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from samo_serve.settings import Settings, updated_batching

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
