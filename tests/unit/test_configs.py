"""configs/*.yaml agree with the settings model and with the deployments build_app creates."""

from __future__ import annotations

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
