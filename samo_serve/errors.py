"""The error hierarchy of samo-serve; each error knows its contract code and HTTP status.

::

    SamoError (500 INTERNAL)
    ├── InvalidJSON            400 INVALID_JSON         body is not valid JSON / UTF-8
    ├── UnsupportedMediaType   415 UNSUPPORTED_MEDIA_TYPE
    ├── ValidationFailed       422 VALIDATION_ERROR     wrong types, unknown fields, out-of-range options
    │   ├── EmptyText          422 EMPTY_TEXT           empty or whitespace-only text
    │   └── InvalidTensor      400 INVALID_TENSOR       an Open Inference Protocol request that is not valid
    ├── TextTooLong            413 TEXT_TOO_LONG        over the hard character cap
    ├── BatchTooLarge          413 BATCH_TOO_LARGE      more texts than max_batch_texts
    ├── BodyTooLarge           413 BODY_TOO_LARGE       request body over max_body_bytes
    ├── BodyTimeout            408 BODY_TIMEOUT         the body did not arrive within body_timeout_s
    ├── HeadersTooLarge        431 HEADERS_TOO_LARGE    more or larger headers than max_header_count/bytes
    ├── HeaderTimeout          408 HEADER_TIMEOUT       the headers did not arrive within header_timeout_s
    ├── TooManyConnections     503 TOO_MANY_CONNECTIONS the server holds max_connections already (Retry-After)
    ├── NotFound               404 NOT_FOUND
    ├── MethodNotAllowed       405 METHOD_NOT_ALLOWED   (Allow names the methods)
    ├── Unauthorized           401 UNAUTHORIZED         no API key, or not an active one
    ├── Forbidden              403 FORBIDDEN            the key lacks the scope the route needs
    ├── RateLimited            429 RATE_LIMITED         the caller's token bucket is empty (Retry-After)
    ├── Overloaded             503 OVERLOADED           the replica's in-flight bound is reached (Retry-After)
    ├── RequestTimeout         503 TIMEOUT              the prediction took longer than request_timeout_s
    ├── ModelUnavailable       503 MODEL_UNAVAILABLE    the model did not answer
    ├── AnalyticsUnavailable   503 ANALYTICS_UNAVAILABLE the request log is off or its database is down
    └── ClientClosed           499 CLIENT_CLOSED        the client hung up before the answer (nginx's 499):
                                                        nobody reads it; metrics count it apart from errors

Errors are plain picklable exceptions (constructor args only) so they can cross a Ray handle.
The HTTP rendering happens in exactly one place: ``samo_serve.http.errors``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnalyticsUnavailable",
    "BatchTooLarge",
    "BodyTimeout",
    "BodyTooLarge",
    "ClientClosed",
    "EmptyText",
    "Forbidden",
    "HeaderTimeout",
    "HeadersTooLarge",
    "InvalidJSON",
    "InvalidTensor",
    "MethodNotAllowed",
    "ModelUnavailable",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "RequestTimeout",
    "SamoError",
    "TextTooLong",
    "TooManyConnections",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class SamoError(Exception):
    code = "INTERNAL"
    http_status = 500

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, details, headers)
        self.message = message
        self.details = details
        self.headers = headers or {}  # e.g. Retry-After, X-RateLimit-*

    def to_dict(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "request_id": request_id}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidJSON(SamoError):
    code, http_status = "INVALID_JSON", 400


class UnsupportedMediaType(SamoError):
    code, http_status = "UNSUPPORTED_MEDIA_TYPE", 415


class ValidationFailed(SamoError):
    code, http_status = "VALIDATION_ERROR", 422


class EmptyText(ValidationFailed):
    code = "EMPTY_TEXT"


class InvalidTensor(ValidationFailed):
    # The protocol answers every invalid request 400 (samo_serve.http.routes_v2).
    code, http_status = "INVALID_TENSOR", 400


class TextTooLong(SamoError):
    code, http_status = "TEXT_TOO_LONG", 413


class BatchTooLarge(SamoError):
    code, http_status = "BATCH_TOO_LARGE", 413


class BodyTooLarge(SamoError):
    code, http_status = "BODY_TOO_LARGE", 413


class BodyTimeout(SamoError):
    code, http_status = "BODY_TIMEOUT", 408


class HeadersTooLarge(SamoError):
    code, http_status = "HEADERS_TOO_LARGE", 431


class HeaderTimeout(SamoError):
    code, http_status = "HEADER_TIMEOUT", 408


class TooManyConnections(SamoError):
    code, http_status = "TOO_MANY_CONNECTIONS", 503


class NotFound(SamoError):
    code, http_status = "NOT_FOUND", 404


class MethodNotAllowed(SamoError):
    code, http_status = "METHOD_NOT_ALLOWED", 405


class ClientClosed(SamoError):
    code, http_status = "CLIENT_CLOSED", 499


class ModelUnavailable(SamoError):
    code, http_status = "MODEL_UNAVAILABLE", 503


class AnalyticsUnavailable(SamoError):
    code, http_status = "ANALYTICS_UNAVAILABLE", 503


class Unauthorized(SamoError):
    code, http_status = "UNAUTHORIZED", 401


class Forbidden(SamoError):
    code, http_status = "FORBIDDEN", 403


class RateLimited(SamoError):
    code, http_status = "RATE_LIMITED", 429


class Overloaded(SamoError):
    code, http_status = "OVERLOADED", 503


class RequestTimeout(SamoError):
    code, http_status = "TIMEOUT", 503
