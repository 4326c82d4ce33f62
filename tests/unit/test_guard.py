"""API keys, rate limits (in-process buckets), backpressure, timeouts and headers, through the app."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.http.api_keys import KeyStore, generate_key, parse_key
from samo_serve.http.app import create_app
from samo_serve.http.guard import Guard
from samo_serve.http.rate_limit import decide, take_tokens
from samo_serve.observability.memory import MemoryLimitExceeded, check_memory, rss_mb
from samo_serve.ops.cli import main as cli
from samo_serve.service import EmotionService
from samo_serve.settings import RateTier, Settings

PUBLIC = ["/healthz", "/readyz", "/docs", "/openapi.json"]
PROTECTED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/predict", {"text": "hello"}),
    ("POST", "/predict/batch", {"texts": ["a", "b"]}),
    ("GET", "/emotions", None),
    ("GET", "/stats", None),
    ("GET", "/analytics/summary", None),
    ("GET", "/analytics/emotions", None),
]


@asynccontextmanager
async def app_client(
    make_service: Callable[..., EmotionService], runner: Any, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, make_service(runner, settings))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


# ----------------------------------------------------------------------------------------- API keys


def test_key_format_and_hash_only_storage(tmp_path: Path) -> None:
    key, record = generate_key("app")
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed[0] == record.id
    assert parsed[1] not in record.hash
    store = KeyStore(tmp_path / "keys.json")
    created = store.create("app", tier="gold")
    text = (tmp_path / "keys.json").read_text()
    assert created not in text
    created_parsed = parse_key(created)
    assert created_parsed is not None
    assert created_parsed[1] not in text  # the secret is nowhere on disk
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


def test_secret_may_contain_underscores() -> None:
    # token_urlsafe draws from [A-Za-z0-9_-]: only the first two underscores separate fields
    assert parse_key("samo_0123456789ab__a_b-") == ("0123456789ab", "_a_b-")


@pytest.mark.parametrize("bad", ["", "samo", "samo_abc_x", "other_0123456789ab_secret", "samo_0123456789ab_"])
def test_malformed_keys_do_not_parse(bad: str) -> None:
    assert parse_key(bad) is None


def test_authenticate_and_revoke(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    assert not store.enabled
    key = store.create("a")
    other = KeyStore(tmp_path / "keys.json")  # another replica reading the same file
    assert other.enabled
    record = other.authenticate(key)
    assert record is not None
    assert record.name == "a"
    assert other.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    store.revoke(record.id)
    other.reload()
    assert other.authenticate(key) is None
    assert not other.enabled  # the only key is revoked: auth is off again
    with pytest.raises(KeyError):
        store.revoke("nope")


def test_keys_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "k.json")
    assert cli(["keys", "create", "--name", "ci", "--tier", "gold", "--file", path]) == 0
    key = capsys.readouterr().out.strip()
    assert parse_key(key) is not None
    assert cli(["keys", "list", "--json", "--file", path]) == 0
    listed = capsys.readouterr().out
    assert '"ci"' in listed
    assert '"gold"' in listed
    assert key not in listed
    key_id = key.split("_")[1]
    assert cli(["keys", "revoke", key_id, "--file", path]) == 0
    assert cli(["keys", "revoke", "000000000000", "--file", path]) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rewrite_with_the_same_mtime_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    writer = KeyStore(path)
    writer.create("a")
    reader = KeyStore(path)
    stamp = path.stat().st_mtime_ns
    late = writer.create("b")
    os.utime(path, ns=(stamp, stamp))  # a coarse-timestamp filesystem: the rewrite keeps the old mtime
    reader.reload()
    assert reader.authenticate(late) is not None


def test_the_default_keys_file_is_shared_by_the_cli_and_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not Settings().api_keys_file.is_relative_to(Path.home() / ".config")  # tests never read real keys
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert Settings().api_keys_file == tmp_path / "samo" / "keys.json"
    guard = Guard.from_settings(Settings())  # a server started with SAMO_API_KEYS_FILE unset
    assert not guard.keys.enabled
    assert cli(["keys", "create", "--name", "late"]) == 0  # no --file, no SAMO_API_KEYS_FILE either
    key = capsys.readouterr().out.strip()
    guard.keys.reload()
    assert guard.keys.enabled
    assert guard.keys.authenticate(key) is not None


async def test_keys_created_or_revoked_after_start_take_effect(
    make_service: Callable[..., EmotionService], fake_runner: Any, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"  # no file yet: the server starts without auth
    clock = Clock()
    settings = Settings(api_keys_file=path)
    guard = Guard(settings, KeyStore(path, clock=clock), None)
    app = create_app(settings, make_service(fake_runner, settings), guard=guard)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:

        async def predict(**headers: str) -> int:
            return (await client.post("/predict", json={"text": "hi"}, headers=headers)).status_code

        async def auth() -> str:
            return str((await client.get("/readyz")).json()["auth"])

        assert (await predict(), await auth()) == (200, "off")
        cli_store = KeyStore(path)  # `samo-serve keys create`, in another process
        first, second = cli_store.create("first"), cli_store.create("second")
        assert await predict() == 200  # checked at most once a second: no file I/O per request
        clock.now += 1.0
        assert (await predict(), await auth()) == (401, "on")
        assert await predict(**{"X-API-Key": first}) == 200
        parsed = parse_key(first)
        assert parsed is not None
        cli_store.revoke(parsed[0])
        clock.now += 1.0
        assert await predict(**{"X-API-Key": first}) == 401
        assert await predict(**{"X-API-Key": second}) == 200
        path.unlink()  # the keys file removed: auth off again
        clock.now += 1.0
        assert (await predict(), await auth()) == (200, "off")


@pytest.fixture
def keyed_settings(tmp_path: Path) -> tuple[Settings, str]:
    path = tmp_path / "keys.json"
    key = KeyStore(path).create("tests")
    return Settings(api_keys_file=path), key


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_no_route_served_without_a_key(
    make_service: Callable[..., EmotionService], fake_runner: Any, keyed_settings: tuple[Settings, str], method: str,
    path: str, body: Any,
) -> None:  # fmt: skip
    settings, key = keyed_settings
    async with app_client(make_service, fake_runner, settings) as client:
        for headers in ({}, {"X-API-Key": "samo_000000000000_wrong"}, {"Authorization": f"Bearer {key}"}):
            r = await call(client, method, path, body, **headers)
            assert r.status_code == 401, (path, headers)
            assert r.json()["error"]["code"] == "UNAUTHORIZED"
            assert r.headers["www-authenticate"] == "ApiKey"
        for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
            assert (await call(client, method, path, body, **headers)).status_code != 401
    assert fake_runner.texts_classified <= 4  # nothing was classified for the refused calls


async def test_public_routes_need_no_key(
    make_service: Callable[..., EmotionService], fake_runner: Any, keyed_settings: tuple[Settings, str]
) -> None:
    async with app_client(make_service, fake_runner, keyed_settings[0]) as client:
        for path in PUBLIC:
            assert (await client.get(path)).status_code == 200, path


async def test_the_key_id_reaches_the_request_log(
    make_service: Callable[..., EmotionService], fake_runner: Any, keyed_settings: tuple[Settings, str]
) -> None:
    settings, key = keyed_settings
    service = make_service(fake_runner, settings)
    seen: list[Any] = []
    original = service.run

    async def spy(call: Any, context: Any, charge: Any = None) -> Any:
        seen.append(context)
        return await original(call, context, charge)

    service.run = spy  # type: ignore[method-assign]
    app = create_app(settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/predict", json={"text": "x"}, headers={"X-API-Key": key})).status_code == 200
    assert seen[0].api_key_id == key.split("_")[1]


# -------------------------------------------------------------------------------------- rate limits


def test_token_bucket_arithmetic() -> None:
    tier = RateTier(per_second=10, burst=20)
    assert take_tokens(20, 0, tier, 5) == (True, 15)
    assert take_tokens(2, 0.1, tier, 5) == (False, 3)  # refilled 1, still short
    assert take_tokens(0, 100, tier, 1) == (True, 19)  # capped at the burst
    refused = decide(False, 3.0, tier, 5)
    assert (refused.remaining, refused.retry_after_s, refused.reset_s) == (3, 1, 2)
    assert refused.headers()["Retry-After"] == "1"
    assert "Retry-After" not in decide(True, 3.0, tier, 1).headers()


@pytest.fixture
def limited() -> Settings:
    return Settings(rate_limits={"enabled": True, "anonymous": {"per_second": 0.5, "burst": 4}})


async def test_rate_limit_per_client_with_real_headers(
    make_service: Callable[..., EmotionService], fake_runner: Any, limited: Settings
) -> None:
    async with app_client(make_service, fake_runner, limited) as client:
        ok = await client.post("/predict", json={"text": "one"})
        assert ok.status_code == 200
        assert (ok.headers["x-ratelimit-limit"], ok.headers["x-ratelimit-remaining"]) == ("4", "3")
        assert int(ok.headers["x-ratelimit-reset"]) in (1, 2)
        batch = await client.post("/predict/batch", json={"texts": ["a", "b", "c"]})  # a batch counts its texts
        assert batch.status_code == 200
        assert batch.headers["x-ratelimit-remaining"] == "0"
        refused = await client.post("/predict", json={"text": "two"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) == 2  # one token at 0.5/s
        assert refused.headers["x-ratelimit-remaining"] == "0"
        too_big = await client.post("/predict/batch", json={"texts": ["x"] * 5})
        assert too_big.status_code == 429
        assert "burst" in too_big.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200  # probes are never limited


async def test_keys_get_their_tier(
    make_service: Callable[..., EmotionService], fake_runner: Any, tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    gold, plain = store.create("g", tier="gold"), store.create("p", tier="unknown-tier")
    settings = Settings(
        api_keys_file=tmp_path / "keys.json",
        rate_limits={
            "enabled": True,
            "tiers": {"default": {"per_second": 1, "burst": 2}, "gold": {"per_second": 1, "burst": 50}},
        },
    )
    async with app_client(make_service, fake_runner, settings) as client:
        r = await client.post("/predict", json={"text": "a"}, headers={"X-API-Key": gold})
        assert r.headers["x-ratelimit-limit"] == "50"
        r = await client.post("/predict", json={"text": "a"}, headers={"X-API-Key": plain})
        assert r.headers["x-ratelimit-limit"] == "2"


# --------------------------------------------------------------------- backpressure, timeouts, headers


class SlowRunner:
    """A runner that blocks its worker thread until released (the model is busy)."""

    provider = "Slow"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.release = __import__("threading").Event()

    def predict(self, batch: Any) -> Any:
        self.release.wait(10)
        return self.inner.predict(batch)

    def health(self) -> None:
        pass


async def test_in_flight_bound_answers_503_at_once(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    runner = SlowRunner(fake_runner)
    settings = Settings(limits={"max_in_flight_requests": 2})
    async with app_client(make_service, runner, settings) as client:
        busy = [asyncio.create_task(client.post("/predict", json={"text": f"t{i}"})) for i in range(2)]
        await asyncio.sleep(0.2)
        r = await client.post("/predict", json={"text": "third"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "OVERLOADED"
        assert r.headers["retry-after"] == "1"
        assert (await client.get("/readyz")).status_code == 200  # probes still answer
        runner.release.set()
        assert [t.status_code for t in await asyncio.gather(*busy)] == [200, 200]
        assert (await client.post("/predict", json={"text": "after"})).status_code == 200


async def test_request_timeout_is_503_and_frees_the_slot(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    runner = SlowRunner(fake_runner)
    settings = Settings(limits={"request_timeout_s": 0.2, "max_in_flight_requests": 1})
    async with app_client(make_service, runner, settings) as client:
        r = await client.post("/predict", json={"text": "slow"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "TIMEOUT"
        runner.release.set()
        assert (await client.post("/predict", json={"text": "next"})).status_code == 200  # slot was freed


async def test_security_headers(make_service: Callable[..., EmotionService], fake_runner: Any) -> None:
    async with app_client(make_service, fake_runner, Settings()) as client:
        for r in (await client.post("/predict", json={"text": "x"}), await client.post("/predict", content=b"{")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert "content-security-policy" not in r.headers
        docs = await client.get("/docs")
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        preflight = await client.options(
            "/predict", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers  # CORS is off by default


async def test_cors_when_configured(make_service: Callable[..., EmotionService], fake_runner: Any) -> None:
    settings = Settings(cors_origins=["https://app.example"])
    async with app_client(make_service, fake_runner, settings) as client:
        ok = await client.options(
            "/predict", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options(
            "/predict", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_memory_watch() -> None:
    assert rss_mb() > 10
    check_memory(None)
    check_memory(10**6)
    with pytest.raises(MemoryLimitExceeded, match="max_rss_mb"):
        check_memory(64)


async def test_a_client_that_disconnects_frees_its_slot(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    runner = SlowRunner(fake_runner)
    settings = Settings(limits={"max_in_flight_requests": 1})
    guard = Guard.from_settings(settings)
    app = create_app(settings, make_service(runner, settings), guard=guard)
    gone = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b'{"text": "slow"}', "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    request = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.2)
    assert guard.in_flight == 1  # waiting on the (blocked) model
    gone.set()
    await asyncio.wait_for(request, 5)
    assert guard.in_flight == 0  # the slot is free although the model is still busy
    runner.release.set()


async def test_the_same_work_costs_the_same_through_every_route(
    make_service: Callable[..., EmotionService], fake_runner: Any, card: ModelCard
) -> None:
    """One cost rule, one request function: a text costs its segments on /predict, /predict/batch and V2 infer.

    The short one fits the length that is sent whole unplanned but holds 43 sentences: once the model
    has read it past its window it is read as a document, and its other segments are charged too.
    """
    settings = Settings(rate_limits={"enabled": True, "anonymous": {"per_second": 0.001, "burst": 10_000}})
    document = " ".join(f"Today I wrote sentence number {i} of a long and winding entry." for i in range(12))
    short_but_many = " ".join(f"Ok{i}." for i in range(43))
    texts = [document, short_but_many, "just one text"]
    assert len(short_but_many) < 4 * 64  # sent whole on its length
    v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    spent: dict[str, int] = {}
    counts: list[int] = []
    for route in ("/predict", "/predict/batch", f"/v2/models/{card.name}/infer"):
        async with app_client(make_service, fake_runner, settings) as client:
            if route == "/predict":
                answers = [await client.post(route, json={"text": t}) for t in texts]
                counts = [a.json().get("segment_count", 1) for a in answers]
            elif route == "/predict/batch":
                answers = [await client.post(route, json={"texts": texts})]
            else:
                answers = [await client.post(route, json=v2)]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            spent[route] = 10_000 - int(answers[-1].headers["x-ratelimit-remaining"])
    assert counts[0] > 1  # read as a document
    assert counts[1] == 43  # sent whole, then read as one
    assert set(spent.values()) == {sum(counts)}, spent


async def test_readyz_shows_traffic_counters_to_admin_keys_only(
    tmp_path: Path, card: Any, tokenizer: Any, fake_runner: Any
) -> None:
    from samo_serve.core.pipeline import LocalPipeline
    from samo_serve.storage.request_log import RequestLog

    path = tmp_path / "keys.json"
    keys = KeyStore(path)
    predict_key, admin_key = keys.create("app", tenant="acme"), keys.create("ops", scopes=("admin",))
    settings = Settings(api_keys_file=path, data_dir=tmp_path / "data")
    log = RequestLog.from_settings(settings)
    service = EmotionService(card, LocalPipeline(tokenizer, fake_runner), settings, request_log=log)
    app = create_app(settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        seen = {}
        for who, headers in (
            ("probe", {}),
            ("tenant", {"X-API-Key": predict_key}),
            ("admin", {"X-API-Key": admin_key}),
        ):
            r = await client.get("/readyz", headers=headers)
            assert r.status_code == 200, r.text
            seen[who] = r.json()
    for who in ("probe", "tenant"):
        assert seen[who]["dependencies"] == {"database": {"state": "up"}}, who  # up/down, no counters
        assert seen[who]["model"] == {"version": card.version}
        assert seen[who]["status"] == "ready"
    assert "rows" in seen["admin"]["dependencies"]["database"]  # queued / written / spilled ... for operators
    assert len(seen["admin"]["model"]) > 1
    await log.store.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({f"x-h{i}": "v" for i in range(85)}, 200),  # with httpx's own, ~92
        ({f"x-h{i}": "v" for i in range(120)}, 431),  # past limits.max_header_count (100)
        ({"x-big": "a" * 40_000}, 431),  # past limits.max_header_bytes (32 KiB)
    ],
    ids=["many-but-fine", "too-many", "too-big"],
)
async def test_headers_past_their_caps_are_431(
    make_service: Callable[..., EmotionService], fake_runner: Any, headers: dict[str, str], status: int
) -> None:
    async with app_client(make_service, fake_runner, Settings()) as client:
        for method, path, body in (("POST", "/predict", {"text": "hi"}), ("GET", "/healthz", None)):
            r = await call(client, method, path, body, **headers)
            assert r.status_code == status, (path, r.text)
            if status == 431:
                assert r.json()["error"]["code"] == "HEADERS_TOO_LARGE"
    if status == 431:
        assert fake_runner.texts_classified == 0


async def _raw_asgi(app: Any, path: str, chunks: list[bytes], stall: bool) -> tuple[int, dict[str, Any], float]:
    """One request straight over ASGI: the body in ``chunks``, then (``stall``) a client that sends no more."""
    sent: list[dict[str, Any]] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": stall or i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the slow client: nothing more, ever
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"t")],
        "client": ("10.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(app(scope, receive, send), 10)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), asyncio.get_running_loop().time() - started


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/v2/models/{name}/infer"])
async def test_a_body_that_stops_arriving_is_408_at_the_deadline(
    make_service: Callable[..., EmotionService], fake_runner: Any, card: ModelCard, path: str
) -> None:
    settings = Settings(limits={"body_timeout_s": 0.5})
    app = create_app(settings, make_service(fake_runner, settings))
    status, body, took = await _raw_asgi(app, path.format(name=card.name), [b'{"te'], stall=True)
    assert status == 408, body
    error = body["error"]  # v1's envelope, or V2's {"error": "<message>"}
    assert error["code"] == "BODY_TIMEOUT" if isinstance(error, dict) else "did not arrive within 0.5 s" in error
    assert 0.4 < took < 3
    status, body, _ = await _raw_asgi(app, "/predict", [b'{"text": ', b'"hi"}'], stall=False)  # in pieces, in time
    assert status == 200, body


async def test_requests_waiting_for_their_body_hold_no_in_flight_slot(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    """Waiting on a client is not work: 3 uploads stalled mid-body under a bound of 2 leave room for
    predictions (192 of them held every slot until their 408 before), and each still gets its 408."""
    settings = Settings(limits={"max_in_flight_requests": 2, "body_timeout_s": 1.0})
    app = create_app(settings, make_service(fake_runner, settings))
    stalled = [asyncio.create_task(_raw_asgi(app, "/predict", [b'{"te'], stall=True)) for _ in range(3)]
    await asyncio.sleep(0.2)
    status, body, _ = await _raw_asgi(app, "/predict", [b'{"text": "still served"}'], stall=False)
    assert status == 200, body
    assert [s for s, _, _ in await asyncio.gather(*stalled)] == [408, 408, 408]
