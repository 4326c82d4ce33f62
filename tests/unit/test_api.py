"""The HTTP contract, in-process over httpx.ASGITransport: routes, request ids, caching, bad input."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from samo_serve.core.model_card import ModelCard
from samo_serve.errors import ModelUnavailable
from samo_serve.http.app import create_app
from samo_serve.http.edge import request_id_from
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

HEX32 = re.compile(r"^[0-9a-f]{32}$")
RESPONSE_KEYS = {"emotions", "primary", "model_version", "cache", "truncated", "latency_ms"}


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def service(make_service: Callable[..., EmotionService], fake_runner, settings: Settings) -> EmotionService:
    return make_service(fake_runner, settings)


@pytest.fixture
async def client(settings: Settings, service: EmotionService) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(settings, service)) as c:
        yield c


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) in ({"error"}, {"error", "status", "auth"})
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code
    return error


# ------------------------------------------------------------------------------------------- routes


async def test_predict(client: httpx.AsyncClient, card: ModelCard) -> None:
    r = await client.post("/predict", json={"text": "I am so happy for you!"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == RESPONSE_KEYS
    assert body["model_version"] == card.version
    assert body["cache"] == "miss"
    assert body["truncated"] is False
    assert len(body["emotions"]) >= 1
    scores = [e["score"] for e in body["emotions"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert body["primary"]["label"] in card.labels


async def test_predict_options(client: httpx.AsyncClient, card: ModelCard) -> None:
    r = await client.post("/predict", json={"text": "hello", "threshold": 0, "top_k": 3, "all_scores": True})
    assert r.status_code == 200
    body = r.json()
    assert len(body["emotions"]) == 3
    assert list(body["scores"]) == card.labels
    assert body["emotions"][0] == body["primary"]


async def test_predict_threshold_one_may_return_no_emotions(client: httpx.AsyncClient) -> None:
    r = await client.post("/predict", json={"text": "hello", "threshold": 1.0})
    assert r.status_code == 200
    assert r.json()["emotions"] == []  # fake scores are < 1


async def test_second_identical_request_hits_l1(client: httpx.AsyncClient, fake_runner) -> None:
    first = await client.post("/predict", json={"text": "same words"})
    second = await client.post("/predict", json={"text": "same words"})
    third = await client.post("/predict", json={"text": "  same \n words "})
    assert [r.json()["cache"] for r in (first, second, third)] == ["miss", "l1", "l1"]
    assert first.json()["emotions"] == second.json()["emotions"]
    assert fake_runner.calls == [1]


async def test_long_text_is_read_to_its_end(client: httpx.AsyncClient) -> None:
    r = await client.post("/predict", json={"text": "word " * 1000})
    assert r.status_code == 200
    assert r.json()["truncated"] is False
    assert r.json()["segment_count"] > 1


async def test_truncated_flag_names_the_window_when_documents_are_off(
    make_service: Callable[..., EmotionService], fake_runner
) -> None:
    settings = Settings(documents={"enabled": False})
    async with _client(create_app(settings, make_service(fake_runner, settings))) as c:
        r = await c.post("/predict", json={"text": "word " * 1000})
    assert r.status_code == 200
    assert (r.json()["truncated"], r.json()["truncated_by"]) == (True, "model_window")
    assert "segment_count" not in r.json()


@pytest.mark.parametrize(
    "text",
    ["😀🎉🔥", "مرحبا بالعالم", "e\u0301cole", "\u202ertl override", "日本語", "line\nbreaks\tand tabs", ":(("],
    ids=["emoji", "arabic", "combining", "rtl-override", "cjk", "whitespace", "emoticon"],
)
async def test_predict_unusual_text(client: httpx.AsyncClient, text: str) -> None:
    r = await client.post("/predict", json={"text": text})
    assert r.status_code == 200
    assert len(r.json()["emotions"]) >= 1


async def test_predict_accepts_json_variants_of_content_type(client: httpx.AsyncClient) -> None:
    body = json.dumps({"text": "hi"}).encode()
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        None,
    ):
        headers = {} if content_type is None else {"content-type": content_type}
        r = await client.post("/predict", content=body, headers=headers)
        assert r.status_code == 200, (content_type, r.text)


async def test_predict_batch(client: httpx.AsyncClient) -> None:
    texts = ["I love it", "I hate it", "😀", "word " * 1000, "I love it"]
    r = await client.post("/predict/batch", json={"texts": texts, "all_scores": True})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == len(texts) == len(body["results"])
    document = RESPONSE_KEYS | {"scores", "segment_count", "ekman", "sentiment"}
    assert [set(item) for item in body["results"]] == [RESPONSE_KEYS | {"scores"}] * 3 + [document] + [
        RESPONSE_KEYS | {"scores"}
    ]
    assert body["results"][3]["truncated"] is False
    assert body["results"][0]["scores"] == body["results"][4]["scores"]


async def test_batch_equals_per_text(
    make_service: Callable[..., EmotionService], fake_runner_cls, settings: Settings
) -> None:
    texts = ["I love it", "so sad", "שלום", "what?!", "word " * 1000]
    options = {"threshold": 0.3, "top_k": 5, "all_scores": True}
    async with _client(create_app(settings, make_service(fake_runner_cls(), settings))) as batch_client:
        batch = (await batch_client.post("/predict/batch", json={"texts": texts, **options})).json()["results"]
    async with _client(create_app(settings, make_service(fake_runner_cls(), settings))) as single_client:
        for text, from_batch in zip(texts, batch, strict=True):
            single = (await single_client.post("/predict", json={"text": text, **options})).json()
            for key in ("emotions", "primary", "scores", "truncated", "model_version", "cache"):
                assert single[key] == from_batch[key], key


async def test_emotions(client: httpx.AsyncClient, card: ModelCard) -> None:
    r = await client.get("/emotions")
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == card.version
    assert body["count"] == len(card.labels)
    assert [e["label"] for e in body["emotions"]] == card.labels
    assert [e["id"] for e in body["emotions"]] == list(range(len(card.labels)))


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient, card: ModelCard) -> None:
    await client.post("/predict", json={"text": "warm"})
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["model"] == {"version": card.version, "provider": "FakeExecutionProvider"}
    assert body["dependencies"] == {}  # no Redis, no request log configured
    assert body["auth"] == "off"  # no keys file: the launcher's banner says so
    stats = (await client.get("/stats")).json()["replica"]
    assert stats["cache"]["l1"]["sets"] == 1
    assert stats["request_log"] is None


@pytest.mark.parametrize(
    "error",
    [ModelUnavailable("down"), RuntimeError("boom"), TimeoutError()],
    ids=["model-unavailable", "runtime-error", "timeout"],
)
async def test_readyz_503_when_health_raises(client: httpx.AsyncClient, fake_runner, error: Exception) -> None:
    fake_runner.health_error = error
    r = await client.get("/readyz")
    err = _assert_error(r, 503, "MODEL_UNAVAILABLE")
    assert r.json()["status"] == "unavailable"
    assert r.json()["auth"] == "off"
    assert type(error).__name__ in err["message"]
    # liveness is unaffected
    assert (await client.get("/healthz")).status_code == 200


async def test_docs(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")


async def test_openapi(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    schemas = spec["components"]["schemas"]
    assert {"PredictRequest", "BatchPredictRequest", "PredictResponse", "ErrorResponse"} <= set(schemas)
    assert "text" in schemas["PredictRequest"]["properties"]
    assert "texts" in schemas["BatchPredictRequest"]["properties"]
    for path, name in (("/predict", "PredictRequest"), ("/predict/batch", "BatchPredictRequest")):
        content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert content["schema"]["$ref"] == f"#/components/schemas/{name}"
    assert set(spec["paths"]) >= {"/predict", "/predict/batch", "/emotions", "/healthz", "/readyz"}
    # refs must all resolve
    for ref in re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', r.text):
        assert ref in schemas
    assert (await client.get("/openapi.json")).json() == spec


# --------------------------------------------------------------------------------------- request ids


async def test_request_id_generated(client: httpx.AsyncClient) -> None:
    a = await client.get("/healthz")
    b = await client.get("/healthz")
    assert HEX32.match(a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


@pytest.mark.parametrize(
    "request_id", ["abc-123", "trace.id:span_1", "A" * 128], ids=["simple", "punctuation", "max-length"]
)
async def test_sane_request_id_kept(client: httpx.AsyncClient, request_id: str) -> None:
    r = await client.post("/predict", json={"text": "hi"}, headers={"X-Request-ID": request_id})
    assert r.headers["x-request-id"] == request_id
    bad = await client.post("/predict", json={"text": ""}, headers={"X-Request-ID": request_id})
    assert bad.json()["error"]["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["has space", "A" * 129, "", "semi;colon", 'quote"d', "<script>", "caf\u00e9"],
    ids=["space", "too-long", "empty", "semicolon", "quote", "html", "latin1"],
)
async def test_insane_request_id_replaced(client: httpx.AsyncClient, request_id: str) -> None:
    r = await client.post("/predict", json={"text": ""}, headers=[(b"X-Request-ID", request_id.encode("latin-1"))])
    assert HEX32.match(r.headers["x-request-id"])
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


async def test_request_id_not_echoed_when_disabled(settings: Settings, service: EmotionService) -> None:
    """Behind Ray Serve's proxy (which echoes the id itself) the app only uses the id in bodies."""
    async with _client(create_app(settings, service, echo_request_id=False)) as c:
        ok = await c.post("/predict", json={"text": "hi"}, headers={"X-Request-ID": "from-proxy-1"})
        assert ok.status_code == 200
        assert "x-request-id" not in ok.headers
        bad = await c.post("/predict", json={"text": ""}, headers={"X-Request-ID": "from-proxy-2"})
        assert bad.status_code == 422
        assert "x-request-id" not in bad.headers
        assert bad.json()["error"]["request_id"] == "from-proxy-2"
        anonymous = await c.post("/predict", json={"text": 5})
        assert HEX32.match(anonymous.json()["error"]["request_id"])


