"""``samo-serve run``: start a local Ray, deploy configs/serve.yaml, wait until ready, stop cleanly.

This is the same path ``serve run CONFIG`` takes (start Serve with the file's HTTP options, deploy its
applications), plus readiness polling, a port override, loopback-only defaults and a clean shutdown on
SIGINT/SIGTERM. Ray is imported lazily so the rest of samo_serve stays importable without it.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from samo_serve.ops.ports import free_port

__all__ = ["DEFAULT_CONFIG", "load_config", "serve_forever"]

log = logging.getLogger(__name__)
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "serve.yaml"
DEFAULT_METRICS_PORT = 8080

# Ray defaults tuned for a loaded 2-core laptop; a caller's own environment wins.
RAY_ENV_DEFAULTS = {
    # The proxy can take >5 s to start on a busy 2-core machine; Serve then kills it in a loop.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
}


def load_config(path: Path, port: int | None = None, host: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    http = config.setdefault("http_options", {})
    if port is not None:
        http["port"] = port
    if host is not None:
        http["host"] = host
    http.setdefault("host", "127.0.0.1")  # embedded default: loopback only
    http.setdefault("port", 8000)
    return config


def check_port_free(host: str, port: int, what: str = "--port") -> None:
    """Fail fast: a taken port would otherwise leave the ingress replica retrying until the ready timeout.

    Raises:
        OSError: with a message naming the port.
    """
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"{host}:{port} is already in use (another samo-serve?); choose one with {what}") from exc


def use_direct_ingress(config: dict[str, Any], env: MutableMapping[str, str]) -> dict[str, Any]:
    """Serve the app from the ingress replica itself on the configured port (Ray's throughput mode).

    Ray's classic proxy costs ~3.5 ms of CPU per request and an extra actor call; in throughput-optimized
    mode each ingress replica serves HTTP on its own port from the range
    [RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, MAX), so a one-port range puts it on the user's port.
    Ray still starts a proxy, which is moved to a free internal port. One port means one ingress
    replica on this node (the embedded default); scale the model and tokenizer instead, or put a load
    balancer in front of several ingress ports on a cluster (docs/OPERATIONS.md).
    """
    config = copy.deepcopy(config)
    http = config["http_options"]
    port = int(http["port"])
    env.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port)
    env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 1)  # exclusive upper bound
    http["port"] = free_port(http["host"])
    for app in config.get("applications", []):
        for deployment in app.get("deployments", []):
            if deployment.get("name") == "Ingress":
                deployment.pop("autoscaling_config", None)
                deployment["num_replicas"] = 1
    return config


def wait_ready(url: str, timeout_s: float, stop: threading.Event) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(1.0)
    return False


def serve_forever(
    config: dict[str, Any],
    ready_timeout_s: float = 600,
    num_cpus: int | None = None,
    direct_ingress: bool = True,
    metrics_port: int = DEFAULT_METRICS_PORT,
    num_gpus: int | None = None,
    address: str | None = None,
) -> int:
    """Deploy ``config`` and block until SIGINT/SIGTERM. Returns an exit code.

    Without ``address`` a new local Ray is started (``num_cpus``/``num_gpus`` declare its logical
    resources: ``num_gpus=1`` lets the GPU config's fractional replicas be placed on a machine whose
    GPU Ray cannot see, or none). With ``address`` (``auto``, ``HOST:PORT``) the app is deployed on that
    running Ray cluster through Ray's HTTP proxy on the head node, and removed again on exit; the
    cluster itself keeps running.
    """
    url = f"http://{config['http_options']['host']}:{config['http_options']['port']}"
    try:
        check_port_free(config["http_options"]["host"], int(config["http_options"]["port"]))
        if address is None:
            check_port_free("127.0.0.1", metrics_port, what="--metrics-port")
    except OSError as exc:
        print(f"samo-serve: {exc}", flush=True)
        return 2
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if direct_ingress and address is None:
        config = use_direct_ingress(config, os.environ)
    import ray
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.warning("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    if address is None:
        ray.init(
            # "local": always a new Ray, never one that `ray start` left on this machine (ray.init()
            # would join it through /tmp/ray/ray_current_cluster, or hang when that cluster is gone).
            address="local",
            namespace="serve",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            # Ray's Prometheus endpoint: ray_serve_* and our ray_samo_* metrics (docs/METRICS.md)
            _metrics_export_port=metrics_port,
        )
    else:
        # The cluster's nodes already run; their raylets' environment (not this driver's) reaches the
        # replicas, so they must be able to import samo_serve and deployments (docs/OPERATIONS.md).
        ray.init(address=address, namespace="serve", logging_level=logging.WARNING)
    # After ray.init: it installs its own SIGTERM handler (exit with the signal's code).
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        client = serve_api.serve_start(
            http_options=schema.http_options.model_dump(),
            proxy_location=schema.proxy_location,
            grpc_options=gRPCOptions(**schema.grpc_options.model_dump()),
        )
        client.deploy_apps(schema, _blocking=False)
        if not wait_ready(url, ready_timeout_s, stop):
            if stop.is_set():
                return 0
            print(f"samo-serve did not become ready within {ready_timeout_s:.0f} s", flush=True)
            return 1
        print(
            f"samo-serve ready at {url}  (docs: {url}/docs, dashboard: {url}/dashboard, "
            f"Prometheus: http://127.0.0.1:{metrics_port}/metrics)  Ctrl-C to stop",
            flush=True,
        )
        stop.wait()
        return 0
    finally:
        from ray import serve

        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
