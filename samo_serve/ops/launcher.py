"""``samo-serve run``: start a local Ray, deploy configs/serve.yaml, wait until ready, stop cleanly.

This is the same path ``serve run CONFIG`` takes (start Serve with the file's HTTP options, deploy its
applications), plus port checks, readiness polling, loopback-only defaults for every port and a quiet,
clean shutdown on SIGINT/SIGTERM. Ray is imported lazily so the rest of samo_serve stays importable
without it.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import threading
import time
from collections.abc import Collection, MutableMapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx

from samo_serve.ops.ports import PortConflict, check_distinct, check_port_free, free_port, ray_fixed_ports
from samo_serve.ops.serve_config import DEFAULT_CONFIG, load_serve_config, override_http
from samo_serve.settings import DEFAULT_METRICS_PORT, READY_TIMEOUT_S, LimitSettings

if TYPE_CHECKING:
    from ray.serve._private.client import ServeControllerClient

__all__ = ["DEFAULT_CONFIG", "DEFAULT_METRICS_PORT", "check_port_free", "load_config", "serve_forever"]

log = logging.getLogger(__name__)

# Ray defaults tuned for a loaded 2-core laptop; a caller's own environment wins.
RAY_ENV_DEFAULTS = {
    # The proxy can take >5 s to start on a busy 2-core machine; Serve then kills it in a loop.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
}
# Only for the Ray this process starts (not a cluster's); a caller's own environment wins here too.
LOCAL_RAY_ENV_DEFAULTS = {
    # Ray's single-machine mode (its default on macOS and Windows): the node's address is 127.0.0.1, so
    # every server Ray starts binds loopback (GCS, raylet, workers' gRPC, the Prometheus exporter behind
    # --metrics-port, the dashboard agent) instead of all interfaces. Ray reads it when imported.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray 2.60 turns token auth on for a new local Ray anyway; saying so explicitly skips the warning it
    # prints when the mode is unset, which asks nothing of the user.
    "RAY_AUTH_MODE": "token",
}


def load_config(path: Path, port: int | None = None, host: str | None = None) -> dict[str, Any]:
    """The Serve config at ``path`` with ``--port``/``--host`` applied (loopback, 8000 when none says)."""
    return override_http(load_serve_config(path), port=port, host=host)


def planned_ports(
    config: dict[str, Any], metrics_port: int, env: MutableMapping[str, str], ray: bool = True
) -> dict[str, int]:
    """The fixed ports a local run will open, by the option (or Ray component) that chose each."""
    ours = {"--port": int(config["http_options"]["port"]), "--metrics-port": metrics_port}
    return {**ours, **ray_fixed_ports(env)} if ray else ours


def preflight(config: dict[str, Any], metrics_port: int, local: bool, ray: bool = True) -> None:
    """Refuse to start what could not serve: two servers on one port, or a port already taken.

    ``local``: this machine opens ``metrics_port`` too (a local Ray, or ``--single-process`` with
    ``ray`` False, which opens no Ray port).

    Raises:
        PortConflict: two of the planned ports are equal (only a local run opens more than the HTTP one).
        OSError: a port is taken.
    """
    if local:
        check_distinct(planned_ports(config, metrics_port, os.environ, ray))
    check_port_free(config["http_options"]["host"], int(config["http_options"]["port"]))
    if local:
        check_port_free("127.0.0.1", metrics_port, what="--metrics-port")


def use_direct_ingress(
    config: dict[str, Any], env: MutableMapping[str, str], avoid: Collection[int] = ()
) -> dict[str, Any]:
    """Serve the app from the ingress replica itself on the configured port (Ray's throughput mode).

    Ray's classic proxy costs ~3.5 ms of CPU per request and an extra actor call; in throughput-optimized
    mode each ingress replica serves HTTP on its own port from the range
    [RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, MAX), so a one-port range puts it on the user's port.
    Ray still starts a proxy, which is moved to a free internal port (none of ``avoid``). One port means
    one ingress replica on this node (the embedded default): an Ingress that the config scales
    (``autoscaling_config``, ``num_replicas`` > 1) runs one replica, with a warning saying so. Scale the
    model and tokenizer instead, or put a load balancer in front of several ingress ports on a cluster
    (docs/OPERATIONS.md).
    """
    config = copy.deepcopy(config)
    http = config["http_options"]
    port = int(http["port"])
    env.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    # Serve holds a released ingress port out of the pool this long (150 s by default) so that HAProxy
    # workers drop it first; a local run has no HAProxy, and its one port is the service: a SIGKILLed
    # Ingress replica's successor must take it at once (with harden_direct_ingress in the replica).
    env.setdefault("RAY_SERVE_PORT_QUARANTINE_S", "0")
    env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port)
    env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 1)  # exclusive upper bound
    http["port"] = free_port(http["host"], avoid={port, *avoid})
    for app in config.get("applications", []):
        for deployment in app.get("deployments", []):
            if deployment.get("name") == "Ingress":
                asked = _ingress_scaling(deployment)
                if asked:
                    log.warning(
                        "the Serve config asks for %s on the Ingress of application %r; it runs num_replicas: 1 "
                        "instead: direct ingress serves HTTP from the Ingress replica itself on port %d, and one "
                        "port holds one replica. For several Ingress replicas: --classic-proxy (Ray's HTTP "
                        "proxy), or --address on a cluster",
                        asked,
                        app.get("name"),
                        port,
                    )
                deployment.pop("autoscaling_config", None)
                deployment["num_replicas"] = 1
    return config


def harden_direct_ingress(limits: LimitSettings) -> bool:
    """Make the HTTP server Serve starts in this Ingress replica survive a kill and hold ``limits``.

    Call it in the replica, before Serve starts the server (Serve builds the user callable first).

    - **Rebind after a SIGKILL.** Ray 2.60's direct ingress binds a replica's port without
      ``SO_REUSEADDR``; Linux refuses that bind while the dead replica's connections sit in TIME_WAIT
      (60 s), so under load the successor failed to bind, Serve blocked the port for good and the service
      never answered again. ``SO_REUSEADDR`` (what uvicorn and asyncio's ``create_server`` set) lifts that
      only when the old listener had it too: every Ingress replica sets it. Two live listeners still
      cannot share the port (that is ``SO_REUSEPORT``, which stays off).
    - **Connection rules.** Serve's uvicorn gets :func:`samo_serve.http.connections.guarded_protocol`:
      header deadline and size, connection cap.

    Returns False, changing nothing, when Ray's code is not the shape this was written for (Ray is pinned
    to 2.60.x; tests/unit/test_rebind.py runs Ray's own server function with this).
    """
    import inspect
    import socket

    from ray.serve._private import http_util, replica

    from samo_serve.http.connections import guarded_protocol

    start = getattr(replica, "start_asgi_http_server", None)  # the name replica.py calls
    start = getattr(start, "wrapped", start)  # called again (a second Ingress in this process): rewrap
    if start is None or "enable_so_reuseport" not in inspect.signature(start).parameters:
        log.warning("Ray's direct ingress is not the shape harden_direct_ingress expects; it is left as it is")
        return False
    protocol = guarded_protocol(limits)

    def reuse_address(sock: socket.socket) -> bool:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return True

    async def start_hardened(*args: Any, **kwargs: Any) -> Any:
        kwargs["enable_so_reuseport"] = True  # which, with reuse_address below, sets SO_REUSEADDR only
        task, server = await start(*args, **kwargs)
        server.config.http = protocol  # serve() has not run yet: it loads the config when it does
        return task, server

    start_hardened.wrapped = start  # type: ignore[attr-defined]
    http_util.set_socket_reuse_port = reuse_address  # nothing else in a replica binds through it
    replica.start_asgi_http_server = start_hardened  # type: ignore[attr-defined]
    return True


def _ingress_scaling(deployment: dict[str, Any]) -> str:
    """What an Ingress block asks for beyond one replica, as the config spells it; empty when nothing."""
    asked = []
    scaling = deployment.get("autoscaling_config")
    if scaling is not None:
        fields = ", ".join(f"{k}: {v}" for k, v in scaling.items()) if isinstance(scaling, dict) else scaling
        asked.append(f"autoscaling_config {{{fields}}}")
    replicas = deployment.get("num_replicas")
    if replicas not in (None, 1):
        asked.append(f"num_replicas: {replicas}")
    return " and ".join(asked)


def probe_ready(url: str) -> dict[str, Any] | None:
    """samo-serve's own /readyz body when it answers 200, else None.

    Another server on the port (Ray's Prometheus exporter answers any path with 200) is not ready: the
    body must be the service's JSON, with its ``status``.
    """
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):  # ValueError: not JSON
        return None
    return body if isinstance(body, dict) and "status" in body else None


def wait_ready(url: str, timeout_s: float, stop: threading.Event) -> dict[str, Any] | None:
    """Poll until :func:`probe_ready` answers (its body), ``timeout_s`` passes or ``stop`` is set (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        body = probe_ready(url)
        if body is not None:
            return body
        stop.wait(1.0)
    return None


def ready_banner(url: str, readyz: dict[str, Any], metrics_port: int | None) -> str:
    """The one line that says where the service is; whether it asks for API keys when /readyz says."""
    parts = [f"auth: {readyz['auth']}"] if "auth" in readyz else []
    parts += [f"docs: {url}/docs", f"dashboard: {url}/dashboard"]
    if metrics_port is not None:  # a cluster's Prometheus endpoints are the cluster's
        parts.append(f"Prometheus: http://127.0.0.1:{metrics_port}/metrics")
    return f"samo-serve ready at {url}  ({', '.join(parts)})  Ctrl-C to stop"


def start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None, metrics_port: int) -> None:
    """A new local Ray (``address`` None) or a connection to a running cluster."""
    import ray

    if address is not None:
        # The cluster's nodes already run; their raylets' environment (not this driver's) reaches the
        # replicas, so they must be able to import samo_serve and deployments (docs/OPERATIONS.md).
        ray.init(address=address, namespace="serve", logging_level=logging.WARNING)
        return
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


def deploy(config: dict[str, Any]) -> ServeControllerClient:
    """Start Serve with the config's HTTP/gRPC options and deploy its applications (not waiting)."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(),
        proxy_location=schema.proxy_location,
        grpc_options=gRPCOptions(**schema.grpc_options.model_dump()),
    )
    client.deploy_apps(schema, _blocking=False)
    return client


def stop_serve(client: ServeControllerClient, timeout_s: float = 60) -> None:
    """Remove every application and Serve's actors, with no call of ours in flight when its controller exits.

    ``serve.shutdown()`` waits on a ``graceful_shutdown`` call that ends only when the controller kills
    itself, so Ray reported that call as failed ("... There are infinite retries remaining ... killed by
    ray.kill") on every clean stop. Here the call returns at once, and the controller's name leaving the
    GCS says it is done.
    """
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get(client._controller.graceful_shutdown.remote(wait=False), timeout=timeout_s)
    except ray.exceptions.RayActorError:  # the controller is gone already
        return
    except ray.exceptions.GetTimeoutError:
        log.warning("Serve's controller did not answer within %.0f s; stopping Ray anyway", timeout_s)
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:  # gone: everything it ran is stopped
            return
        time.sleep(0.2)
    log.warning("Serve did not finish shutting down within %.0f s; stopping Ray anyway", timeout_s)


class _Stop(threading.Event):
    """Set by SIGINT/SIGTERM; remembers which, for the "stopping" line."""

    signal_name = ""

    def install(self) -> dict[int, Any]:
        """Handle SIGINT/SIGTERM; returns the previous handlers, to put back."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            # Only set state here: printing from a handler can interrupt a print in progress.
            self.signal_name = signal.Signals(signum).name
            self.set()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def _serve_until_stopped(
    config: dict[str, Any], url: str, ready_timeout_s: float, stop: _Stop, metrics_port: int | None
) -> int:
    """Deploy, wait for readiness, print the banner, block until ``stop``; stops Serve on the way out."""
    client = None
    try:
        if not stop.is_set():  # else a signal came during ray.init
            client = deploy(config)
        readyz = wait_ready(url, ready_timeout_s, stop)
        if readyz is None and not stop.is_set():
            print(f"samo-serve did not become ready within {ready_timeout_s:.0f} s", flush=True)
            return 1
        if readyz is not None:
            print(ready_banner(url, readyz, metrics_port), flush=True)
        stop.wait()
        print(f"samo-serve stopping ({stop.signal_name})", flush=True)
        return 0
    finally:
        if client is not None:
            stop_serve(client)


def serve_forever(
    config: dict[str, Any],
    ready_timeout_s: float = READY_TIMEOUT_S,
    num_cpus: int | None = None,
    direct_ingress: bool = True,
    metrics_port: int = DEFAULT_METRICS_PORT,
    num_gpus: int | None = None,
    address: str | None = None,
) -> int:
    """Deploy ``config`` and block until SIGINT/SIGTERM. Returns an exit code (2: a port problem).

    Without ``address`` a new local Ray is started (``num_cpus``/``num_gpus`` declare its logical
    resources: ``num_gpus=1`` lets the GPU config's fractional replicas be placed on a machine whose
    GPU Ray cannot see, or none). With ``address`` (``auto``, ``HOST:PORT``) the app is deployed on that
    running Ray cluster through Ray's HTTP proxy on the head node, and removed again on exit; the
    cluster itself keeps running.
    """
    local = address is None
    url = f"http://{config['http_options']['host']}:{config['http_options']['port']}"
    try:
        preflight(config, metrics_port, local)
    except (PortConflict, OSError) as exc:
        print(f"samo-serve: {exc}", flush=True)
        return 2
    for key, value in {**RAY_ENV_DEFAULTS, **(LOCAL_RAY_ENV_DEFAULTS if local else {})}.items():
        os.environ.setdefault(key, value)
    if direct_ingress and local:
        config = use_direct_ingress(config, os.environ, avoid=planned_ports(config, metrics_port, os.environ).values())
    import ray

    stop = _Stop()
    previous = stop.install()  # a Ctrl-C during ray.init stops after it, without a traceback
    try:
        start_ray(address, num_cpus, num_gpus, metrics_port)
        stop.install()  # again: ray.init installs its own SIGTERM handler (exit with the signal's code)
        code = _serve_until_stopped(config, url, ready_timeout_s, stop, metrics_port if local else None)
    finally:
        ray.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        print("samo-serve stopped", flush=True)
    return code
