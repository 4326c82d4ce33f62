"""What the client raises: one tree, one class per error code of the server (``samo_serve.errors``).

::

    SamoClientError
    ├── TransportError              no HTTP answer (connection reset, protocol error, ...)
    │   ├── ConnectFailed           the request never reached the server (refused, DNS): retried
    │   └── TimedOut                no answer within the client's timeout: not retried
    └── ApiError                    the server answered an error (status, code, message, request_id, ...)
        ├── InvalidRequest          4xx: the request must change before it can succeed
        │   ├── InvalidJSON             400 INVALID_JSON
        │   ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
        │   ├── ValidationFailed        422 VALIDATION_ERROR
        │   │   ├── EmptyText           422 EMPTY_TEXT
        │   │   └── InvalidTensor       400 INVALID_TENSOR (Open Inference Protocol routes)
        │   ├── TextTooLong             413 TEXT_TOO_LONG
        │   ├── BatchTooLarge           413 BATCH_TOO_LARGE
        │   ├── BodyTooLarge            413 BODY_TOO_LARGE
        │   ├── BodyTimeout             408 BODY_TIMEOUT
        │   ├── HeadersTooLarge         431 HEADERS_TOO_LARGE
        │   ├── HeaderTimeout           408 HEADER_TIMEOUT
        │   ├── Forbidden               403 FORBIDDEN (the key lacks the route's scope)
        │   ├── NotFound                404 NOT_FOUND
        │   └── MethodNotAllowed        405 METHOD_NOT_ALLOWED
        ├── Unauthorized            401 UNAUTHORIZED
        ├── RateLimited             429 RATE_LIMITED (retried while Retry-After is within the cap)
        ├── Unavailable             503: retried while Retry-After is within the cap
        │   ├── Overloaded              503 OVERLOADED
        │   ├── RequestTimeout          503 TIMEOUT
        │   ├── ModelUnavailable        503 MODEL_UNAVAILABLE
        │   ├── TooManyConnections      503 TOO_MANY_CONNECTIONS
        │   └── AnalyticsUnavailable    503 ANALYTICS_UNAVAILABLE
        └── ServerError             500 INTERNAL, 499 CLIENT_CLOSED and any code this client does not know

Pure Python: the client imports nothing of the server (tests/unit/test_client.py checks every server
code has its class here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AnalyticsUnavailable",
    "ApiError",
    "BatchTooLarge",
    "BodyTimeout",
    "BodyTooLarge",
    "ConnectFailed",
    "EmptyText",
    "Forbidden",
    "HeaderTimeout",
    "HeadersTooLarge",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidTensor",
    "MethodNotAllowed",
    "ModelUnavailable",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "RequestTimeout",
    "SamoClientError",
    "ServerError",
    "TextTooLong",
    "TooManyConnections",
    "TimedOut",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
    "error_from_response",
]


class SamoClientError(Exception):
    """Everything :class:`samo_serve.client.Client` raises."""


class TransportError(SamoClientError):
    """No HTTP answer came back (the ``httpx`` error is the ``__cause__``)."""


class ConnectFailed(TransportError):
    """The connection could not be made, so the server saw nothing: safe to retry."""


class TimedOut(TransportError):
    """No answer within the client's timeout; the server may still have done the work."""


class ApiError(SamoClientError):
    """The server answered with an error envelope ``{"error": {"code", "message", "request_id"}}``.

    Attributes:
        status: the HTTP status.
        code: the contract's error code (``RATE_LIMITED``, ...).
        request_id: quote it when asking about this request (it is in the server's log).
        details: the server's details (validation errors), if any.
        retry_after_s: the ``Retry-After`` the server sent, in seconds, if any.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str = "",
        details: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details
        self.retry_after_s = retry_after_s


class InvalidRequest(ApiError):
    pass


class InvalidJSON(InvalidRequest):
    pass


class UnsupportedMediaType(InvalidRequest):
    pass


class ValidationFailed(InvalidRequest):
    pass


class EmptyText(ValidationFailed):
    pass


class InvalidTensor(ValidationFailed):
    pass


class TextTooLong(InvalidRequest):
    pass


class BatchTooLarge(InvalidRequest):
    pass


class BodyTooLarge(InvalidRequest):
    pass


class BodyTimeout(InvalidRequest):
    pass


class HeadersTooLarge(InvalidRequest):
    pass


class HeaderTimeout(InvalidRequest):
    pass


class Forbidden(InvalidRequest):
    pass


class NotFound(InvalidRequest):
    pass


class MethodNotAllowed(InvalidRequest):
    pass


class Unauthorized(ApiError):
    pass


class RateLimited(ApiError):
    pass


class Unavailable(ApiError):
    pass


class Overloaded(Unavailable):
    pass


class RequestTimeout(Unavailable):
    pass


class ModelUnavailable(Unavailable):
    pass


class AnalyticsUnavailable(Unavailable):
    pass


class TooManyConnections(Unavailable):
    pass


class ServerError(ApiError):
    pass


#: the server's error codes (samo_serve.errors) -> the class raised here
CODES: dict[str, type[ApiError]] = {
    "INVALID_JSON": InvalidJSON,
    "UNSUPPORTED_MEDIA_TYPE": UnsupportedMediaType,
    "VALIDATION_ERROR": ValidationFailed,
    "EMPTY_TEXT": EmptyText,
    "INVALID_TENSOR": InvalidTensor,
    "TEXT_TOO_LONG": TextTooLong,
    "BATCH_TOO_LARGE": BatchTooLarge,
    "BODY_TOO_LARGE": BodyTooLarge,
    "BODY_TIMEOUT": BodyTimeout,
    "HEADERS_TOO_LARGE": HeadersTooLarge,
    "HEADER_TIMEOUT": HeaderTimeout,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    "METHOD_NOT_ALLOWED": MethodNotAllowed,
    "UNAUTHORIZED": Unauthorized,
    "RATE_LIMITED": RateLimited,
    "OVERLOADED": Overloaded,
    "TIMEOUT": RequestTimeout,
    "MODEL_UNAVAILABLE": ModelUnavailable,
    "ANALYTICS_UNAVAILABLE": AnalyticsUnavailable,
    "TOO_MANY_CONNECTIONS": TooManyConnections,
    "CLIENT_CLOSED": ServerError,
    "INTERNAL": ServerError,
}


def _class_for_status(status: int) -> type[ApiError]:
    # A code this client does not know (a newer server, or a proxy in between): go by the status.
    if status == 401:
        return Unauthorized
    if status == 429:
        return RateLimited
    if status == 503:
        return Unavailable
    if 400 <= status < 500:
        return InvalidRequest
    return ServerError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the server sends whole seconds); None when absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(status: int, content: bytes, headers: Mapping[str, str]) -> ApiError:
    """The :class:`ApiError` for an error answer; a body that is not the envelope still gives one."""
    code, message, request_id, details = "", "", headers.get("x-request-id", ""), None
    try:
        error = json.loads(content)["error"]
        code, message = str(error["code"]), str(error["message"])
        request_id = str(error.get("request_id") or request_id)
        details = error.get("details")
    except (ValueError, KeyError, TypeError):  # a proxy's HTML page, an empty body, ...
        message = content[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    cls = CODES.get(code) or _class_for_status(status)
    code = code or f"HTTP_{status}"
    return cls(status, code, message, request_id, details, parse_retry_after(headers.get("retry-after")))
