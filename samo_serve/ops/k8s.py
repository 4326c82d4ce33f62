"""``samo-serve k8s render``: the KubeRay ``RayService`` manifest, its ``serveConfigV2`` made from a Serve config.

The Serve config stays the one source (configs/serve-gpu.yaml for the checked-in manifest): the same
deployments, autoscaling and ``args:`` as ``serve deploy``, with HTTP opened to the pod network. The
cluster around it: a head that runs no replicas (``num-cpus: 0``), a CPU worker group for the ingress
and tokenizer, a GPU worker group for the model, KubeRay's in-tree autoscaler, and the settings that
must not live in git (database and Redis URLs, API keys) from a Secret.
"""

from __future__ import annotations

import copy
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from samo_serve.ops.serve_config import load_serve_config

__all__ = ["DEFAULT_IMAGE", "cluster_serve_config", "dump", "render_file", "render_rayservice"]

RAY_VERSION = version("ray")
DEFAULT_IMAGE = f"samo-serve:0.1.0-ray{RAY_VERSION}"  # built by k8s/Dockerfile FROM rayproject/ray:<same>-py311
SECRET = "samo-serve-secrets"
METRICS_PORT = 8080
KEYS_ITEM = {"key": "keys.json", "path": "keys.json"}


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Multi-line strings (serveConfigV2) as readable ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def cluster_serve_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Serve config for a cluster: HTTP on every node, listening beyond loopback."""
    config = copy.deepcopy(config)
    config["proxy_location"] = "EveryNode"
    config["http_options"] = {**config.get("http_options", {}), "host": "0.0.0.0", "port": 8000}
    return config


def _container(name: str, image: str, cpu: str, memory: str, gpus: int = 0, head: bool = False) -> dict[str, Any]:
    ports = [{"containerPort": METRICS_PORT, "name": "metrics"}]
    if head:
        ports = [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            {"containerPort": 8000, "name": "serve"},
            *ports,
        ]
    limits: dict[str, str | int] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    return {
        "name": name,
        "image": image,
        "ports": ports,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        # SAMO_DATABASE_URL, SAMO_REDIS_URL, … (k8s/secrets.example.yaml); keys.json mounted below
        "envFrom": [{"secretRef": {"name": SECRET}}],
        "env": [{"name": "SAMO_API_KEYS_FILE", "value": "/etc/samo/keys/keys.json"}],
        "volumeMounts": [{"name": "api-keys", "mountPath": "/etc/samo/keys", "readOnly": True}],
    }


def _pod(container: dict[str, Any], gpu: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {
                "name": "api-keys",
                "secret": {
                    "secretName": SECRET,
                    "items": [{"key": "keys.json", "path": "keys.json"}],
                    "optional": True,
                },
            }
        ],
    }
    if gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"spec": spec}


def render_rayservice(config: dict[str, Any], image: str = DEFAULT_IMAGE, name: str = "samo-serve") -> dict[str, Any]:
    serve = cluster_serve_config(config)
    start = {"metrics-export-port": str(METRICS_PORT)}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve, sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                # Ray 2.60's `ray start --head` turns token auth on; KubeRay then creates the token Secret
                # and sets RAY_AUTH_MODE/RAY_AUTH_TOKEN on every container, or workers could not join.
                "authOptions": {"mode": "token"},
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 60},
                "headGroupSpec": {
                    # the head runs Serve's controller and proxy, no replicas
                    "rayStartParams": {**start, "num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": _pod(_container("ray-head", image, "1", "4Gi", head=True)),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "cpu",  # Ingress (and Tokenizer when tokenize_in: deployment)
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 4,
                        "rayStartParams": start,
                        "template": _pod(_container("ray-worker", image, "2", "4Gi")),
                    },
                    {
                        "groupName": "gpu",  # EmotionModel: num_gpus 0.25, four replicas per GPU
                        "replicas": 1,
                        "minReplicas": 0,
                        "maxReplicas": 2,
                        "rayStartParams": {**start, "num-gpus": "1"},
                        "template": _pod(_container("ray-worker", image, "4", "16Gi", gpus=1), gpu=True),
                    },
                ],
            },
        },
    }


def dump(manifest: dict[str, Any], source: str) -> str:
    header = (
        f"# Generated by `samo-serve k8s render --config {source}`: do not edit by hand (a test checks it matches).\n"
        "# Needs the KubeRay operator, the Secret of k8s/secrets.example.yaml, and the image of k8s/Dockerfile.\n"
    )
    body: str = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=120)
    return header + body


def render_file(config_path: Path, image: str | None = None, source: str | None = None) -> str:
    """The manifest for the Serve config at ``config_path``; its header names ``source`` (default: that path)."""
    config = load_serve_config(config_path)
    return dump(render_rayservice(config, image or DEFAULT_IMAGE), source or str(config_path))
