"""The one place where an exception becomes an HTTP answer: the contract's error envelope plus headers.

``{"error": {"code", "message", "request_id"[, "details"]}}`` for every failure:

- :class:`samo_serve.errors.SamoError` subclasses (route handlers, the guard, readiness) as they are,
  with their headers (``Retry-After``, ``X-RateLimit-*``, ``WWW-Authenticate``);
- request validation as 422 VALIDATION_ERROR (the input itself is never echoed back);
- Starlette's 404 and 405 (with ``Allow``);
- a client that hung up as 499 CLIENT_CLOSED (nginx's code): nobody reads it, and the metrics count it
  apart from errors (samo_serve.http.middleware.MetricsMiddleware);
- anything else as a generic 500 INTERNAL: the traceback goes to the log with the request id, never
  to the client.

Under ``/v2`` (the Open Inference Protocol, samo_serve.http.routes_v2) the body is the protocol's
``{"error": "<message>"}`` instead, with the same status and headers.

Route handlers raise; the app's exception handlers and the ASGI middlewares (which answer before any
route runs) render through :func:`error_response` and :func:`send_error`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope, Send

from samo_serve.errors import ClientClosed, MethodNotAllowed, NotFound, SamoError, ValidationFailed
from samo_serve.http.responses import dumps, request_id
from samo_serve.http.schemas import ErrorResponse

__all__ = [
    "ERROR_RESPONSES",
    "as_samo_error",
    "error_response",
    "install_error_handlers",
    "send_error",
    "validation_details",
]

log = logging.getLogger(__name__)

#: the OpenAPI ``responses`` of the prediction routes
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 429, 503)
}
_HTTP_ERRORS: dict[int, type[SamoError]] = {404: NotFound, 405: MethodNotAllowed}


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a 100k-character text or private words.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def as_samo_error(exc: BaseException, request_id_: str = "") -> SamoError:
    """The contract error for ``exc``; an unexpected one is logged with its traceback and becomes a 500."""
    if isinstance(exc, SamoError):
        return exc
    if isinstance(exc, RequestValidationError):
        details = validation_details(list(exc.errors()))
        named = ", ".join(dict.fromkeys(f"`{d['loc'][-1]}`" for d in details if d["loc"]))
        return ValidationFailed("request does not match the schema" + (f": {named}" if named else ""), details)
    if isinstance(exc, StarletteHTTPException):
        error = _HTTP_ERRORS.get(exc.status_code, SamoError)(str(exc.detail), headers=dict(exc.headers or {}))
        if type(error) is SamoError:  # a status with no error class of its own
            error.code, error.http_status = "HTTP_ERROR", exc.status_code
        return error
    if isinstance(exc, ClientDisconnect):
        log.info("client disconnected before its answer (request %s)", request_id_)
        return ClientClosed("the client closed the connection before the answer")
    log.error("unhandled error (request %s)", request_id_, exc_info=exc)
    return SamoError("internal error")


def _render(exc: BaseException, scope: Scope, extra: dict[str, Any] | None) -> tuple[int, bytes, dict[str, str]]:
    rid = request_id(scope)
    error = as_samo_error(exc, rid)
    path = scope.get("path", "")
    body = {"error": error.message} if path == "/v2" or path.startswith("/v2/") else error.to_dict(rid)
    body.update(extra or {})
    return error.http_status, dumps(body), error.headers


def error_response(exc: BaseException, scope: Scope, extra: dict[str, Any] | None = None) -> Response:
    """``exc`` as a JSON response; ``extra`` adds top-level fields next to ``error`` (readiness: status)."""
    status, body, headers = _render(exc, scope, extra)
    return Response(body, status, headers, media_type="application/json")


async def send_error(exc: BaseException, scope: Scope, send: Send) -> None:
    """``exc`` sent straight over ASGI: for middleware that answers before (or instead of) the app."""
    status, body, extra_headers = _render(exc, scope, None)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(exc, request.scope)

    for kind in (SamoError, RequestValidationError, StarletteHTTPException, ClientDisconnect):
        app.add_exception_handler(kind, handle)
    # Starlette's outermost ServerErrorMiddleware (any other error in a FastAPI route): it answers through
    # the edge, which sees the answer complete and swallows the re-raised error (samo_serve.http.edge)
    app.add_exception_handler(Exception, handle)
