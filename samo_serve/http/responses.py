"""JSON responses and the request id, shared by the routes, the error renderer and the middleware.

The hot routes write JSON with ``json.dumps`` rather than FastAPI's response machinery: it measured as
the largest per-request cost after Ray's own.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

__all__ = ["dumps", "json_response", "request_id"]


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status, headers, media_type="application/json")


def request_id(scope: Scope) -> str:
    """The id :class:`samo_serve.http.middleware.RequestIdMiddleware` gave the request (a fresh one without it)."""
    return str(scope.get("state", {}).get("request_id", "") or uuid.uuid4().hex)
