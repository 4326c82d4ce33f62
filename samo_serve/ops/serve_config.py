"""Serve config files (configs/serve.yaml) as data: find the shipped ones, read one, change it, write an override.

``samo-serve run``, ``samo-serve plan``, ``samo-serve k8s render``, the autoscaling, GPU-packing and
multi-node tests and the benches all start from a config file and change a few fields; this is the
one place that reads and writes them and knows the file's shape (``http_options``,
``applications[].deployments[]`` by name, ``applications[].args``).
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "FAST_AUTOSCALING",
    "GPU_CONFIG",
    "deployment",
    "load_serve_config",
    "override_args",
    "override_deployment",
    "override_http",
    "shipped_config",
    "write_serve_config",
]

#: The embedded default's HTTP address: loopback only, Serve's usual port.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

#: Autoscaling that reacts in seconds rather than Serve's defaults (30 s up, 600 s down): for tests and
#: demos on one machine. Metrics every second over a 5 s window; up after 2 s, down after 8 s idle.
FAST_AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 2,
    "downscale_delay_s": 8,
    "metrics_interval_s": 1,
    "look_back_period_s": 5,
}


def shipped_config(name: str) -> Path:
    """A Serve config shipped as package data (``samo_serve/configs/``): found from any cwd, in a wheel too."""
    return Path(str(resources.files("samo_serve") / "configs" / name))


#: CPU, autoscaling: what ``samo-serve run`` serves by default.
DEFAULT_CONFIG = shipped_config("serve.yaml")
#: Four fractional model replicas on one GPU (also the source of k8s/rayservice.yaml).
GPU_CONFIG = shipped_config("serve-gpu.yaml")


def load_serve_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config


def write_serve_config(config: dict[str, Any], path: Path, header: str = "") -> Path:
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def override_http(config: dict[str, Any], port: int | None = None, host: str | None = None) -> dict[str, Any]:
    """A copy of ``config`` with ``http_options`` filled in: ``port``/``host`` when given, else the file's,
    else the embedded default (:data:`DEFAULT_HOST` loopback, :data:`DEFAULT_PORT`)."""
    config = copy.deepcopy(config)
    http = config.setdefault("http_options", {})
    if port is not None:
        http["port"] = port
    if host is not None:
        http["host"] = host
    http.setdefault("host", DEFAULT_HOST)
    http.setdefault("port", DEFAULT_PORT)
    return config


def _app(config: dict[str, Any], app: str | None) -> dict[str, Any]:
    apps = config.get("applications") or []
    for candidate in apps:
        if app is None or candidate.get("name") == app:
            found: dict[str, Any] = candidate
            return found
    raise KeyError(f"no application {app!r} in the config (has: {[a.get('name') for a in apps]})")


def deployment(config: dict[str, Any], name: str, app: str | None = None) -> dict[str, Any]:
    """The ``deployments:`` entry called ``name``; ``{"name": name}`` (not added) when the config leaves it to
    the code's defaults. Read-only: the config is not changed."""
    for entry in _app(config, app).get("deployments") or []:
        if entry.get("name") == name:
            found: dict[str, Any] = entry
            return found
    return {"name": name}


def _entry(config: dict[str, Any], name: str, app: str | None) -> dict[str, Any]:
    """Like :func:`deployment`, but a missing entry is added to ``config`` (for overrides)."""
    found = deployment(config, name, app)
    entries = _app(config, app).setdefault("deployments", [])
    if not any(entry is found for entry in entries):
        entries.append(found)
    return found


def override_deployment(config: dict[str, Any], name: str, app: str | None = None, **fields: Any) -> dict[str, Any]:
    """A copy of ``config`` with ``fields`` set on deployment ``name``.

    ``num_replicas`` and ``autoscaling_config`` exclude each other in Serve, so setting one drops the
    other; ``ray_actor_options`` is merged key by key (``num_gpus`` alone keeps ``num_cpus``).
    """
    config = copy.deepcopy(config)
    entry = _entry(config, name, app)
    for key, value in fields.items():
        if key == "ray_actor_options":
            entry[key] = {**entry.get(key, {}), **value}
            continue
        entry[key] = copy.deepcopy(value)
        if key == "num_replicas":
            entry.pop("autoscaling_config", None)
        elif key == "autoscaling_config":
            entry.pop("num_replicas", None)
    return config


def override_args(config: dict[str, Any], app: str | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` whose application ``args`` have ``sections`` merged in (one level deep)."""
    config = copy.deepcopy(config)
    args = _app(config, app).setdefault("args", {})
    for section, values in sections.items():
        args[section] = {**(args.get(section) or {}), **values}
    return config
