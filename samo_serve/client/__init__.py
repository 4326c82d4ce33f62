"""A small typed Python client of samo-serve, sync and async, on httpx.

::

    from samo_serve.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as samo:
        print(samo.predict("Thank you so much, I love it!").labels)

It imports nothing of the server (no Ray, ONNX Runtime, FastAPI or numpy): docs/CLIENT.md.
"""

from samo_serve.client._base import Retry
from samo_serve.client.aio import AsyncClient
from samo_serve.client.errors import (
    AnalyticsUnavailable,
    ApiError,
    BatchTooLarge,
    BodyTimeout,
    BodyTooLarge,
    ConnectFailed,
    EmptyText,
    Forbidden,
    HeadersTooLarge,
    HeaderTimeout,
    InvalidJSON,
    InvalidRequest,
    InvalidTensor,
    MethodNotAllowed,
    ModelUnavailable,
    NotFound,
    Overloaded,
    RateLimited,
    RequestTimeout,
    SamoClientError,
    ServerError,
    TextTooLong,
    TimedOut,
    TooManyConnections,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from samo_serve.client.sync import Client
from samo_serve.client.types import (
    Emotion,
    EmotionCount,
    EmotionStat,
    JournalEntry,
    Label,
    Prediction,
    Readiness,
    Segment,
    Summary,
    TimelineBucket,
    UserSummary,
)

__all__ = [
    "AnalyticsUnavailable",
    "ApiError",
    "AsyncClient",
    "BatchTooLarge",
    "BodyTimeout",
    "BodyTooLarge",
    "Client",
    "ConnectFailed",
    "Emotion",
    "EmotionCount",
    "EmotionStat",
    "EmptyText",
    "Forbidden",
    "HeaderTimeout",
    "HeadersTooLarge",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidTensor",
    "JournalEntry",
    "Label",
    "MethodNotAllowed",
    "ModelUnavailable",
    "NotFound",
    "Overloaded",
    "Prediction",
    "RateLimited",
    "Readiness",
    "RequestTimeout",
    "Retry",
    "SamoClientError",
    "Segment",
    "ServerError",
    "Summary",
    "TextTooLong",
    "TimelineBucket",
    "TooManyConnections",
    "TimedOut",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UserSummary",
    "UnsupportedMediaType",
    "ValidationFailed",
]