def test_request_id_from_headers() -> None:
    assert request_id_from([(b"x-request-id", b"abc")]) == "abc"
    assert HEX32.match(request_id_from([(b"x-request-id", b"a b")]))
    assert HEX32.match(request_id_from([]))
    assert request_id_from([(b"x-request-id", b"abc\n")]) != "abc\n"  # a trailing newline is not sane


# ---------------------------------------------------------------------------------------- bad input

BAD_PREDICT = [
    pytest.param(b"null", None, 422, "VALIDATION_ERROR", id="body-null"),
    pytest.param(b"[]", None, 422, "VALIDATION_ERROR", id="body-list"),
    pytest.param(b'"text"', None, 422, "VALIDATION_ERROR", id="body-string"),
    pytest.param(b"{}", None, 422, "VALIDATION_ERROR", id="missing-text"),
    pytest.param(b'{"text": null}', None, 422, "VALIDATION_ERROR", id="text-null"),
    pytest.param(b'{"text": 123}', None, 422, "VALIDATION_ERROR", id="text-int"),
    pytest.param(b'{"text": ["a"]}', None, 422, "VALIDATION_ERROR", id="text-list"),
    pytest.param(b'{"text": {"a": 1}}', None, 422, "VALIDATION_ERROR", id="text-object"),
    pytest.param(b'{"text": ""}', None, 422, "EMPTY_TEXT", id="text-empty"),
    pytest.param(b'{"text": "  \\t\\n "}', None, 422, "EMPTY_TEXT", id="text-whitespace"),
    pytest.param(b'{"text": "\\u00a0\\u3000"}', None, 422, "EMPTY_TEXT", id="text-unicode-whitespace"),
    pytest.param(json.dumps({"text": "a" * 100_000}).encode(), None, 413, "TEXT_TOO_LONG", id="text-100k"),
    pytest.param(json.dumps({"text": "a" * 50_001}).encode(), None, 413, "TEXT_TOO_LONG", id="text-limit+1"),
    pytest.param(json.dumps({"text": "a" * 1_100_000}).encode(), None, 413, "BODY_TOO_LARGE", id="body-over-1mib"),
    pytest.param(b'{"text": ', None, 400, "INVALID_JSON", id="truncated-json"),
    pytest.param(b"", None, 400, "INVALID_JSON", id="empty-body"),
    pytest.param(b"{'text': 'hi'}", None, 400, "INVALID_JSON", id="single-quotes"),
    pytest.param(b'{"text": "hi"} trailing', None, 400, "INVALID_JSON", id="trailing-garbage"),
    pytest.param(b'{"text": "\xff\xfe bad"}', None, 400, "INVALID_JSON", id="non-utf8"),
    pytest.param(b'{"text": "\\ud800 lone"}', None, 400, "INVALID_JSON", id="lone-surrogate-escape"),
    pytest.param(b'{"text": "hi"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", id="text-plain"),
    pytest.param(b"text=hi", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE", id="form"),
    pytest.param(b"--b--", "multipart/form-data; boundary=b", 415, "UNSUPPORTED_MEDIA_TYPE", id="multipart"),
    pytest.param(b'{"text": "hi", "foo": 1}', None, 422, "VALIDATION_ERROR", id="unknown-field"),
    pytest.param(b'{"text": "hi", "threshold": 1.5}', None, 422, "VALIDATION_ERROR", id="threshold-1.5"),
    pytest.param(b'{"text": "hi", "threshold": -0.5}', None, 422, "VALIDATION_ERROR", id="threshold-negative"),
    pytest.param(b'{"text": "hi", "threshold": "0.5"}', None, 422, "VALIDATION_ERROR", id="threshold-string"),
    pytest.param(b'{"text": "hi", "threshold": NaN}', None, 422, "VALIDATION_ERROR", id="threshold-nan"),
    pytest.param(b'{"text": "hi", "threshold": Infinity}', None, 422, "VALIDATION_ERROR", id="threshold-inf"),
    pytest.param(b'{"text": "hi", "top_k": 0}', None, 422, "VALIDATION_ERROR", id="top_k-0"),
    pytest.param(b'{"text": "hi", "top_k": 2.5}', None, 422, "VALIDATION_ERROR", id="top_k-float"),
    pytest.param(b'{"text": "hi", "all_scores": "yes"}', None, 422, "VALIDATION_ERROR", id="all_scores-string"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_PREDICT)
async def test_bad_predict_input(
    client: httpx.AsyncClient, fake_runner, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    r = await client.post("/predict", content=body, headers={"content-type": content_type or "application/json"})
    _assert_error(r, status, code)
    assert fake_runner.calls == []


BAD_BATCH = [
    pytest.param({"texts": []}, 422, "VALIDATION_ERROR", None, id="empty-list"),
    pytest.param({"texts": "abc"}, 422, "VALIDATION_ERROR", None, id="string-not-list"),
    pytest.param({"texts": None}, 422, "VALIDATION_ERROR", None, id="null"),
    pytest.param({"texts": ["a", 1]}, 422, "VALIDATION_ERROR", None, id="mixed-types"),
    pytest.param({"text": "a"}, 422, "VALIDATION_ERROR", None, id="single-text-field"),
    pytest.param({"texts": ["ok"] * 65}, 413, "BATCH_TOO_LARGE", None, id="65-texts"),
    pytest.param({"texts": ["ok"] * 1000}, 413, "BATCH_TOO_LARGE", None, id="1000-texts"),
    pytest.param({"texts": ["ok", ""]}, 422, "EMPTY_TEXT", "texts[1]", id="one-empty"),
    pytest.param({"texts": [" ", "ok"]}, 422, "EMPTY_TEXT", "texts[0]", id="one-blank"),
    pytest.param({"texts": ["ok", "ok", "a" * 50_001]}, 413, "TEXT_TOO_LONG", "texts[2]", id="one-too-long"),
    pytest.param({"texts": ["ok"], "threshold": 2}, 422, "VALIDATION_ERROR", None, id="threshold-2"),
    pytest.param({"texts": ["ok"], "top_k": 0}, 422, "VALIDATION_ERROR", None, id="top_k-0"),
    pytest.param({"texts": ["ok"], "extra": True}, 422, "VALIDATION_ERROR", None, id="unknown-field"),
]


@pytest.mark.parametrize(("payload", "status", "code", "names"), BAD_BATCH)
async def test_bad_batch_input(
    client: httpx.AsyncClient, fake_runner, payload: Any, status: int, code: str, names: str | None
) -> None:
    error = _assert_error(await client.post("/predict/batch", json=payload), status, code)
    if names is not None:
        assert names in error["message"]
    assert fake_runner.calls == []


async def test_validation_details_never_echo_input(client: httpx.AsyncClient) -> None:
    secret = "my private words " * 10
    r = await client.post("/predict", json={"text": "hi", "threshold": secret})
    error = _assert_error(r, 422, "VALIDATION_ERROR")
    assert "private" not in r.text
    assert error["details"]
    for detail in error["details"]:
        assert set(detail) == {"loc", "msg", "type"}
    assert any("threshold" in d["loc"] for d in error["details"])


async def test_declared_content_length_over_limit(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/predict",
        content=b'{"text": "hi"}',
        headers={"content-type": "application/json", "content-length": "2000000"},
    )
    _assert_error(r, 413, "BODY_TOO_LARGE")


async def test_small_body_limit(make_service: Callable[..., EmotionService], fake_runner) -> None:
    settings = Settings(limits={"max_body_bytes": 1024})
    async with _client(create_app(settings, make_service(fake_runner, settings))) as c:
        _assert_error(await c.post("/predict", json={"text": "a" * 2000}), 413, "BODY_TOO_LARGE")
        assert (await c.post("/predict", json={"text": "a" * 500})).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/predict", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/predict/batch", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/emotions", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/healthz", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("POST", "/predict/", 404, None),  # trailing slash: a redirect or a 404, never a 5xx
        ("GET", "/predict/batch/extra", 404, "NOT_FOUND"),
    ],
    ids=[
        "get-predict",
        "put-batch",
        "post-emotions",
        "delete-healthz",
        "unknown",
        "trailing-slash",
        "deeper",
    ],
)
async def test_wrong_method_or_route(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str | None
) -> None:
    r = await client.request(method, path, json={"text": "hi"})
    if code is None and r.status_code in (307, 308):
        return
    _assert_error(r, status, code)


class BrokenPipeline:
    """A model path that fails with an unexpected exception carrying private detail."""

    async def classify(self, texts: list[str]) -> list[Any]:
        raise RuntimeError("connection string postgres://admin:hunter2@db")

    async def model_info(self) -> dict[str, object]:
        return {"provider": "broken"}


async def test_an_unexpected_error_is_a_generic_500(
    settings: Settings, card: ModelCard, caplog: pytest.LogCaptureFixture
) -> None:
    async with _client(create_app(settings, EmotionService(card, BrokenPipeline(), settings))) as c:
        r = await c.post("/predict", json={"text": "hi"}, headers={"X-Request-ID": "trace-500"})
    error = _assert_error(r, 500, "INTERNAL")
    assert error["message"] == "internal error"
    assert "hunter2" not in r.text  # the detail goes to the log only
    assert r.headers["x-content-type-options"] == "nosniff"  # answered inside the stack: guard headers too
    (record,) = [rec for rec in caplog.records if "trace-500" in rec.getMessage()]
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])


