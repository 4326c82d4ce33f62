"""The Open Inference Protocol (V2) routes, in-process: metadata, infer (JSON and binary), errors, guard."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.http.api_keys import KeyStore
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

TEXTS = ["I am so happy for you!", "This is awful.", "what time is it"]


def _client(settings: Settings, service: EmotionService) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, service)), base_url="http://t")


@pytest.fixture
def settings() -> Settings:
    return Settings(limits={"max_batch_texts": 8, "max_text_chars": 200})


@pytest.fixture
def service(make_service: Callable[..., EmotionService], fake_runner: Any, settings: Settings) -> EmotionService:
    return make_service(fake_runner, settings)


@pytest.fixture
async def client(settings: Settings, service: EmotionService) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(settings, service) as c:
        yield c


def infer_body(texts: list[Any], shape: list[int] | None = None, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": shape or [len(texts)], "data": texts}]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def _v2_error(r: httpx.Response, status: int, contains: str = "") -> str:
    """The protocol's error shape: exactly ``{"error": "<message>"}``, the request id in the header."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    assert contains in body["error"]
    assert r.headers["x-request-id"]
    return str(body["error"])


def _bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _split_bytes(blob: bytes) -> list[str]:
    out, at = [], 0
    while at < len(blob):
        (n,) = struct.unpack_from("<I", blob, at)
        out.append(blob[at + 4 : at + 4 + n].decode())
        at += 4 + n
    return out


# ---------------------------------------------------------------------------------- health, metadata


async def test_server_health_and_metadata(client: httpx.AsyncClient, card: ModelCard, settings: Settings) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    server = (await client.get("/v2")).json()
    assert server["name"] == "samo-serve"
    assert server["extensions"] == ["binary_tensor_data"]
    assert server["version"]

    r = await client.get(f"/v2/models/{card.name}")
    assert r.status_code == 200
    meta = r.json()
    assert meta["name"] == card.name
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "scores", "datatype": "FP32", "shape": [-1, len(card.labels)]},
        {"name": "labels", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["parameters"]["labels"] == card.labels
    assert meta["parameters"]["model_version"] == card.version
    assert meta["parameters"]["max_batch_texts"] == settings.limits.max_batch_texts
    assert (await client.get(f"/v2/models/{card.name}/ready")).json() == {"name": card.name, "ready": True}


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/ready"), ("POST", "/infer")], ids=["meta", "ready", "infer"]
)
async def test_unknown_model_is_404(client: httpx.AsyncClient, card: ModelCard, method: str, suffix: str) -> None:
    r = await client.request(method, f"/v2/models/other-model{suffix}", json=infer_body(["hi"]))
    _v2_error(r, 404, card.name)


async def test_not_ready_is_503_with_retry_after(client: httpx.AsyncClient, fake_runner: Any, card: ModelCard) -> None:
    fake_runner.health_error = RuntimeError("gone")
    for path in ("/v2/health/ready", f"/v2/models/{card.name}/ready"):
        r = await client.get(path)
        _v2_error(r, 503, "RuntimeError")
        assert r.headers["retry-after"] == "1"
    assert (await client.get("/v2/health/live")).status_code == 200


# ------------------------------------------------------------------------------------------- infer


