"""``samo-serve run --single-process``: the whole service in one process, no Ray.

The same FastAPI app, service, caches, request log and timer-free micro-batching as the Ray ingress
(samo_serve.core.pipeline), with the model in this process (ORT releases the GIL: it runs in a thread
while the event loop serves and the next batch fills). For small machines: on 2 cores Ray's own
processes (controller, GCS, raylet, agents, the idle proxy, metric pushes) cost ~20% of a core with no
traffic and a handle hop per micro-batch under load (docs/PERFORMANCE.md). What it gives up: replicas
and autoscaling, several nodes, runtime reconfiguration through Serve, Ray's metrics pipeline (its
Prometheus endpoint serves the same ``samo_*`` metrics without Ray's ``ray_`` prefix).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from samo_serve.compose import build_service
from samo_serve.core.model_card import served_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalModel
from samo_serve.http.app import create_app
from samo_serve.http.connections import guarded_protocol
from samo_serve.observability.metrics import PrometheusFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.settings import Settings

__all__ = ["build_app", "serve_single_process"]


def build_app(settings: Settings, factory: PrometheusFactory | None = None) -> FastAPI:
    """The service's app with tokenizer and model in this process; metrics into ``factory``'s registry."""
    card = served_card(settings, verify=settings.verify_model_sha256)
    telemetry = Telemetry.from_settings(settings, factory or PrometheusFactory(), process="single-process")
    runner = OrtModelRunner.for_card(card, settings.model_dir, settings.runner)
    service = build_service(settings, LocalModel(runner, telemetry.metrics), telemetry, card)
    return create_app(settings, service)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a signal ends ``run()`` quietly with exit code 0, as the Ray launcher
    does (uvicorn re-raises it after shutting down: a KeyboardInterrupt, or death by SIGTERM)."""

    signal_name = ""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(sig).name
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop without waiting for open connections
        self.should_exit = True


def serve_single_process(settings: Settings, host: str, port: int, metrics_port: int | None) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers: in-flight requests finish, the log drains)."""
    from prometheus_client import start_http_server

    from samo_serve.ops.launcher import ready_banner, wait_ready

    factory = PrometheusFactory()
    app = build_app(settings, factory)
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=factory.registry)
    protocol = guarded_protocol(settings.limits)  # deadlines and a cap before the app (samo_serve.http.connections)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, http=protocol))
    url = f"http://{host}:{port}"
    stop = threading.Event()

    def banner() -> None:
        readyz = wait_ready(url, 600, stop)
        if readyz is not None:
            print(ready_banner(url, readyz, metrics_port), flush=True)

    threading.Thread(target=banner, name="ready-banner", daemon=True).start()
    try:
        server.run()
    finally:
        stop.set()
    print(f"samo-serve stopped ({server.signal_name or 'server exited'})", flush=True)
    return 0 if server.started else 1
