"""The app's own ASGI middleware: request ids and request metrics (the guard has its own module)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samo_serve.errors import ClientClosed
from samo_serve.observability.telemetry import Telemetry

__all__ = ["MetricsMiddleware", "RequestIdMiddleware"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


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


class MetricsMiddleware:
    """Counts every request by route and status and times it (samo_requests, samo_request_latency_seconds).

    Unknown paths count as ``other``, so a scan of random URLs cannot create unbounded label values.
    A request whose client hung up counts as 499, not as a server error: the app answers 499 when it
    sees the disconnect itself, and Ray Serve cancels the request (CancelledError) when its proxy does.
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
        status: int | None = None

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        except asyncio.CancelledError:
            status = status or ClientClosed.http_status
            raise
        finally:
            if self._routes is None:
                self._routes = frozenset(getattr(r, "path", "") for r in self._fastapi_app.routes)
            # A path with parameters (/v2/models/{name}/infer) counts under its matched route's template.
            route = scope["path"] if scope["path"] in self._routes else getattr(scope.get("route"), "path", "other")
            # No answer and no cancellation: the app died before answering.
            self.telemetry.on_request(route, status or 500, time.perf_counter() - started)
