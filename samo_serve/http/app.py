"""The HTTP application (FastAPI), built from settings and a prediction service.

The ingress deployment serves it through ``@serve.ingress``; tests drive it in-process over
``httpx.ASGITransport``. Routes live in ``routes_*``; the one middleware, in front of everything, is
``edge.Edge`` (ids, keys, in-flight bound, headers, metrics), which also calls the prediction routes
directly; every error is rendered by ``samo_serve.http.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from samo_serve.http.edge import DirectRoute, Edge
from samo_serve.http.errors import install_error_handlers
from samo_serve.http.guard import Guard
from samo_serve.http.rate_limit import RATE_LIMIT_HEADERS
from samo_serve.http.routes_analytics import add_analytics_routes
from samo_serve.http.routes_ops import add_ops_routes
from samo_serve.http.routes_predict import add_predict_routes
from samo_serve.http.routes_users import add_user_routes
from samo_serve.http.routes_v2 import add_v2_routes
from samo_serve.http.schemas import BatchPredictRequest, PredictRequest
from samo_serve.http.v2_schemas import V2InferRequest
from samo_serve.observability.metrics import PrometheusFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService
from samo_serve.settings import LimitSettings, Settings

__all__ = ["create_app"]


class _App(FastAPI):
    """FastAPI behind :class:`Edge`: every request meets the edge first, which calls the prediction routes
    itself and hands the rest to FastAPI (whose per-request checks, an environment lookup among them,
    cost ~20 us an L1 hit did not need)."""

    edge: tuple[Guard, Telemetry, list[DirectRoute], bool]
    _front: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is None:
            guard, telemetry, direct, echo_request_id = self.edge
            routes = self.routes
            self._front = Edge(super().__call__, guard, telemetry, direct,
                               lambda: (getattr(r, "path", "") for r in routes), echo_request_id)  # fmt: skip
        await self._front(scope, receive, send)


def create_app(
    settings: Settings,
    service: EmotionService,
    echo_request_id: bool = True,
    guard: Guard | None = None,
) -> FastAPI:
    """Build the FastAPI app of the HTTP contract over ``service``.

    Requests are recorded in ``service.telemetry``; a service built without one (tests, benches) gets
    an app-only one here, which counts requests and latency but not texts per cache level.

    Args:
        echo_request_id: add ``X-Request-ID`` to responses. Ray Serve's proxy already does (with the
            same id, which it passes in as a request header), so the ingress turns this off.
    """
    guard = guard or Guard.from_settings(settings)
    telemetry = service.telemetry or Telemetry.from_settings(settings, PrometheusFactory())
    app = _App(
        lifespan=_lifespan(service, telemetry, guard),
        title="samo-serve",
        version="1",
        description="Emotion detection (GoEmotions, 28 labels, multi-label). Model: " + service.card.version,
    )
    if settings.cors_origins:  # off unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", *RATE_LIMIT_HEADERS],
        )
    install_error_handlers(app)

    async def charge_one(request: Request) -> None:
        await guard.charge(request, 1)

    limited = [Depends(charge_one)]
    # Routes straight on the app (no APIRouter): the edge labels requests by the app's route paths.
    direct = add_predict_routes(app, service, guard, settings.limits, limited)
    add_ops_routes(app, service, guard, telemetry, limited)
    add_analytics_routes(app, service, limited)
    add_user_routes(app, service, limited)
    direct += add_v2_routes(app, service, guard, settings.limits, limited)
    # With CORS on, the prediction routes go through FastAPI's stack too, where the CORS middleware is.
    app.edge = (guard, telemetry, [] if settings.cors_origins else direct, echo_request_id)
    _install_openapi(app, settings.limits)
    return app


def _lifespan(service: EmotionService, telemetry: Telemetry, guard: Guard) -> Any:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Serve runs this in each ingress replica: start the log writer, and flush it on shutdown.
        await service.start()
        telemetry.start(service.counters)
        try:
            yield
        finally:
            await telemetry.stop()
            await service.stop()
            await guard.close()

    return lifespan


def _install_openapi(app: FastAPI, limits: LimitSettings) -> None:
    """The hot routes parse their own body, so their request schemas are added to the spec here.

    The batch's ``maxItems`` is this server's ``max_batch_texts`` (samo_serve.client learns it there).
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (PredictRequest, BatchPredictRequest, V2InferRequest):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            schemas["BatchPredictRequest"]["properties"]["texts"]["maxItems"] = limits.max_batch_texts
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
