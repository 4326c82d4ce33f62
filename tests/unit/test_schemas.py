"""Request models: strict types, ranges, unknown fields; response models accept what the service renders."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from samo_serve.http.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    PredictOptions,
    PredictRequest,
    PredictResponse,
)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ('{"text": "hi"}', lambda r: r.text == "hi" and r.threshold is None and r.top_k is None),
        ('{"text": "hi", "threshold": 0.3}', lambda r: r.threshold == 0.3),
        ('{"text": "hi", "threshold": 0}', lambda r: r.threshold == 0),
        ('{"text": "hi", "threshold": 1}', lambda r: r.threshold == 1),
        ('{"text": "hi", "top_k": 3, "all_scores": true}', lambda r: r.top_k == 3 and r.all_scores is True),
        ('{"text": "hi", "threshold": null, "top_k": null}', lambda r: r.threshold is None),
        ('{"text": ""}', lambda r: r.text == ""),  # emptiness is the service's check, not the schema's
    ],
    ids=[
        "minimal",
        "threshold",
        "threshold-int-0",
        "threshold-int-1",
        "options",
        "explicit-nulls",
        "empty-text",
    ],
)
def test_valid_predict_requests(body: str, check: Any) -> None:
    assert check(PredictRequest.model_validate_json(body))


@pytest.mark.parametrize(
    "body",
    [
        "null",
        "[]",
        "{}",
        '{"text": null}',
        '{"text": 123}',
        '{"text": ["a"]}',
        '{"text": true}',
        '{"text": "hi", "threshold": 1.5}',
        '{"text": "hi", "threshold": -0.1}',
        '{"text": "hi", "threshold": "0.5"}',
        '{"text": "hi", "threshold": true}',
        '{"text": "hi", "top_k": 0}',
        '{"text": "hi", "top_k": 1.5}',
        '{"text": "hi", "top_k": "2"}',
        '{"text": "hi", "top_k": 1001}',
        '{"text": "hi", "all_scores": "yes"}',
        '{"text": "hi", "all_scores": 1}',
        '{"text": "hi", "extra": 1}',
        '{"texts": ["hi"]}',
    ],
    ids=[
        "null",
        "list",
        "missing-text",
        "text-null",
        "text-int",
        "text-list",
        "text-bool",
        "threshold-1.5",
        "threshold-negative",
        "threshold-string",
        "threshold-bool",
        "top_k-0",
        "top_k-float",
        "top_k-string",
        "top_k-huge",
        "all_scores-string",
        "all_scores-int",
        "unknown-field",
        "batch-field",
    ],
)
def test_invalid_predict_requests(body: str) -> None:
    with pytest.raises(ValidationError):
        PredictRequest.model_validate_json(body)


@pytest.mark.parametrize(
    "body",
    ['{"texts": []}', '{"texts": "abc"}', '{"texts": ["a", 1]}', '{"texts": null}', '{"text": "a"}'],
    ids=["empty-list", "string", "mixed-types", "null", "single-field"],
)
def test_invalid_batch_requests(body: str) -> None:
    with pytest.raises(ValidationError):
        BatchPredictRequest.model_validate_json(body)


def test_batch_request_is_options() -> None:
    req = BatchPredictRequest.model_validate_json('{"texts": ["a", "b"], "top_k": 1}')
    assert isinstance(req, PredictOptions)
    assert [item.text for item in req.texts] == ["a", "b"]  # plain strings are items of just their text
    assert all(item.entry_id is None and item.user_id is None for item in req.texts)
    assert req.top_k == 1


def test_options_are_frozen() -> None:
    with pytest.raises(ValidationError):
        PredictOptions().top_k = 3  # type: ignore[misc]


def test_response_models_accept_rendered_output() -> None:
    one = {
        "emotions": [{"label": "joy", "score": 0.9}],
        "primary": {"label": "joy", "score": 0.9},
        "model_version": "m-1",
        "cache": "miss",
        "truncated": False,
        "latency_ms": 1.5,
    }
    assert PredictResponse.model_validate(one).cache == "miss"
    assert BatchPredictResponse.model_validate({"results": [one, one], "count": 2}).count == 2
    with pytest.raises(ValidationError):
        PredictResponse.model_validate({**one, "cache": "l9"})


def test_error_response() -> None:
    body = {"error": {"code": "X", "message": "m", "request_id": "r"}}
    assert ErrorResponse.model_validate(body).error.details is None
