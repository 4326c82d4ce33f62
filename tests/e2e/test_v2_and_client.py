"""Through a real `samo-serve run`: Triton's V2 HTTP client (tritonclient, unmodified) and samo_serve.client.

Scores: a V2 answer and the ``/predict`` answer that follows it for the same text are one cached
result when ``/predict`` says it hit the cache (equal within rounding); when it missed (another ingress
replica), the model ran again in another micro-batch, and int8 batch-neighbour noise is up to ~1e-2.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from samo_serve.client import AsyncClient, Client, EmptyText

from .conftest import Server

triton = pytest.importorskip("tritonclient.http", reason="the dev extra installs tritonclient[http]")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

MODEL = "goemotions-minilm"
TEXTS = [
    "Thank you so much, I love it!",
    "This is disgusting and I'm furious that nobody cares.",
    "Wow, I did not expect that. What happened?",
    "ça va très bien 😀",
]
HIT_TOLERANCE = 1e-4  # one cached float32, rounded to 6 decimals by /predict
MISS_TOLERANCE = 2e-2  # int8 activations quantized per batch: another batch, slightly other scores


@pytest.fixture(scope="module")
def v2(server: Server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=120)
    yield client
    client.close()


def _texts(texts: list[str], binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    return tensor


def _strings(tensor: np.ndarray) -> list[str]:
    # tritonclient gives BYTES as bytes from binary data, as str from JSON
    return [v.decode() if isinstance(v, bytes) else str(v) for v in tensor]


def _assert_same_scores(scores: np.ndarray, texts: list[str], client: httpx.Client) -> int:
    """``scores`` (V2) against ``/predict`` with ``all_scores`` for each text; returns how many were cache hits."""
    labels = client.get("/emotions").json()["emotions"]
    hits = 0
    for row, text in zip(scores, texts, strict=True):
        native = client.post("/predict", json={"text": text, "all_scores": True}).json()
        expected = np.array([native["scores"][e["label"]] for e in labels], dtype=np.float32)
        hit = native["cache"] != "miss"
        hits += hit
        np.testing.assert_allclose(row, expected, atol=HIT_TOLERANCE if hit else MISS_TOLERANCE)
    return hits


def test_tritonclient_health_and_metadata(v2: triton.InferenceServerClient, client: httpx.Client) -> None:
    assert v2.is_server_live()
    assert v2.is_server_ready()
    assert v2.is_model_ready(MODEL)
    assert not v2.is_model_ready("no-such-model")
    assert "binary_tensor_data" in v2.get_server_metadata()["extensions"]
    meta = v2.get_model_metadata(MODEL)
    labels = [e["label"] for e in client.get("/emotions").json()["emotions"]]
    assert meta["parameters"]["labels"] == labels
    assert [o["name"] for o in meta["outputs"]] == ["scores", "labels"]
    assert meta["outputs"][0]["shape"] == [-1, len(labels)]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_gives_predict_scores(
    v2: triton.InferenceServerClient, client: httpx.Client, binary: bool
) -> None:
    texts = [f"{t} ({'binary' if binary else 'json'})" for t in TEXTS]  # fresh texts: the V2 call fills the cache
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("scores", "labels")]
    result = v2.infer(MODEL, [_texts(texts, binary)], outputs=outputs, request_id="v2-e2e")
    scores = result.as_numpy("scores")
    assert scores.dtype == np.float32
    assert scores.shape == (len(texts), 28)
    assert result.get_response()["id"] == "v2-e2e"
    hits = _assert_same_scores(scores, texts, client)
    print(f"V2 vs /predict: {hits}/{len(texts)} cache hits (exact), the rest within {MISS_TOLERANCE}")

    labels = _strings(result.as_numpy("labels"))
    predicted = [client.post("/predict", json={"text": t}).json() for t in texts]
    for got, native in zip(labels, predicted, strict=True):
        if native["cache"] != "miss":
            assert got == ",".join(e["label"] for e in native["emotions"])


def test_tritonclient_parameters_and_errors(v2: triton.InferenceServerClient, client: httpx.Client) -> None:
    result = v2.infer(MODEL, [_texts(TEXTS, True)], parameters={"threshold": 0.0, "top_k": 2})
    labels = [v.split(",") for v in _strings(result.as_numpy("labels"))]
    assert all(len(x) == 2 for x in labels)  # threshold 0: every label passes, top_k keeps two

    with pytest.raises(InferenceServerException) as caught:
        v2.infer("no-such-model", [_texts(["hi"], True)])
    assert caught.value.status() == "404"
    assert MODEL in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        v2.infer(MODEL, [_texts(["fine", "   "], False)])
    assert caught.value.status() == "400"
    wrong = triton.InferInput("text", [1], "FP32")
    wrong.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="BYTES"):
        v2.infer(MODEL, [wrong])


def test_v2_json_exchange(client: httpx.Client) -> None:
    request = {
        "id": "42",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS[:2]}],
        "parameters": {"top_k": 3},
    }
    r = client.post(f"/v2/models/{MODEL}/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    print(f"V2 exchange:\n{json.dumps(request)}\n{r.text}")  # shown with -s: the real answer for docs/API.md
    assert (body["model_name"], body["id"]) == (MODEL, "42")
    assert [o["shape"] for o in body["outputs"]] == [[2, 28], [2]]
    missing = client.post("/v2/models/nope/infer", json=request)
    assert missing.status_code == 404
    assert set(missing.json()) == {"error"}


# ------------------------------------------------------------------------------------ samo_serve.client


def test_python_client(server: Server) -> None:
    texts = [f"message {i}: {TEXTS[i % len(TEXTS)]}" for i in range(70)]  # two chunks of the default 64
    with Client(server.url, timeout=120) as samo:
        assert samo.ready().ready
        one = samo.predict("Thank you so much, I love it!", all_scores=True)
        assert one.primary.label in (one.scores or {})
        batch = samo.predict_batch(texts, top_k=2)
        assert samo.max_batch_texts() == 64
        assert len(batch) == len(texts)
        for text, earlier in zip(texts[::10], batch[::10], strict=True):
            later = samo.predict(text, top_k=2)
            if later.cache != "miss":  # answered from the batch's cache entry: the very same answer
                assert later.labels == earlier.labels
        assert len(samo.emotions()) == 28
        with pytest.raises(EmptyText) as caught:
            samo.predict("  ")
        assert caught.value.request_id
        deadline = time.monotonic() + 30  # the request log is written in batches, off the request path
        while (summary := samo.analytics_summary()).texts < len(texts) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert summary.texts >= len(texts)
        assert sum(row.count for row in samo.analytics_emotions()) >= summary.texts


def test_async_python_client(server: Server) -> None:
    async def run() -> None:
        async with AsyncClient(server.url, timeout=120) as samo:
            results = await asyncio.gather(*(samo.predict(t) for t in TEXTS))
            assert len(results) == len(TEXTS)
            batch = await samo.predict_batch(TEXTS)
            for single, batched in zip(results, batch, strict=True):
                if batched.cache != "miss":
                    assert single.labels == batched.labels
            assert (await samo.ready()).ready
            with pytest.raises(EmptyText):
                await samo.predict_batch(["fine", ""])

    asyncio.run(run())


def test_python_client_reads_a_document_by_its_sentences(server: Server) -> None:
    sentences = [
        "I woke up late and missed the bus again, so I had to walk the whole way to work in the cold rain today.",
        "At the meeting my manager blamed me for his own mistake in front of the entire team, and I was furious.",
        "Then my sister came over tonight with a warm dinner and a card, and I am so grateful to have her in my life.",
    ]
    entry = " ".join(sentences)  # ~320 characters: past the model's 64-token window, so read as a document
    with Client(server.url, timeout=120) as samo:
        document = samo.predict(entry, segments=True)
        (batched,) = samo.predict_batch([entry], segments=True)
        plain = samo.predict(entry)
    for got in (document, batched):
        assert got.segment_count is not None
        assert got.segment_count >= 2
        assert got.segments is not None
        assert [s.text_of(entry) for s in got.segments] == sentences
        assert got.ekman
        assert got.sentiment
    assert plain.segment_count == document.segment_count
    assert plain.segments is None
