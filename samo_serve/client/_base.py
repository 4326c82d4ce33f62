"""What the sync and the async client share: the retry policy, request bodies, chunking, limits, errors.

No I/O here: :class:`samo_serve.client.Client` and :class:`samo_serve.client.AsyncClient` each run the
same steps over their own ``httpx`` client.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

from samo_serve.client.errors import (
    AnalyticsUnavailable,
    ApiError,
    ConnectFailed,
    RateLimited,
    SamoClientError,
    TimedOut,
    TransportError,
    Unavailable,
    error_from_response,
)
from samo_serve.client.types import JournalEntry, Readiness

T = TypeVar("T")

__all__ = [
    "DEFAULT_MAX_BATCH_TEXTS",
    "DEFAULT_URL",
    "Retry",
    "chunked",
    "client_headers",
    "max_batch_from_openapi",
    "options",
    "readiness",
    "time_range",
    "transport_error",
]

DEFAULT_URL = "http://127.0.0.1:8000"
#: the server's default ``limits.max_batch_texts``, for a server whose OpenAPI spec does not state it
DEFAULT_MAX_BATCH_TEXTS = 64


@dataclass(frozen=True)
class Retry:
    """When to try a request again: on 429, on the prediction path's 503s, and when no connection was made.

    A ``Retry-After`` from the server is honoured exactly; without one the wait doubles from
    ``backoff_s`` (with jitter). A wait longer than ``max_sleep_s`` is not shortened: the error is raised
    instead, since asking again before the server said to would only be refused again.

    Attributes:
        max_attempts: attempts in all, the first one included (1: never retry).
        max_sleep_s: the longest wait before one retry.
        backoff_s: the first wait when the server named none.
    """

    max_attempts: int = 3
    max_sleep_s: float = 10.0
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_sleep_s < 0 or self.backoff_s < 0:
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, attempt: int, error: SamoClientError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to raise ``error`` now."""
        if attempt >= self.max_attempts or not retryable(error):
            return None
        if isinstance(error, ApiError) and error.retry_after_s is not None:
            wait = error.retry_after_s
        else:
            wait = self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        return wait if wait <= self.max_sleep_s else None


def retryable(error: SamoClientError) -> bool:
    # The request log being off or its database down is not fixed by asking again within seconds.
    if isinstance(error, AnalyticsUnavailable):
        return False
    return isinstance(error, RateLimited | Unavailable | ConnectFailed)


def transport_error(exc: httpx.TransportError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return TimedOut(f"no answer in time: {exc!r}")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectFailed(f"could not connect: {exc!r}")
    return TransportError(f"HTTP transport failed: {exc!r}")


def readiness(response: httpx.Response) -> Readiness:
    """``/readyz``'s answer: a 503 that says the model is not answering is ``ready=False``, not an error."""
    if response.is_success or response.status_code == 503:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "status" in body:
            return Readiness.from_json(body)
    raise error_from_response(response.status_code, response.content, response.headers)


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = dict(extra or {})
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


def options(threshold: float | None, top_k: int | None, all_scores: bool, segments: bool = False) -> dict[str, Any]:
    """The optional prediction fields, only those set (the server rejects unknown or null-typed ones,
    and an older server one it does not know, such as ``segments``)."""
    body: dict[str, Any] = {}
    if threshold is not None:
        body["threshold"] = threshold
    if top_k is not None:
        body["top_k"] = top_k
    if all_scores:
        body["all_scores"] = True
    if segments:
        body["segments"] = True
    return body


def chunked(texts: Sequence[T], size: int) -> list[list[T]]:
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def max_batch_from_openapi(spec: Any) -> int:
    """``maxItems`` of ``BatchPredictRequest.texts`` in the server's OpenAPI spec (its ``max_batch_texts``)."""
    try:
        limit = spec["components"]["schemas"]["BatchPredictRequest"]["properties"]["texts"]["maxItems"]
    except (KeyError, TypeError):
        return DEFAULT_MAX_BATCH_TEXTS
    return limit if isinstance(limit, int) and limit >= 1 else DEFAULT_MAX_BATCH_TEXTS


def time_range(start: datetime | str | None, end: datetime | str | None) -> dict[str, str]:
    """Query parameters for the analytics routes (ISO-8601; a naive time is UTC on the server)."""
    params = {}
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            params[name] = value.isoformat() if isinstance(value, datetime) else value
    return params


def entry_fields(
    user_id: str | None, occurred_at: datetime | str | None, entry_id: str | None = None
) -> dict[str, Any]:
    """A text's person, time and entry id, only those set (docs/API.md, "People over time")."""
    body: dict[str, Any] = {}
    if user_id is not None:
        body["user_id"] = user_id
    if occurred_at is not None:
        body["occurred_at"] = occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
    if entry_id is not None:
        body["entry_id"] = entry_id
    return body


def batch_items(texts: Sequence[str | JournalEntry]) -> list[str | dict[str, Any]]:
    """``/predict/batch``'s items: strings as they are, entries as objects with their own fields."""
    return [t if isinstance(t, str) else t.to_json() for t in texts]