# ------------------------------------------------------------------------------ over the real model


@pytest.fixture
async def real_client(
    make_service: Callable[..., EmotionService], ort_runner, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(settings, make_service(ort_runner, settings))) as c:
        yield c


async def test_real_model_routes(real_client: httpx.AsyncClient, card: ModelCard) -> None:
    r = await real_client.post("/predict", json={"text": "Thank you so much, this is wonderful!", "all_scores": True})
    assert r.status_code == 200
    body = r.json()
    assert list(body["scores"]) == card.labels
    assert all(0 <= s <= 1 for s in body["scores"].values())
    assert body["primary"]["score"] == max(body["scores"].values())
    assert len(body["emotions"]) >= 1

    r = await real_client.post("/predict/batch", json={"texts": ["I am furious", "😀", "word " * 1000]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 3
    assert [x["truncated"] for x in results] == [False, False, False]
    assert results[2]["segment_count"] > 1

    ready = await real_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["provider"] == "CPUExecutionProvider"


@pytest.mark.parametrize("payload", [{"text": ""}, {"text": 1}, {"texts": []}], ids=["empty", "int", "empty-batch"])
async def test_real_model_bad_input_is_4xx(real_client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    path = "/predict/batch" if "texts" in payload else "/predict"
    r = await real_client.post(path, json=payload)
    assert 400 <= r.status_code < 500
    _assert_error(r, r.status_code)


async def test_405_keeps_the_allow_header(client: httpx.AsyncClient) -> None:
    r = await client.get("/predict")
    assert r.status_code == 405
    assert r.headers.get("allow") == "POST"


# ------------------------------------------------------------------------------------- times out of range

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC: OverflowError, once a 500
    "9999-12-31T23:59:59-01:00",  # after datetime.max in UTC
    "0001-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
]


@pytest.mark.parametrize("moment", OUT_OF_RANGE_TIMES)
async def test_times_out_of_range_are_422_naming_the_field(
    client: httpx.AsyncClient, fake_runner: Any, moment: str
) -> None:
    for path, body in (("/predict", {"text": "hi"}), ("/predict/batch", {"texts": ["hi"]})):
        error = _assert_error(await client.post(path, json={**body, "occurred_at": moment}), 422, "VALIDATION_ERROR")
        assert any("occurred_at" in detail["loc"] for detail in error["details"]), error
    assert fake_runner.calls == []
    for field, query in (("start", {"start": moment, "end": "2026-01-01T00:00:00Z"}), ("end", {"end": moment})):
        for path in ("/analytics/summary", "/analytics/emotions", "/analytics/users/u1/timeline"):
            error = _assert_error(await client.get(path, params=query), 422, "VALIDATION_ERROR")
            assert f"`{field}`" in error["message"], (path, error)
