"""The HTTP application (FastAPI), built from settings and a prediction service.

The ingress deployment serves it through ``@serve.ingress``; tests drive it in-process over
``httpx.ASGITransport``. The hot routes read the body themselves and validate it with pydantic's JSON
parser, and write JSON with ``json.dumps``: FastAPI's own body/response machinery measured as the
largest per-request cost after Ray's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samo_serve.core.postprocess import emotions_catalog
from samo_serve.errors import (
    AnalyticsUnavailable,
    BatchTooLarge,
    BodyTooLarge,
    InvalidJSON,
    ModelUnavailable,
    RequestTimeout,
    SamoError,
    UnsupportedMediaType,
    ValidationFailed,
)
from samo_serve.http.guard import Guard, GuardMiddleware
from samo_serve.http.rate_limit import RATE_LIMIT_HEADERS
from samo_serve.http.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    PredictOptions,
    PredictRequest,
    PredictResponse,
)
from samo_serve.observability.memory import rss_mb
from samo_serve.observability.metrics import PrometheusFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.service import EmotionService, RequestContext, check_text
from samo_serve.settings import LimitSettings, Settings
from samo_serve.storage.request_log import RequestLog, parse_range

__all__ = ["create_app"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 429, 503)
}


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` if sane) and echoes it on the response."""

    def __init__(self, app: ASGIApp, echo_header: bool = True) -> None:
        self.app = app
        self.echo_header = echo_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if not self.echo_header:
            await self.app(scope, receive, send)
            return
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], header]
            await send(message)

        await self.app(scope, receive, send_with_id)


DASHBOARD_HTML = (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


class MetricsMiddleware:
    """Counts every request by route and status and times it (samo_requests, samo_request_latency_seconds).

    Unknown paths count as ``other``, so a scan of random URLs cannot create unbounded label values.
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry, fastapi_app: FastAPI) -> None:
        self.app = app
        self.telemetry = telemetry
        self._fastapi_app = fastapi_app
        self._routes: frozenset[str] | None = None  # read on first use: routes are added after middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            if self._routes is None:
                self._routes = frozenset(getattr(r, "path", "") for r in self._fastapi_app.routes)
            route = scope["path"] if scope["path"] in self._routes else "other"
            self.telemetry.on_request(route, status, time.perf_counter() - started)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or uuid.uuid4().hex)


async def _bounded(request: Request, work: Awaitable[T], limits: LimitSettings) -> T:
    """Run ``work`` until it finishes, the client disconnects (its slot is freed), or the timeout.

    Raises:
        ClientDisconnect: the client went away; the work is cancelled (nothing is answered or logged).
        RequestTimeout: 503 after ``limits.request_timeout_s``; the work is cancelled.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, gone}, timeout=limits.request_timeout_s, return_when=FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if gone in done:
        raise ClientDisconnect()
    raise RequestTimeout(f"no answer within {limits.request_timeout_s:g} s", headers={"Retry-After": "1"})


async def _disconnected(request: Request) -> None:
    # The body has been read: the next ASGI message on this request can only be its disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _context(request: Request) -> RequestContext:
    return RequestContext(_request_id(request), getattr(request.state, "api_key_id", None))


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a 100k-character text or private words.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


async def _parse_body(request: Request, model: type[M], limits: LimitSettings) -> M:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"send JSON with `Content-Type: application/json`, not {content_type!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            raise InvalidJSON("request body is not valid JSON (UTF-8)") from None
        raise ValidationFailed("request body does not match the schema", _validation_details(errors)) from None


