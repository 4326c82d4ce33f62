"""The prediction routes (/predict, /predict/batch) and the label catalog (/emotions).

The hot routes read the body themselves and validate it with pydantic's JSON parser: FastAPI's body
machinery measured as the largest per-request cost after Ray's own. Their request schemas are added to
the OpenAPI spec by the app factory.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.params import Depends
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from samo_serve.core.postprocess import PredictOptions, emotions_catalog
from samo_serve.errors import (
    BatchTooLarge,
    BodyTooLarge,
    InvalidJSON,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)
from samo_serve.http.errors import ERROR_RESPONSES, validation_details
from samo_serve.http.guard import Guard, caller, require
from samo_serve.http.responses import json_response, request_id
from samo_serve.http.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    Entry,
    PredictRequest,
    PredictResponse,
)
from samo_serve.service import EmotionService, RequestContext, check_text
from samo_serve.settings import LimitSettings

__all__ = ["add_predict_routes", "bounded", "read_body", "request_context"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


async def bounded(request: Request, work: Awaitable[T], limits: LimitSettings) -> T:
    """Run ``work`` until it finishes, the client disconnects (its slot is freed), or the timeout.

    The work is cancelled in every other case, this request's own cancellation included (Ray Serve
    cancels a request whose client hung up): nothing is answered or logged for it.

    Raises:
        ClientDisconnect: the client went away (answered 499, which nobody reads).
        RequestTimeout: 503 after ``limits.request_timeout_s``.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, gone}, timeout=limits.request_timeout_s, return_when=FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    if gone in done:
        raise ClientDisconnect()
    raise RequestTimeout(f"no answer within {limits.request_timeout_s:g} s", headers={"Retry-After": "1"})


async def _disconnected(request: Request) -> None:
    # The body has been read: the next ASGI message on this request can only be its disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def request_context(request: Request, entry: Entry | None = None) -> RequestContext:
    """What the log records of this request: its id, the key and its tenant, and the entry's user and time."""
    return RequestContext(
        request_id(request.scope),
        getattr(request.state, "api_key_id", None),
        tenant_id=caller(request).tenant_id,
        user_id=entry.user_id if entry is not None else None,
        occurred_at=entry.occurred_at if entry is not None else None,
    )


async def _parse_body(request: Request, model: type[M], limits: LimitSettings) -> M:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
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


async def read_body(request: Request, limits: LimitSettings) -> bytes:
    """The body; 413 BODY_TOO_LARGE past ``limits.max_body_bytes`` (before reading it when the size is declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body over {limits.max_body_bytes} bytes")
    return body


def add_predict_routes(
    app: FastAPI, service: EmotionService, guard: Guard, limits: LimitSettings, limited: Sequence[Depends]
) -> None:
    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=_body_schema("PredictRequest"),
        summary="Emotions of one text",
    )
    async def predict(request: Request) -> Response:
        require(request, "predict")
        req = await _parse_body(request, PredictRequest, limits)
        check_text(req.text, limits.max_text_chars)
        plans = await service.plan([req.text], ["text"])
        await guard.charge(request, plans[0].cost)  # a document costs its segments
        work = service.predict([req.text], req, request_context(request, req), plans)
        (result,) = await bounded(request, work, limits)
        return json_response(result)

    @app.post(
        "/predict/batch",
        response_model=BatchPredictResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=_body_schema("BatchPredictRequest"),
        summary="Emotions of several texts",
    )
    async def predict_batch(request: Request) -> Response:
        require(request, "predict")
        req = await _parse_body(request, BatchPredictRequest, limits)
        if len(req.texts) > limits.max_batch_texts:
            raise BatchTooLarge(f"{len(req.texts)} texts; the limit is {limits.max_batch_texts} per request")
        for i, text in enumerate(req.texts):
            check_text(text, limits.max_text_chars, field=f"texts[{i}]")
        options = PredictOptions(
            threshold=req.threshold, top_k=req.top_k, all_scores=req.all_scores, segments=req.segments
        )
        plans = await service.plan(req.texts, [f"texts[{i}]" for i in range(len(req.texts))])
        await guard.charge(request, sum(p.cost for p in plans))  # a batch counts its texts' segments
        work = service.predict(req.texts, options, request_context(request, req), plans)
        results = await bounded(request, work, limits)
        return json_response({"results": results, "count": len(results)})

    @app.get("/emotions", summary="The label set with Ekman and sentiment groups", dependencies=limited)
    async def emotions() -> Response:
        return json_response(emotions_catalog(service.card))
