"""The Open Inference Protocol (KServe V2) over REST, beside the native API and through the same service.

Health, server and model metadata, readiness and ``POST /v2/models/{name}/infer``, where ``name`` is the
model card's name. An infer call goes the way of ``/predict/batch``, through the same request function
(:meth:`samo_serve.service.EmotionService.run`): the same checks and limits, the caller's rate-limit bucket
charged per segment, the cache router, micro-batches and request log, the same timeout. Its scores are
``/predict``'s ``all_scores`` in the card's label order. Errors are the protocol's ``{"error": "<message>"}``
(rendered by ``samo_serve.http.errors`` for every ``/v2`` path), with the native API's statuses, but 400
for any request that is not valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Path, Request
from fastapi.params import Depends
from starlette.responses import Response

from samo_serve.core.model_card import ModelCard
from samo_serve.errors import EmptyText, InvalidTensor, ModelUnavailable, NotFound, UnsupportedMediaType
from samo_serve.http.edge import DirectRoute
from samo_serve.http.guard import Guard
from samo_serve.http.responses import json_response
from samo_serve.http.routes_predict import read_body, serve_call
from samo_serve.http.v2_schemas import (
    V2Error,
    V2InferResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from samo_serve.http.v2_tensors import (
    HEADER_LENGTH,
    INPUT,
    LABEL_SEPARATOR,
    LABELS,
    SCORES,
    encode_response,
    parse_request,
)
from samo_serve.service import EmotionService, PredictCall
from samo_serve.settings import LimitSettings

__all__ = ["V2_EXTENSIONS", "add_v2_routes"]

V2_EXTENSIONS = ["binary_tensor_data"]
_TAG: list[str | Enum] = ["Open Inference Protocol (V2)"]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": V2Error} for code in (401, 404, 429, 503)}
_INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": V2Error} for code in (400, 401, 404, 413, 415, 429, 503)
}
_INFER_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}}},
    },
    "parameters": [
        {
            "name": HEADER_LENGTH,
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
            "description": "binary tensor data: the JSON header's size; the binary tensors follow it",
        }
    ],
}
_INFER_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or the JSON header and binary outputs when any output asked for binary_data",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _server_version() -> str:
    try:
        return version("samo-serve")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def _model_metadata(card: ModelCard, limits: LimitSettings) -> dict[str, Any]:
    return {
        "name": card.name,
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": SCORES, "datatype": "FP32", "shape": [-1, len(card.labels)]},
            {"name": LABELS, "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "labels": card.labels,
            "label_separator": LABEL_SEPARATOR,
            "model_version": card.version,
            "max_batch_texts": limits.max_batch_texts,
            "max_text_chars": limits.max_text_chars,
        },
    }


def add_v2_routes(
    app: FastAPI, service: EmotionService, guard: Guard, limits: LimitSettings, limited: Sequence[Depends]
) -> list[DirectRoute]:
    card = service.card
    # Documented as the one name served (so a client, or schemathesis, finds it); any other is a 404.
    model_name: Any = Path(description="the model card's name", json_schema_extra={"enum": [card.name]})

    def model(name: str) -> None:
        if name != card.name:
            raise NotFound(f"no model {name!r}; this server serves {card.name!r}")

    async def model_ready() -> None:
        try:
            await service.pipeline.model_info()
        except Exception as exc:  # any failure of the model path means not ready
            raise ModelUnavailable(f"model did not answer: {type(exc).__name__}", headers={"Retry-After": "1"}) from exc

    @app.get("/v2", response_model=V2ServerMetadata, responses=_ERRORS, tags=_TAG, dependencies=limited)
    async def server_metadata() -> Response:
        return json_response({"name": "samo-serve", "version": _server_version(), "extensions": V2_EXTENSIONS})

    @app.get("/v2/health/live", response_model=V2Live, tags=_TAG, summary="Liveness (no key needed)")
    async def live() -> Response:
        return json_response({"live": True})

    @app.get(
        "/v2/health/ready", response_model=V2Ready, responses=_ERRORS, tags=_TAG, summary="Readiness (no key needed)"
    )
    async def ready() -> Response:
        await model_ready()
        return json_response({"ready": True})

    @app.get("/v2/models/{name}", response_model=V2ModelMetadata, responses=_ERRORS, tags=_TAG, dependencies=limited)
    async def model_metadata(name: str = model_name) -> Response:
        model(name)
        return json_response(_model_metadata(card, limits))

    @app.get("/v2/models/{name}/ready", response_model=V2ModelReady, responses=_ERRORS, tags=_TAG)
    async def model_ready_route(name: str = model_name) -> Response:
        model(name)
        await model_ready()
        return json_response({"name": card.name, "ready": True})

    @app.post(
        "/v2/models/{name}/infer",
        response_model=V2InferResponse,
        responses={**_INFER_OK, **_INFER_ERRORS},
        openapi_extra=_INFER_OPENAPI,
        tags=_TAG,
        summary=f"Scores ({SCORES}, FP32 [N, labels]) and labels above threshold ({LABELS}, BYTES [N]) of N texts",
    )
    async def infer(request: Request, name: str = model_name) -> Response:
        model(name)
        header_length = request.headers.get(HEADER_LENGTH)
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if not (content_type == "application/json" or content_type.endswith("+json") or header_length is not None):
            raise UnsupportedMediaType(f"send JSON (or {HEADER_LENGTH} and binary data), not {content_type!r}")
        infer_call = parse_request(await read_body(request, limits), header_length)
        fields = [f"{INPUT}[{i}]" for i in range(len(infer_call.texts))]
        try:
            call = PredictCall(infer_call.texts, infer_call.options, fields, infer_call.entries)
            results = await serve_call(request, call, service, guard, limits, infer_call.authorship)
        except EmptyText as exc:  # the protocol's 400 for any invalid input (TextTooLong stays 413, as in v1)
            raise InvalidTensor(exc.message) from None
        body, headers, media_type = encode_response(infer_call, results, card.labels, card.name, card.version)
        return Response(body, 200, headers, media_type=media_type)

    return [DirectRoute("/v2/models/{name}/infer", infer)]
