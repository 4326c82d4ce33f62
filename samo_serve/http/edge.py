"""The one ASGI middleware in front of every route, and the direct way in for the prediction routes.

Each request passes :class:`Edge` once, which does what a stack of middleware layers did before, in one
frame and one wrapped ``send``:

- gives the request its id (the caller's ``X-Request-ID`` if sane, else a new one) and echoes it;
- lets public paths (probes, docs) through; for every other path checks the API key and the in-flight
  bound (:class:`samo_serve.http.guard.Guard`);
- adds the security headers (and the page policy to HTML), and the rate-limit headers a route charged;
- renders any error as the contract's envelope (samo_serve.http.errors), a 500 for the unexpected;
- counts the request by route and status and times it (samo_requests, samo_request_latency_seconds).

The prediction routes (``POST /predict``, ``/predict/batch``, ``/v2/models/{name}/infer``) are called from
here directly, past FastAPI's router and its own middleware: measured as the largest per-request cost of
an L1 hit after the request log's writer (docs/PERFORMANCE.md, "The request path"). FastAPI still holds
them for the OpenAPI spec (the same endpoint functions), and serves every other route.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samo_serve.errors import ClientClosed, Overloaded, SamoError
from samo_serve.http.errors import as_samo_error, send_error
from samo_serve.http.guard import HTML_CSP, PUBLIC_PATHS, SECURITY_HEADERS, Guard
from samo_serve.observability.telemetry import Telemetry

__all__ = ["DirectRoute", "Edge", "new_request_id", "request_id_from"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: a prediction endpoint called with the request and its path parameters
Endpoint = Callable[..., Awaitable[Response]]


def new_request_id() -> str:
    """32 hex digits. ``random`` rather than ``uuid4``: no system call per request, and an id needs no secrecy
    (``random`` is reseeded in every forked process)."""
    return f"{random.getrandbits(128):032x}"


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` when it is sane (1-128 of ``A-Z a-z 0-9 . _ : -``), else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return new_request_id()


class DirectRoute:
    """A POST route the edge calls itself: ``/predict``, or a template with one parameter such as
    ``/v2/models/{name}/infer`` (the parameter one path segment)."""

    def __init__(self, template: str, endpoint: Endpoint) -> None:
        self.template = template
        self.endpoint = endpoint
        head, brace, rest = template.partition("{")
        self.param = rest.partition("}")[0] if brace else ""
        self.prefix, self.suffix = (head, rest.partition("}")[2]) if brace else (template, "")

    def match(self, path: str) -> dict[str, str] | None:
        if not self.param:
            return {} if path == self.prefix else None
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return None
        value = path[len(self.prefix) : len(path) - len(self.suffix)]
        return {self.param: value} if value and "/" not in value else None


class Edge:
    """The app's single middleware (see the module docstring).

    Args:
        app: everything that is not a direct route (FastAPI's own stack and router).
        direct: the prediction routes the edge calls itself (POST only).
        routes: the app's route paths, read at the first request (metrics label unknown paths ``other``).
        echo_request_id: add ``X-Request-ID`` to responses (Ray Serve's direct ingress adds it itself).
    """

    def __init__(
        self,
        app: ASGIApp,
        guard: Guard,
        telemetry: Telemetry,
        direct: list[DirectRoute],
        routes: Callable[[], Iterable[str]],
        echo_request_id: bool = True,
    ) -> None:
        self.app = app
        self.guard = guard
        self.telemetry = telemetry
        self._exact = {r.template: r for r in direct if not r.param}
        self._templated = [r for r in direct if r.param]
        self._routes_of = routes
        self._routes: frozenset[str] | None = None
        self.echo_request_id = echo_request_id

    def _direct(self, scope: Scope) -> tuple[DirectRoute, dict[str, str]] | None:
        if scope["method"] != "POST":
            return None
        path = scope["path"]
        if (route := self._exact.get(path)) is not None:
            return route, {}
        for route in self._templated:
            if (params := route.match(path)) is not None:
                return route, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        rid = state["request_id"] = request_id_from(scope["headers"])
        own_headers = [*SECURITY_HEADERS, (b"x-request-id", rid.encode())] if self.echo_request_id else SECURITY_HEADERS
        status = 0
        answered = False

        async def respond(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.body":
                answered = not message.get("more_body", False)
            elif message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *own_headers]
                if any(n == b"content-type" and v.startswith(b"text/html") for n, v in headers):
                    headers.append((b"content-security-policy", HTML_CSP))
                extra: dict[str, str] | None = state.get("rate_limit_headers")
                if extra:
                    present = {n for n, _ in headers}  # a 429 carries them already
                    for k, v in extra.items():
                        if (name := k.lower().encode("latin-1")) not in present:
                            headers.append((name, v.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        guard, tracing = self.guard, self.telemetry.tracing
        counted = False
        direct = self._direct(scope)
        try:
            guard.check_headers(scope["headers"])
            if scope["path"] not in PUBLIC_PATHS:
                guard.authenticate(scope)
                if guard.in_flight >= guard.max_in_flight:
                    guard.refused_overload += 1
                    raise Overloaded(
                        f"more than {guard.max_in_flight} requests in progress on this replica; retry shortly",
                        headers={"Retry-After": "1"},
                    )
                guard.in_flight += 1
                counted = True
                receive = _uncounted_while_waiting(receive, guard)
            if direct is not None:
                route, params = direct
                with tracing.server_span(f"POST {route.template}", scope["headers"], rid, state.get("tenant_id", "")):
                    response = await route.endpoint(Request(scope, receive), **params)
                    await response(scope, receive, respond)
                    tracing.set_attributes(**{"http.response.status_code": status})
            else:
                await self.app(scope, receive, respond)
        except asyncio.CancelledError:  # Ray Serve cancels a request whose client hung up
            status = status or ClientClosed.http_status
            raise
        except Exception as exc:
            if answered:  # FastAPI's outermost middleware answered it (and our handler logged it), then re-raised
                return
            if status:  # half an answer is out: nothing sane to add to it
                raise
            error = exc if isinstance(exc, SamoError) else as_samo_error(exc, rid)
            await send_error(error, scope, respond)
        finally:
            if counted:
                guard.in_flight -= 1
            route_name = direct[0].template if direct is not None else self._route(scope)
            # No answer and no cancellation: the app died before answering.
            self.telemetry.on_request(route_name, status or 500, time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        if self._routes is None:
            self._routes = frozenset(self._routes_of())
        path: str = scope["path"]
        # A path with parameters (/v2/models/{name}) counts under its matched route's template.
        return path if path in self._routes else str(getattr(scope.get("route"), "path", "other"))


def _uncounted_while_waiting(receive: Receive, guard: Guard) -> Receive:
    """``receive``, except that while the body has not arrived whole, a wait for it does not count in
    ``guard.in_flight``: waiting on a client is not work. 192 uploads stalled after one byte held every
    slot until their 408, and everything else got 503 OVERLOADED meanwhile. Once the body is in, the
    request counts until it is answered (a later receive only watches for the disconnect)."""
    body_pending = True

    async def receive_body() -> Message:
        nonlocal body_pending
        if not body_pending:
            return await receive()
        guard.in_flight -= 1
        try:
            message = await receive()
        finally:
            guard.in_flight += 1
        body_pending = message["type"] == "http.request" and message.get("more_body", False)
        return message

    return receive_body
