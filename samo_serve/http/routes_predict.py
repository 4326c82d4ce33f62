"""The prediction routes (/predict, /predict/batch) and the label catalog (/emotions).

The hot routes read the body themselves and validate it with pydantic's JSON parser: FastAPI's body
machinery measured as the largest per-request cost after Ray's own. Their request schemas are added to
the OpenAPI spec by the app factory.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.params import Depends
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from samo_serve.calls import PredictCall, RequestContext, TextEntry, repeated_entry
from samo_serve.core.postprocess import PredictOptions, emotions_catalog
from samo_serve.errors import (
    BodyTimeout,
    BodyTooLarge,
    InvalidJSON,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)
from samo_serve.http.edge import DirectRoute
from samo_serve.http.errors import ERROR_RESPONSES, validation_details
from samo_serve.http.guard import Guard, caller, require
from samo_serve.http.responses import json_response, request_id
from samo_serve.http.schemas import (
    Authorship,
    BatchPredictRequest,
    BatchPredictResponse,
    PredictRequest,
    PredictResponse,
)
from samo_serve.service import EmotionService
from samo_serve.settings import LimitSettings

__all__ = ["add_predict_routes", "bounded", "read_body", "request_context", "serve_call"]

_ONE = ("text",)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


#: a request still running after this long starts watching for its client's disconnect and its timeout; the
#: others (nearly all) never create a task or a timer: one sweep per interval looks at what is in flight
#: (measured: two tasks and an ``asyncio.wait`` per request were ~7% of an L1 hit's samples, a timer ~3%)
WATCH_AFTER_S = 0.2


async def bounded(request: Request, work: Awaitable[T], limits: LimitSettings) -> T:
    """Run ``work`` in this task until it finishes, the client disconnects (its slot is freed), or the timeout.

    The work is cancelled in every other case, this request's own cancellation included (Ray Serve
    cancels a request whose client hung up): nothing is answered or logged for it.

    Raises:
        ClientDisconnect: the client went away (answered 499, which nobody reads).
        RequestTimeout: 503 after ``limits.request_timeout_s``.
    """
    watch = _Watch(request, limits.request_timeout_s)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.reason is None:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]  # ours, not a cancellation from outside
        if watch.reason == "disconnect":
            raise ClientDisconnect() from None
        timeout = limits.request_timeout_s
        raise RequestTimeout(f"no answer within {timeout:g} s", headers={"Retry-After": "1"}) from None
    finally:
        watch.stop()


class _Watch:
    """Cancels its request's task when the client disconnects or the time is up, once :class:`_Sweeper` starts it.

    ``disconnect=False`` watches the time only: while the body is read, the reader takes the ASGI messages.
    """

    __slots__ = ("_deadline", "_disconnect", "_request", "_sweeper", "_task", "_watcher", "reason", "started")

    def __init__(self, request: Request, timeout_s: float, disconnect: bool = True) -> None:
        self.reason: str | None = None
        self._request = request
        self._disconnect = disconnect
        self._task = asyncio.current_task()
        self.started = time.monotonic()
        self._deadline = self.started + timeout_s
        self._watcher: asyncio.Task[None] | None = None
        self._sweeper = _Sweeper.of_loop()
        self._sweeper.add(self)

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        left = max(0.0, self._deadline - time.monotonic())
        if not self._disconnect:
            await asyncio.sleep(left)
            self.reason = "timeout"
        else:
            try:
                await asyncio.wait_for(_disconnected(self._request), left)
                self.reason = "disconnect"
            except TimeoutError:
                self.reason = "timeout"
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        self._sweeper.watches.discard(self)
        if self._watcher is not None:
            self._watcher.cancel()


class _Sweeper:
    """Every ``WATCH_AFTER_S``, starts the watcher of each request in flight longer than that (one per loop)."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.watches: set[_Watch] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_loop(cls) -> _Sweeper:
        loop = asyncio.get_running_loop()
        sweeper = cls._by_loop.get(loop)
        if sweeper is None:
            sweeper = cls._by_loop[loop] = cls()
        return sweeper

    def add(self, watch: _Watch) -> None:
        self.watches.add(watch)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep(), name="disconnect-sweeper")

    async def _sweep(self) -> None:
        try:
            while self.watches:  # ends when nothing is in flight: no task left behind on an idle loop
                await asyncio.sleep(WATCH_AFTER_S / 2)
                due = time.monotonic() - WATCH_AFTER_S
                for watch in [w for w in self.watches if w.started <= due]:
                    self.watches.discard(watch)
                    watch.start()
        finally:
            self._task = None