async def test_infer_equals_predict_batch_all_scores(client: httpx.AsyncClient, card: ModelCard) -> None:
    body = {**infer_body(TEXTS), "id": "req-7"}
    r = await client.post(f"/v2/models/{card.name}/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (card.name, card.version, "req-7")
    scores, labels = answer["outputs"]
    assert (scores["name"], scores["datatype"], scores["shape"]) == ("scores", "FP32", [3, len(card.labels)])
    assert (labels["name"], labels["datatype"], labels["shape"]) == ("labels", "BYTES", [3])

    native = (await client.post("/predict/batch", json={"texts": TEXTS, "all_scores": True})).json()["results"]
    expected = [[result["scores"][label] for label in card.labels] for result in native]
    assert scores["data"] == [s for row in expected for s in row]
    assert labels["data"] == [",".join(e["label"] for e in result["emotions"]) for result in native]


async def test_infer_shape_n_by_1_nested_or_flat(client: httpx.AsyncClient, card: ModelCard) -> None:
    flat = await client.post(f"/v2/models/{card.name}/infer", json=infer_body(TEXTS[:2], [2, 1]))
    nested = await client.post(f"/v2/models/{card.name}/infer", json=infer_body([[t] for t in TEXTS[:2]], [2, 1]))
    assert flat.status_code == nested.status_code == 200
    assert flat.json()["outputs"] == nested.json()["outputs"]


async def test_infer_threshold_top_k_and_requested_outputs(client: httpx.AsyncClient, card: ModelCard) -> None:
    body = {**infer_body(TEXTS, threshold=0.2, top_k=2), "outputs": [{"name": "labels"}]}
    r = await client.post(f"/v2/models/{card.name}/infer", json=body)
    assert r.status_code == 200, r.text
    (labels,) = r.json()["outputs"]
    native = (await client.post("/predict/batch", json={"texts": TEXTS, "threshold": 0.2, "top_k": 2})).json()
    assert labels["data"] == [",".join(e["label"] for e in x["emotions"]) for x in native["results"]]
    assert all(len(v.split(",")) <= 2 for v in labels["data"])

    r = await client.post(f"/v2/models/{card.name}/infer", json=infer_body(TEXTS, threshold=1))
    assert r.json()["outputs"][1]["data"] == ["", "", ""]  # nothing at or above 1: an empty label list


async def test_infer_binary_in_and_out(client: httpx.AsyncClient, card: ModelCard) -> None:
    header = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": 0}},
        ],
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}, {"name": "labels"}],
    }
    blob = _bytes_tensor([t.encode() for t in TEXTS])
    header["inputs"][0]["parameters"]["binary_data_size"] = len(blob)
    head = json.dumps(header).encode()
    r = await client.post(
        f"/v2/models/{card.name}/infer",
        content=head + blob,
        headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:n])
    scores, labels = answer["outputs"]
    size = scores["parameters"]["binary_data_size"]
    assert "data" not in scores
    assert size == len(r.content) - n == 3 * len(card.labels) * 4
    binary_scores = struct.unpack(f"<{3 * len(card.labels)}f", r.content[n:])

    as_json = (await client.post(f"/v2/models/{card.name}/infer", json=infer_body(TEXTS))).json()["outputs"]
    assert binary_scores == pytest.approx(as_json[0]["data"], abs=1e-6)  # float32 of the same numbers
    assert labels["data"] == as_json[1]["data"]

    r = await client.post(f"/v2/models/{card.name}/infer", json=infer_body(TEXTS, binary_data_output=True))
    n = int(r.headers["inference-header-content-length"])
    outputs = json.loads(r.content[:n])["outputs"]
    label_size = outputs[1]["parameters"]["binary_data_size"]
    assert _split_bytes(r.content[len(r.content) - label_size :]) == as_json[1]["data"]


async def test_infer_goes_through_the_cache(client: httpx.AsyncClient, card: ModelCard, fake_runner: Any) -> None:
    assert (await client.post("/predict/batch", json={"texts": TEXTS})).status_code == 200
    classified = fake_runner.texts_classified
    assert (await client.post(f"/v2/models/{card.name}/infer", json=infer_body(TEXTS))).status_code == 200
    assert fake_runner.texts_classified == classified  # all three answered by L1


# ------------------------------------------------------------------------------------------ errors

BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("fp32", {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": ["x"]}]}, 400, "BYTES"),
    ("name", {"inputs": [{"name": "input_ids", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, 400, "text"),
    ("two-inputs", {"inputs": [infer_body(["a"])["inputs"][0]] * 2}, 400, "optionally `user_id`"),
    ("no-inputs", {"inputs": []}, 400, "inputs"),
    ("shape-3d", infer_body(["a"], [1, 1, 1]), 400, "shape"),
    ("shape-n-by-2", infer_body(["a", "b"], [1, 2]), 400, "shape"),
    ("count", infer_body(["a", "b"], [3]), 400, "the data has 2"),
    ("number", infer_body([1, 2]), 400, "inputs.0.data"),
    ("no-data", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}, 400, "no data"),
    ("empty-text", infer_body(["ok", "  "]), 400, "text[1]"),
    ("threshold", infer_body(["a"], threshold=2), 400, "threshold"),
    ("top-k", infer_body(["a"], top_k="3"), 400, "top_k"),
    ("binary-flag", infer_body(["a"], binary_data_output="yes"), 400, "binary_data_output"),
    ("output", {**infer_body(["a"]), "outputs": [{"name": "logits"}]}, 400, "logits"),
    ("class", {**infer_body(["a"]), "outputs": [{"name": "labels", "parameters": {"classification": 3}}]}, 400, ""),
    ("too-long", infer_body(["x" * 201]), 413, "200"),
    ("too-many", infer_body(["x"] * 9), 413, "8"),
]


@pytest.mark.parametrize(
    ("body", "status", "contains"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
async def test_bad_requests(
    client: httpx.AsyncClient, card: ModelCard, fake_runner: Any, body: Any, status: int, contains: str
) -> None:
    _v2_error(await client.post(f"/v2/models/{card.name}/infer", json=body), status, contains)
    assert fake_runner.texts_classified == 0


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, 400),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "x1"}, 400),
        (json.dumps(infer_body(["a"])).encode() + b"\x00\x00", {"Inference-Header-Content-Length": "77"}, 400),
        (json.dumps(infer_body(["a"])).encode(), {"Content-Type": "text/plain"}, 415),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "9" * 5_000}, 400),  # past int()'s digit limit
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "0" * 4_999 + "14"}, 400),
    ],
    ids=["json", "header-too-long", "header-not-a-number", "stray-binary", "media-type", "5000-digits", "zeros"],
)
async def test_bad_bodies(
    client: httpx.AsyncClient, card: ModelCard, content: bytes, headers: dict[str, str], status: int
) -> None:
    headers = {"Content-Type": "application/json", **headers}
    _v2_error(await client.post(f"/v2/models/{card.name}/infer", content=content, headers=headers), status)


