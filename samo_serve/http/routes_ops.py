"""What operators and probes read: /healthz, /readyz, /stats and the /dashboard page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from starlette.responses import HTMLResponse, Response

from samo_serve.errors import ModelUnavailable
from samo_serve.http.errors import error_response
from samo_serve.http.guard import Guard, needs
from samo_serve.http.responses import json_response
from samo_serve.observability.memory import rss_mb
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService

__all__ = ["DASHBOARD_HTML", "add_ops_routes"]

DASHBOARD_HTML = (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


def add_ops_routes(
    app: FastAPI, service: EmotionService, guard: Guard, telemetry: Telemetry, limited: Sequence[DependsParam]
) -> None:
    @app.get("/healthz", summary="Liveness: 200 while the process lives")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: 200 only when the model answers; says whether API keys are on. Dependencies' "
        "counters only for an admin key (or an open service)",
    )
    async def readyz(request: Request) -> Response:
        # "auth" tells whoever started the server whether it now asks for keys (the keys file is re-read).
        auth = "on" if guard.keys.enabled else "off"
        try:
            model = await service.pipeline.model_info()
        except Exception as exc:  # any failure of the model path means not ready
            error = ModelUnavailable(f"model did not answer: {type(exc).__name__}")
            return error_response(error, request.scope, {"status": "unavailable", "auth": auth})
        dependencies = await service.dependencies()
        degraded = any(d["state"] != "up" for d in dependencies.values())
        if not guard.operator(request.scope):  # a probe or a tenant: states only, never traffic counters
            model, dependencies = {}, {name: {"state": d["state"]} for name, d in dependencies.items()}
        return json_response(
            {
                "status": "degraded" if degraded else "ready",
                "model": {"version": service.card.version, **model},
                "dependencies": dependencies,
                "auth": auth,
            }
        )

    @app.get(
        "/stats",
        summary="All ingress replicas over 1 min / 5 min / 1 h, a 5-minute series, replicas, recommendations (admin)",
        dependencies=[Depends(needs("admin")), *limited],
    )
    async def stats() -> Response:
        dependencies = await service.dependencies()
        view = await telemetry.view(dependencies)
        # This replica's own counters since it started (caches, request-log rows, guard refusals).
        view["replica"] = {**service.stats(), "guard": guard.snapshot(), "rss_mb": rss_mb(), "id": telemetry.replica_id}
        view["dependencies"] = dependencies
        return json_response(view)

    @app.get(
        "/dashboard",
        response_class=HTMLResponse,
        summary="Live charts of /stats (one self-contained page; with API keys, open it as /dashboard?key=KEY)",
    )
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD_HTML)