async def _disconnected(request: Request) -> None:
    # The body has been read: the next ASGI message on this request can only be its disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def request_context(request: Request, entry: Authorship | None = None) -> RequestContext:
    """What the log records of this request: its id, the key and its tenant, and the entry's user, time and
    (``/predict``) entry id."""
    return RequestContext(
        request_id(request.scope),
        request.scope["state"].get("api_key_id"),
        tenant_id=caller(request).tenant_id,
        user_id=entry.user_id if entry is not None else None,
        occurred_at=entry.occurred_at if entry is not None else None,
        entry_id=getattr(entry, "entry_id", None),
    )


def _entries(req: BatchPredictRequest) -> list[TextEntry | None] | None:
    """Each batch item's own person, time and entry id (None when no item has any: plain strings).

    Raises:
        ValidationFailed: an entry id twice in the batch (which of the two would be the entry?).
    """
    if all(i.user_id is None and i.occurred_at is None and i.entry_id is None for i in req.texts):
        return None
    entries: list[TextEntry | None] = [TextEntry(i.user_id, i.occurred_at, i.entry_id) for i in req.texts]
    if (i := repeated_entry(entries)) is not None:
        raise ValidationFailed(
            f"`texts.{i}.entry_id`: {req.texts[i].entry_id!r} is in the batch twice; send each entry once",
            [{"loc": ["body", "texts", i, "entry_id"], "msg": "duplicate entry_id", "type": "value_error"}],
        )
    return entries


async def serve_call(
    request: Request,
    call: PredictCall,
    service: EmotionService,
    guard: Guard,
    limits: LimitSettings,
    entry: Authorship | None = None,
) -> list[dict[str, Any]]:
    """Every prediction route's one way to the service: the ``predict`` scope, the caller's context and
    bucket, :meth:`EmotionService.run` within the request's bounds."""
    require(request, "predict")

    async def charge(cost: int) -> None:
        await guard.charge(request, cost)

    return await bounded(request, service.run(call, request_context(request, entry), charge), limits)


async def _parse_body(request: Request, model: type[M], limits: LimitSettings) -> M:
    content_type = _header(request, b"content-type") or "application/json"
    content_type = content_type.split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"send JSON with `Content-Type: application/json`, not {content_type!r}")
    body = await read_body(request, limits)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            raise InvalidJSON("request body is not valid JSON (UTF-8)") from None
        named = ", ".join(dict.fromkeys(f"`{'.'.join(str(p) for p in e['loc'])}`" for e in errors if e["loc"]))
        message = "request body does not match the schema" + (f": {named}" if named else "")
        raise ValidationFailed(message, validation_details(errors)) from None


def _header(request: Request, name: bytes) -> str | None:
    """A request header by its lower-case name, read from the raw list (no Headers object per request)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(request: Request, limits: LimitSettings) -> bytes:
    """The body; 413 BODY_TOO_LARGE past ``limits.max_body_bytes`` (before reading it when the size is declared),
    408 BODY_TIMEOUT when it has not arrived whole within ``limits.body_timeout_s``."""
    declared = _header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    watch = _Watch(request, limits.body_timeout_s, disconnect=False)  # started by the sweep after 0.2 s only
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_body_bytes:  # a chunked body is refused as soon as it passes the limit
                raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except asyncio.CancelledError:
        if watch.reason is None:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]  # ours, not a cancellation from outside
        raise BodyTimeout(f"the request body did not arrive within {limits.body_timeout_s:g} s") from None
    finally:
        watch.stop()


def add_predict_routes(
    app: FastAPI, service: EmotionService, guard: Guard, limits: LimitSettings, limited: Sequence[Depends]
) -> list[DirectRoute]:
    """The v1 prediction routes and the catalog; returns the routes the edge calls directly."""

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=_body_schema("PredictRequest"),
        summary="Emotions of one text",
    )
    async def predict(request: Request) -> Response:
        req = await _parse_body(request, PredictRequest, limits)
        (result,) = await serve_call(request, PredictCall([req.text], req, _ONE), service, guard, limits, req)
        return json_response(result)

    @app.post(
        "/predict/batch",
        response_model=BatchPredictResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=_body_schema("BatchPredictRequest"),
        summary="Emotions of several texts",
    )
    async def predict_batch(request: Request) -> Response:
        req = await _parse_body(request, BatchPredictRequest, limits)
        options = PredictOptions(
            threshold=req.threshold, top_k=req.top_k, all_scores=req.all_scores, segments=req.segments
        )
        call = PredictCall(
            [item.text for item in req.texts], options, [f"texts[{i}]" for i in range(len(req.texts))], _entries(req)
        )
        results = await serve_call(request, call, service, guard, limits, req)
        return json_response({"results": results, "count": len(results)})

    @app.get("/emotions", summary="The label set with Ekman and sentiment groups", dependencies=limited)
    async def emotions() -> Response:
        return json_response(emotions_catalog(service.card))

    return [DirectRoute("/predict", predict), DirectRoute("/predict/batch", predict_batch)]
