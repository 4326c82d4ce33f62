"""The k8s/ manifests: they parse, the RayService is the render of the Serve config, and it is valid
against KubeRay's CRD schema (read from ../shared/schemas/kuberay when present; never copied here)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from samo_serve.ops.k8s import render_file, render_rayservice
from samo_serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CRDS = ROOT.parent / "shared" / "schemas" / "kuberay"


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return docs


def rayservice() -> dict[str, Any]:
    (doc,) = [d for _, d in documents() if d["kind"] == "RayService"]
    return doc


def test_every_manifest_parses_and_names_itself() -> None:
    docs = documents()
    kinds = {d["kind"] for _, d in docs}
    assert {"RayService", "Secret", "Deployment", "StatefulSet", "Service", "PodMonitor"} <= kinds
    for name, doc in docs:
        assert doc.get("apiVersion"), name
        assert doc["metadata"]["name"], name


def test_checked_in_rayservice_is_the_render_of_the_gpu_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the command runs from the repository root, and the header names the path
    expected = render_file(Path("configs/serve-gpu.yaml"))
    assert (K8S / "rayservice.yaml").read_text(encoding="utf-8") == expected, (
        "k8s/rayservice.yaml is stale: run `samo-serve k8s render --out k8s/rayservice.yaml`"
    )


def test_serve_config_inside_is_the_repository_one() -> None:
    spec = rayservice()["spec"]
    serve = yaml.safe_load(spec["serveConfigV2"])
    source = yaml.safe_load((ROOT / "configs" / "serve-gpu.yaml").read_text(encoding="utf-8"))
    assert serve["applications"] == source["applications"]  # same deployments, autoscaling, args
    Settings(**serve["applications"][0]["args"])  # the args validate
    assert serve["http_options"]["host"] == "0.0.0.0"
    assert serve["proxy_location"] == "EveryNode"


def test_cluster_shape() -> None:
    cluster = rayservice()["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == version("ray")  # the pinned Ray, in the image tag too
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token"}  # Ray 2.60 heads require the token of every node
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"].endswith(f"ray{version('ray')}")
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        assert container["envFrom"] == [{"secretRef": {"name": "samo-serve-secrets"}}]
        assert any(p["name"] == "metrics" for p in container["ports"])


def test_secret_names_real_settings() -> None:
    (secret,) = [d for n, d in documents() if n == "secrets.example.yaml"]
    env = {k: v for k, v in secret["stringData"].items() if k.startswith("SAMO_")}
    assert {"SAMO_REDIS_URL", "SAMO_DATABASE_URL"} <= set(env)
    fields = set(Settings.model_fields)
    for key in env:
        assert key.removeprefix("SAMO_").lower().split("__")[0] in fields, key


@pytest.mark.parametrize("kind", ["RayService"])
def test_valid_against_the_kuberay_crd(kind: str) -> None:
    crd_file = CRDS / "ray.io_rayservices.yaml"
    if not crd_file.exists():
        pytest.skip(f"KubeRay CRD schema not found at {crd_file} (../shared/schemas/kuberay)")
    crd = yaml.safe_load(crd_file.read_text(encoding="utf-8"))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = v1["schema"]["openAPIV3Schema"]
    jsonschema.validate(rayservice(), schema)
    broken = rayservice()
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_render_follows_the_config() -> None:
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text(encoding="utf-8"))
    manifest = render_rayservice(config, image="example/samo:1")
    assert yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"] == config["applications"]
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == "example/samo:1"