def _install_error_handlers(app: FastAPI) -> None:
    async def on_samo_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SamoError)
        response = _json(exc.to_dict(_request_id(request)), exc.http_status)
        response.headers.update(exc.headers)  # Retry-After, X-RateLimit-*, WWW-Authenticate
        return response

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        error = ValidationFailed("request does not match the schema", _validation_details(list(exc.errors())))
        return _json(error.to_dict(_request_id(request)), error.http_status)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        body = {"error": {"code": code, "message": str(exc.detail), "request_id": _request_id(request)}}
        response = _json(body, exc.status_code)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        request_id = _request_id(request)
        log.exception("unhandled error (request %s)", request_id)
        body = {"error": {"code": "INTERNAL", "message": "internal error", "request_id": request_id}}
        return _json(body, 500)

    async def on_client_disconnect(request: Request, exc: Exception) -> Response:
        # The client is gone: nothing to answer and nothing to log as a failure.
        log.info("client disconnected before its body arrived (request %s)", _request_id(request))
        return Response(status_code=400)

    app.add_exception_handler(SamoError, on_samo_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


def _install_openapi(app: FastAPI) -> None:
    """The hot routes parse their own body, so their request schemas are added to the spec here."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (PredictRequest, BatchPredictRequest):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    service: EmotionService,
    echo_request_id: bool = True,
    guard: Guard | None = None,
    telemetry: Telemetry | None = None,
) -> FastAPI:
    """Build the FastAPI app of the HTTP contract over ``service``.

    Args:
        echo_request_id: add ``X-Request-ID`` to responses. Ray Serve's proxy already does (with the
            same id, which it passes in as a request header), so the ingress turns this off.
    """
    limits = settings.limits
    guard = guard or Guard.from_settings(settings)
    telemetry = telemetry or Telemetry.from_settings(settings, PrometheusFactory())
    service.telemetry = telemetry

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

    app = FastAPI(
        lifespan=lifespan,
        title="samo-serve",
        version="1",
        description="Emotion detection (GoEmotions, 28 labels, multi-label). Model: " + service.card.version,
    )
    if settings.cors_origins:  # off unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", *RATE_LIMIT_HEADERS],
        )
    app.add_middleware(GuardMiddleware, guard=guard)
    app.add_middleware(MetricsMiddleware, telemetry=telemetry, fastapi_app=app)
    app.add_middleware(RequestIdMiddleware, echo_header=echo_request_id)  # outermost: every response has an id

    async def charge_one(request: Request) -> None:
        await guard.charge(request, 1)

    limited = [Depends(charge_one)]
    _install_error_handlers(app)
    _install_openapi(app)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_body_schema("PredictRequest"),
        summary="Emotions of one text",
    )
    async def predict(request: Request) -> Response:
        req = await _parse_body(request, PredictRequest, limits)
        check_text(req.text, limits.max_text_chars)
        await guard.charge(request, 1)
        (result,) = await _bounded(request, service.predict([req.text], req, _context(request)), limits)
        return _json(result)

    @app.post(
        "/predict/batch",
        response_model=BatchPredictResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_body_schema("BatchPredictRequest"),
        summary="Emotions of several texts",
    )
    async def predict_batch(request: Request) -> Response:
        req = await _parse_body(request, BatchPredictRequest, limits)
        if len(req.texts) > limits.max_batch_texts:
            raise BatchTooLarge(f"{len(req.texts)} texts; the limit is {limits.max_batch_texts} per request")
        for i, text in enumerate(req.texts):
            check_text(text, limits.max_text_chars, field=f"texts[{i}]")
        options = PredictOptions(threshold=req.threshold, top_k=req.top_k, all_scores=req.all_scores)
        await guard.charge(request, len(req.texts))  # a batch counts its texts
        results = await _bounded(request, service.predict(req.texts, options, _context(request)), limits)
        return _json({"results": results, "count": len(results)})

    @app.get("/emotions", summary="The label set with Ekman and sentiment groups", dependencies=limited)
    async def emotions() -> Response:
        return _json(emotions_catalog(service.card))

    @app.get("/healthz", summary="Liveness: 200 while the process lives")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", summary="Readiness: 200 only when the model answers")
    async def readyz(request: Request) -> Response:
        try:
            model = await service.pipeline.model_info()
        except Exception as exc:  # any failure of the model path means not ready
            error = ModelUnavailable(f"model did not answer: {type(exc).__name__}")
            body = error.to_dict(_request_id(request))
            body.update(status="unavailable")
            return _json(body, error.http_status)
        dependencies = await service.dependencies()
        degraded = any(d["state"] != "up" for d in dependencies.values())
        return _json(
            {
                "status": "degraded" if degraded else "ready",
                "model": {"version": service.card.version, **model},
                "dependencies": dependencies,
            }
        )

    @app.get(
        "/stats",
        summary="All ingress replicas over 1 min / 5 min / 1 h, a 5-minute series, replicas, recommendations",
        dependencies=limited,
    )
    async def stats() -> Response:
        dependencies = await service.dependencies()
        view = await telemetry.view(dependencies)
        # This replica's own counters since it started (caches, request-log rows, guard refusals).
        view["replica"] = {**service.stats(), "guard": guard.snapshot(), "rss_mb": rss_mb(), "id": telemetry.replica_id}
        view["dependencies"] = dependencies
        return _json(view)

    @app.get(
        "/dashboard",
        response_class=HTMLResponse,
        summary="Live charts of /stats (one self-contained page; with API keys, open it as /dashboard?key=KEY)",
    )
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD_HTML)

    def request_log() -> RequestLog:
        if service.request_log is None:
            raise AnalyticsUnavailable("the request log is off (request_log.enabled=false)")
        return service.request_log

    @app.get(
        "/analytics/emotions",
        responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
        summary="Per primary emotion in [start, end): count, mean confidence, mean processing time",
        dependencies=limited,
    )
    async def analytics_emotions(start: str | None = None, end: str | None = None) -> Response:
        start_at, end_at = parse_range(start, end)
        rows = await request_log().emotion_counts(start_at, end_at)
        return _json({"start": start_at.isoformat(), "end": end_at.isoformat(), "emotions": rows})

    @app.get(
        "/analytics/summary",
        responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
        summary="Requests, texts, cache hit rate and p50/p95 processing time in [start, end)",
        dependencies=limited,
    )
    async def analytics_summary(start: str | None = None, end: str | None = None) -> Response:
        start_at, end_at = parse_range(start, end)
        summary = await request_log().summary(start_at, end_at)
        return _json({"start": start_at.isoformat(), "end": end_at.isoformat(), **summary})

    return app