@pytest.mark.parametrize(
    ("blob", "size_delta", "contains"),
    [
        (b"\x05\x00\x00\x00abc", 0, "ends inside an element"),
        (b"\x01\x00", 0, "length"),
        (_bytes_tensor([b"\xff\xfe"]), 0, "UTF-8"),
        (_bytes_tensor([b"ok"]), 1, "binary_data_size"),
    ],
    ids=["short-element", "short-length", "not-utf8", "size-mismatch"],
)
async def test_bad_binary_input(
    client: httpx.AsyncClient, card: ModelCard, blob: bytes, size_delta: int, contains: str
) -> None:
    size = len(blob) + size_delta
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}
    head = json.dumps({"inputs": [tensor]}).encode()
    r = await client.post(
        f"/v2/models/{card.name}/infer",
        content=head + blob,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    _v2_error(r, 400, contains)


async def test_405_and_body_limit_in_v2_shape(card: ModelCard, make_service: Any, fake_runner: Any) -> None:
    settings = Settings(limits={"max_body_bytes": 1024})
    async with _client(settings, make_service(fake_runner, settings)) as client:
        r = await client.get(f"/v2/models/{card.name}/infer")
        _v2_error(r, 405)
        assert r.headers["allow"] == "POST"
        _v2_error(await client.post(f"/v2/models/{card.name}/infer", json=infer_body(["x" * 2000])), 413, "1024")
        native = await client.get("/predict")  # the native API keeps its own envelope
        assert native.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# ---------------------------------------------------------------------------------- guard, metrics


async def test_keys_rate_limits_and_public_probes(
    card: ModelCard, make_service: Any, fake_runner: Any, tmp_path: Path
) -> None:
    key = KeyStore(tmp_path / "keys.json").create("v2")
    settings = Settings(
        api_keys_file=tmp_path / "keys.json",
        rate_limits={"enabled": True, "tiers": {"default": {"per_second": 0.5, "burst": 3}}},
    )
    async with _client(settings, make_service(fake_runner, settings)) as client:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert (await client.get(path)).status_code == 200, path  # probes: no key
        for path in ("/v2", f"/v2/models/{card.name}", f"/v2/models/{card.name}/ready"):
            _v2_error(await client.get(path), 401, "API key")
        infer = f"/v2/models/{card.name}/infer"
        r = await client.post(infer, json=infer_body(TEXTS[:2]))
        _v2_error(r, 401)
        assert r.headers["www-authenticate"] == "ApiKey"

        ok = await client.post(infer, json=infer_body(TEXTS[:2]), headers={"X-API-Key": key})
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-remaining"] == "1"  # a call counts its texts
        refused = await client.post(infer, json=infer_body(TEXTS[:2]), headers={"X-API-Key": key})
        _v2_error(refused, 429, "rate limit")
        assert int(refused.headers["retry-after"]) >= 1


async def test_requests_are_counted_under_the_route_template(
    settings: Settings, service: EmotionService, card: ModelCard
) -> None:
    app = create_app(settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post(f"/v2/models/{card.name}/infer", json=infer_body(["hi"]))).status_code == 200
        assert (await client.get("/v2/models/nope")).status_code == 404
        metrics = (await client.get("/stats")).json()
    rendered = json.dumps(metrics)
    assert metrics["windows"]["1m"]["requests"] >= 1, rendered  # infer counts as a prediction request


# ------------------------------------------------------------------------------------------ openapi


async def test_openapi_documents_v2_and_the_batch_limit(client: httpx.AsyncClient, settings: Settings) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
    } <= set(spec["paths"])
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2InferRequest")
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    assert infer["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")
    schemas = spec["components"]["schemas"]
    assert {"V2InferRequest", "V2InputTensor", "V2RequestedOutput", "V2InferResponse", "V2Error"} <= set(schemas)
    assert schemas["BatchPredictRequest"]["properties"]["texts"]["maxItems"] == settings.limits.max_batch_texts
