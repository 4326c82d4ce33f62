"""The HTTP contract through real Ray Serve: every route, bad input, unicode, batch == single."""

from __future__ import annotations

import json

import httpx
import pytest

EMOTIONAL = [
    "Thank you so much, I love this and I'm so happy for you!",
    "This is disgusting and I'm furious that nobody cares.",
    "Wow, I did not expect that. What happened?",
    "I'm so sorry for your loss, that is heartbreaking.",
    "lol that is hilarious",
]


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-request-id")
    body = resp.json()["error"]
    assert body["request_id"] == resp.headers["x-request-id"]
    assert body["message"]
    if code is not None:
        assert body["code"] == code
    return body


def test_predict_returns_contract_fields(client: httpx.Client) -> None:
    resp = client.post("/predict", json={"text": "I am so grateful for your help, thank you!"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) >= {"emotions", "primary", "model_version", "cache", "truncated", "latency_ms"}
    labels = client.get("/emotions").json()
    names = {e["label"] for e in labels["emotions"]}
    assert body["primary"]["label"] in names
    assert body["emotions"]
    assert body["emotions"][0] == body["primary"]
    scores = [e["score"] for e in body["emotions"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model_version"] == labels["model_version"]
    assert body["truncated"] is False
    assert resp.headers["x-request-id"]


def test_repeat_is_served_from_l1(client: httpx.Client) -> None:
    text = "A text that is sent twice to check the cache router."
    first = client.post("/predict", json={"text": text}).json()
    second = client.post("/predict", json={"text": text}).json()
    assert second["cache"] == "l1"
    assert second["emotions"] == first["emotions"]


def test_multi_label_outputs(client: httpx.Client) -> None:
    low = client.post("/predict", json={"text": EMOTIONAL[0], "threshold": 0.05, "all_scores": True}).json()
    assert len(low["emotions"]) >= 2
    assert len(low["scores"]) == 28
    assert all(e["score"] >= 0.05 for e in low["emotions"])
    tuned = [client.post("/predict", json={"text": t}).json() for t in EMOTIONAL]
    assert any(len(r["emotions"]) >= 2 for r in tuned), tuned


def test_top_k_limits_emotions(client: httpx.Client) -> None:
    body = client.post("/predict", json={"text": EMOTIONAL[0], "threshold": 0.0, "top_k": 3}).json()
    assert len(body["emotions"]) == 3


def test_batch_equals_single(client: httpx.Client) -> None:
    texts = ["batch equality check: " + t for t in EMOTIONAL]
    batch = client.post("/predict/batch", json={"texts": texts, "all_scores": True})
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["count"] == len(texts)
    for text, result in zip(texts, body["results"], strict=False):
        single = client.post("/predict", json={"text": text, "all_scores": True}).json()
        assert single["primary"]["label"] == result["primary"]["label"]
        for label, score in single["scores"].items():
            assert result["scores"][label] == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize(
    "text",
    [
        "I love it 😍🔥🎉",
        "אני מאוד שמח היום",
        "مرحبا، أنا سعيد جدا",
        "Cafe\u0301 cre\u0300me, n\u0303o",
        "日本語のテキスト",
    ],
    ids=["emoji", "hebrew-rtl", "arabic-rtl", "combining-marks", "cjk"],
)
def test_unicode_is_classified(client: httpx.Client, text: str) -> None:
    resp = client.post("/predict", json={"text": text})
    assert resp.status_code == 200, resp.text
    assert resp.json()["emotions"]


def test_long_text_is_read_to_its_end_not_refused(client: httpx.Client) -> None:
    body = client.post("/predict", json={"text": "so happy today " * 200}).json()
    assert body["truncated"] is False
    assert body["segment_count"] > 1


def test_emotions_lists_groups(client: httpx.Client) -> None:
    body = client.get("/emotions").json()
    assert body["count"] == 28 == len(body["emotions"])
    by_label = {e["label"]: e for e in body["emotions"]}
    assert by_label["joy"]["ekman"] == "joy"
    assert by_label["anger"]["sentiment"] == "negative"
    assert by_label["neutral"]["ekman"] == "neutral"


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["provider"] == "CPUExecutionProvider"


def test_docs_and_openapi(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/predict" in spec["paths"]
    assert "/predict/batch" in spec["paths"]
    assert "PredictRequest" in spec["components"]["schemas"]


BAD_JSON_BODIES = [
    ("null", 422, "VALIDATION_ERROR"),
    ('{"text": null}', 422, "VALIDATION_ERROR"),
    ('{"text": 123}', 422, "VALIDATION_ERROR"),
    ('{"text": ""}', 422, "EMPTY_TEXT"),
    ('{"text": "   \\n\\t "}', 422, "EMPTY_TEXT"),
    ('{"text": "hi", "unknown": 1}', 422, "VALIDATION_ERROR"),
    ('{"text": "hi", "threshold": 1.5}', 422, "VALIDATION_ERROR"),
    ('{"text": "hi", "top_k": 0}', 422, "VALIDATION_ERROR"),
    ('{"text": "hi"', 400, "INVALID_JSON"),
    ("[]", 422, "VALIDATION_ERROR"),
    ("", 400, "INVALID_JSON"),
]


@pytest.mark.parametrize(
    ("raw", "status", "code"), BAD_JSON_BODIES, ids=[b[0][:24] or "empty" for b in BAD_JSON_BODIES]
)
def test_bad_predict_bodies(client: httpx.Client, raw: str, status: int, code: str) -> None:
    resp = client.post("/predict", content=raw.encode(), headers={"content-type": "application/json"})
    assert_error(resp, status, code)


def test_text_over_hard_cap_is_413(client: httpx.Client) -> None:
    assert_error(client.post("/predict", json={"text": "a" * 100_000}), 413, "TEXT_TOO_LONG")


def test_non_utf8_body_is_400(client: httpx.Client) -> None:
    resp = client.post("/predict", content=b'{"text": "\xff\xfe bad"}', headers={"content-type": "application/json"})
    assert_error(resp, 400, "INVALID_JSON")


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    resp = client.post("/predict", content=json.dumps({"text": "hi"}), headers={"content-type": "text/plain"})
    assert_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_batch_limits(client: httpx.Client) -> None:
    assert_error(client.post("/predict/batch", json={"texts": ["hi"] * 65}), 413, "BATCH_TOO_LARGE")
    assert_error(client.post("/predict/batch", json={"texts": []}), 422, "VALIDATION_ERROR")
    body = assert_error(client.post("/predict/batch", json={"texts": ["ok", " "]}), 422, "EMPTY_TEXT")
    assert "texts[1]" in body["message"]


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/predict"), 405, "METHOD_NOT_ALLOWED")


def test_request_id_is_echoed(client: httpx.Client) -> None:
    resp = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
