"""Tenants at the edge: keys with tenants and scopes, 403s, who-and-when validation, caches per tenant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.core.postprocess import PredictOptions
from samo_serve.http.api_keys import DEFAULT_SCOPES, KeyStore, check_tenant, parse_scopes
from samo_serve.http.app import create_app
from samo_serve.http.routes_analytics import MAX_BUCKETS
from samo_serve.ops.cli import main as cli
from samo_serve.service import EmotionService, RequestContext
from samo_serve.settings import CacheSettings, Settings
from samo_serve.storage.cache import text_keys
from samo_serve.storage.request_log.analytics import bucket_count

# ------------------------------------------------------------------------------------ keys and scopes


def test_scopes_parse_in_canonical_order_and_refuse_unknown_ones() -> None:
    assert parse_scopes("analytics, predict") == ("predict", "analytics")
    assert parse_scopes("admin") == ("admin",)
    with pytest.raises(ValueError, match="root"):
        parse_scopes("predict,root")
    with pytest.raises(ValueError, match="no scope"):
        parse_scopes(" , ")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "0123456789ab", "t\x00"])
def test_tenant_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        check_tenant(bad)


def test_a_key_without_tenant_is_its_own_and_old_files_get_default_scopes(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    own = store.authenticate(store.create("a"))
    acme = store.authenticate(store.create("b", tenant="acme", scopes=("predict",)))
    assert own is not None
    assert acme is not None
    assert (own.tenant_id, own.scopes) == (own.id, DEFAULT_SCOPES)
    assert (acme.tenant_id, acme.scopes) == ("acme", ("predict",))
    data = json.loads(path.read_text())
    for k in data["keys"]:  # a file written before tenants and scopes existed
        del k["tenant"], k["scopes"]
    path.write_text(json.dumps(data))
    old = KeyStore(path)
    assert {k.scopes for k in old.list()} == {DEFAULT_SCOPES}
    assert {k.tenant_id for k in old.list()} == {own.id, acme.id}


def test_keys_cli_tenant_and_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "k.json")
    assert cli(["keys", "create", "--name", "a", "--tenant", "acme", "--scope", "predict,admin", "--file", path]) == 0
    capsys.readouterr()
    assert cli(["keys", "list", "--json", "--file", path]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["tenant"], listed["scopes"]) == ("acme", ["predict", "admin"])
    assert cli(["keys", "create", "--name", "b", "--scope", "predict,sudo", "--file", path]) == 1
    assert "sudo" in capsys.readouterr().err
    assert cli(["keys", "create", "--name", "c", "--tenant", "a b", "--file", path]) == 1
    assert cli(["keys", "list", "--file", path]) == 0  # the table shows tenants and scopes
    table = capsys.readouterr().out
    assert "acme" in table
    assert "predict" in table


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    store = KeyStore(tmp_path / "keys.json")
    return {
        "predict": store.create("p", tenant="acme", scopes=("predict",)),
        "analytics": store.create("a", tenant="acme", scopes=("analytics",)),
        "default": store.create("d", tenant="acme"),
        "admin": store.create("root", tenant="ops", scopes=("admin",)),
        "solo": store.create("solo"),
    }


@asynccontextmanager
async def app_client(service: EmotionService, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


ROUTES: list[tuple[str, str, Any, str]] = [  # method, path, body, the scope it needs
    ("POST", "/predict", {"text": "hello"}, "predict"),
    ("POST", "/predict/batch", {"texts": ["a"]}, "predict"),
    ("GET", "/analytics/summary", None, "analytics"),
    ("GET", "/analytics/emotions", None, "analytics"),
    ("GET", "/analytics/timeline", None, "analytics"),
    ("GET", "/analytics/users/u1/timeline", None, "analytics"),
    ("GET", "/analytics/users/u1/summary", None, "analytics"),
    ("DELETE", "/users/u1", None, "analytics"),
    ("GET", "/stats", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "needs"), ROUTES)
async def test_each_route_answers_403_without_its_scope(
    make_service: Callable[..., EmotionService],
    fake_runner: Any,
    tmp_path: Path,
    keys: dict[str, str],
    method: str,
    path: str,
    body: Any,
    needs: str,
) -> None:
    settings = Settings(api_keys_file=tmp_path / "keys.json", data_dir=tmp_path / "data")
    async with app_client(make_service(fake_runner, settings), settings) as client:
        for holder in ("predict", "analytics", "default", "admin"):
            r = await client.request(method, path, json=body, headers={"X-API-Key": keys[holder]})
            allowed = holder == needs or holder == "admin" or (holder == "default" and needs != "admin")
            if allowed:
                assert r.status_code not in (401, 403), (holder, r.text)
            else:
                assert r.status_code == 403, (holder, r.text)
                assert r.json()["error"]["code"] == "FORBIDDEN"
                assert needs in r.json()["error"]["message"]
        r = await client.request(method, path, json=body)
        assert r.status_code == 401


async def test_403_comes_before_input_is_validated(
    make_service: Callable[..., EmotionService], fake_runner: Any, tmp_path: Path, keys: dict[str, str]
) -> None:
    settings = Settings(api_keys_file=tmp_path / "keys.json")
    async with app_client(make_service(fake_runner, settings), settings) as client:
        r = await client.get("/analytics/users/bad%20id/timeline?bucket=year", headers={"X-API-Key": keys["predict"]})
        assert r.status_code == 403
        assert fake_runner.calls == []


async def test_only_admin_chooses_a_tenant(
    make_service: Callable[..., EmotionService], fake_runner: Any, tmp_path: Path, keys: dict[str, str]
) -> None:
    settings = Settings(api_keys_file=tmp_path / "keys.json", data_dir=tmp_path / "data")
    async with app_client(make_service(fake_runner, settings), settings) as client:
        for route in ("/analytics/summary", "/analytics/users/u1/summary"):
            r = await client.get(route, params={"tenant": "acme"}, headers={"X-API-Key": keys["default"]})
            assert r.status_code == 403, route
            assert "admin" in r.json()["error"]["message"]
        r = await client.delete("/users/u1", params={"tenant": "other"}, headers={"X-API-Key": keys["default"]})
        assert r.status_code == 403


# ------------------------------------------------------------------------------- who and when: input


BAD_ENTRY = [
    ({"user_id": ""}, "user_id"),
    ({"user_id": "a b"}, "user_id"),
    ({"user_id": "x" * 129}, "user_id"),
    ({"user_id": "u1\n"}, "user_id"),
    ({"user_id": "ü"}, "user_id"),
    ({"user_id": 5}, "user_id"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "1700000000"}, "occurred_at"),
    ({"occurred_at": 1700000000}, "occurred_at"),
    ({"occurred_at": "2026-02-30T00:00:00Z"}, "occurred_at"),
    ({"occurred_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "occurred_at"),
]


@pytest.mark.parametrize(("extra", "field"), BAD_ENTRY)
@pytest.mark.parametrize("route", ["/predict", "/predict/batch"])
async def test_bad_user_or_time_is_422_naming_the_field(
    make_service: Callable[..., EmotionService], fake_runner: Any, route: str, extra: dict[str, Any], field: str
) -> None:
    settings = Settings()
    body = {"text": "hello", **extra} if route == "/predict" else {"texts": ["hello"], **extra}
    async with app_client(make_service(fake_runner, settings), settings) as client:
        r = await client.post(route, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert f"`{field}`" in error["message"]
    assert [field] in [d["loc"] for d in error["details"]]
    assert fake_runner.calls == []


async def test_user_and_time_reach_the_request_context(
    make_service: Callable[..., EmotionService], fake_runner: Any, tmp_path: Path, keys: dict[str, str]
) -> None:
    settings = Settings(api_keys_file=tmp_path / "keys.json")
    service = make_service(fake_runner, settings)
    seen: list[RequestContext] = []
    original = service.run

    async def spy(call: Any, context: Any, charge: Any = None) -> Any:
        seen.append(context)
        return await original(call, context, charge)

    service.run = spy  # type: ignore[method-assign]
    soon = datetime.now(UTC) + timedelta(hours=23)
    async with app_client(service, settings) as client:
        headers = {"X-API-Key": keys["default"]}
        body = {"text": "hi", "user_id": "u.1:a@b-c_d", "occurred_at": "2024-03-01T08:30:00+02:00"}
        assert (await client.post("/predict", json=body, headers=headers)).status_code == 200
        body = {"texts": ["hi"], "occurred_at": soon.replace(tzinfo=None).isoformat()}
        assert (await client.post("/predict/batch", json=body, headers=headers)).status_code == 200
        assert (await client.post("/predict", json={"text": "x"}, headers={"X-API-Key": keys["solo"]})).status_code
    first, second, third = seen
    assert (first.tenant_id, first.user_id) == ("acme", "u.1:a@b-c_d")
    assert first.occurred_at == datetime(2024, 3, 1, 6, 30, tzinfo=UTC)  # kept in UTC
    assert (second.user_id, second.occurred_at) == (None, soon)  # no zone: UTC
    assert third.tenant_id == keys["solo"].split("_")[1]  # a key without a tenant is its own


# ------------------------------------------------------------------------------- caches per tenant


def test_cache_keys_differ_per_tenant() -> None:
    a, b, open_ = text_keys("m", "hello", "acme"), text_keys("m", "hello", "beta"), text_keys("m", "hello")
    assert len({a.cache_key, b.cache_key, open_.cache_key}) == 3
    assert a.text_hash == b.text_hash  # L3 filters by tenant instead


@pytest.mark.parametrize(("shared", "second"), [(False, "miss"), (True, "l1")])
async def test_another_tenants_text_is_a_miss_unless_shared(
    make_service: Callable[..., EmotionService], fake_runner: Any, shared: bool, second: str
) -> None:
    service = make_service(fake_runner, Settings(cache=CacheSettings(shared_across_tenants=shared)))
    options = PredictOptions()
    (a,) = await service.predict(["a sentence only acme wrote"], options, RequestContext(tenant_id="acme"))
    (b,) = await service.predict(["a sentence only acme wrote"], options, RequestContext(tenant_id="beta"))
    (again,) = await service.predict(["a sentence only acme wrote"], options, RequestContext(tenant_id="acme"))
    assert (a["cache"], b["cache"], again["cache"]) == ("miss", second, "l1")


def test_bucket_count() -> None:
    at = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # a Wednesday
    assert bucket_count(at, at + timedelta(hours=1), "hour") == 2  # 10:00 and 11:00
    assert bucket_count(at, at + timedelta(minutes=10), "hour") == 1
    assert bucket_count(at, at + timedelta(days=1), "day") == 2
    assert bucket_count(at, at + timedelta(days=5), "week") == 2  # Monday 2 March and Monday 9 March
    assert bucket_count(at, at + timedelta(hours=MAX_BUCKETS), "hour") == MAX_BUCKETS + 1
