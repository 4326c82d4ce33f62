"""Triton's own V2 codec (tritonclient, unmodified) against the app in-process: its binary requests in,
its result parser out. tests/e2e/test_v2_and_client.py runs its HTTP client against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

triton = pytest.importorskip("tritonclient.http", reason="the dev extra installs tritonclient[http]")

TEXTS = ["Thank you so much, I love it!", "I am furious", "ok", "é ✓ 😀"]


async def _infer(
    client: httpx.AsyncClient, card: ModelCard, inputs: list[Any], outputs: list[Any] | None = None, **params: Any
) -> Any:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs, parameters=params or None)
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    r = await client.post(f"/v2/models/{card.name}/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    header_length = r.headers.get("inference-header-content-length")
    return triton.InferResult.from_response_body(r.content, header_length=int(header_length or 0) or None)


def _text_input(texts: list[str], shape: list[int], binary: bool) -> Any:
    tensor = triton.InferInput("text", shape, "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object).reshape(shape), binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
async def test_tritonclient_codec_gets_predict_scores(
    make_service: Callable[..., EmotionService], fake_runner: Any, card: ModelCard, binary: bool
) -> None:
    settings = Settings()
    app = create_app(settings, make_service(fake_runner, settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("scores", "labels")]
        result = await _infer(client, card, [_text_input(TEXTS, [4, 1], binary)], outputs, threshold=0.3, top_k=3)
        defaults = await _infer(client, card, [_text_input(TEXTS, [4], binary)])  # all outputs, binary
        native = await client.post(
            "/predict/batch", json={"texts": TEXTS, "all_scores": True, "threshold": 0.3, "top_k": 3}
        )

    scores = result.as_numpy("scores")
    assert scores.dtype == np.float32
    assert scores.shape == (4, len(card.labels))
    expected = np.array([[x["scores"][label] for label in card.labels] for x in native.json()["results"]])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    np.testing.assert_allclose(defaults.as_numpy("scores"), expected, atol=1e-6)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("labels")]
    assert labels == [",".join(e["label"] for e in x["emotions"]) for x in native.json()["results"]]
    assert result.get_response()["model_name"] == card.name
