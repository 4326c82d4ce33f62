"""Analytics and erasure per tenant, through the app over a real SQLite request log (in process).

Two tenants write texts for a user of the same id; each reads only its own, another tenant's user reads
exactly as a user with no data, admin reads both or one, and erasing one tenant's user leaves the other's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.http.api_keys import KeyStore
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import CacheSettings, Settings
from samo_serve.storage.request_log import RequestLog

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
RANGE = {"start": (DAY - timedelta(days=1)).isoformat(), "end": (DAY + timedelta(days=2)).isoformat()}


class Tenants:
    def __init__(self, client: httpx.AsyncClient, service: EmotionService, keys: dict[str, str]) -> None:
        self.client, self.service, self.keys = client, service, keys

    async def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params={**RANGE, **params}, headers={"X-API-Key": self.keys[who]})

    async def flush(self) -> None:
        assert self.service.request_log is not None
        assert await self.service.request_log.writer.flush()


@pytest.fixture
async def tenants(
    make_service: Callable[..., EmotionService], fake_runner: Any, card: Any, tmp_path: Path
) -> AsyncIterator[Tenants]:
    store = KeyStore(tmp_path / "keys.json")
    keys = {
        "a": store.create("a", tenant="acme"),
        "b": store.create("b", tenant="beta"),
        "admin": store.create("root", tenant="ops", scopes=("admin",)),
    }
    settings = Settings(
        api_keys_file=tmp_path / "keys.json", data_dir=tmp_path / "data", cache=CacheSettings(l3_enabled=True)
    )
    base = make_service(fake_runner, settings)
    log = RequestLog.from_settings(settings)
    service = EmotionService(card, base.pipeline, settings, request_log=log)
    app = create_app(settings, service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        t = Tenants(client, service, keys)
        for who, texts in (("a", ["acme one", "acme two", "acme three"]), ("b", ["beta one"])):
            body = {"texts": texts, "user_id": "u1", "occurred_at": (DAY + timedelta(hours=9)).isoformat()}
            r = await client.post("/predict/batch", json=body, headers={"X-API-Key": keys[who]})
            assert r.status_code == 200, r.text
        await t.flush()
        yield t


async def test_each_tenant_reads_only_its_own_user(tenants: Tenants) -> None:
    a = (await tenants.get("a", "/analytics/users/u1/summary")).json()
    b = (await tenants.get("b", "/analytics/users/u1/summary")).json()
    assert (a["texts"], b["texts"]) == (3, 1)
    both = (await tenants.get("admin", "/analytics/users/u1/summary")).json()
    assert both["texts"] == 4
    only_b = (await tenants.get("admin", "/analytics/users/u1/summary", tenant="beta")).json()
    assert only_b["texts"] == 1
    for route in ("/analytics/summary", "/analytics/emotions"):
        assert (await tenants.get("a", route)).json() == (await tenants.get("admin", route, tenant="acme")).json()


async def test_another_tenants_user_reads_as_a_user_with_no_data(tenants: Tenants) -> None:
    r = await tenants.client.post(
        "/predict",
        json={"text": "mine", "user_id": "acme-only", "occurred_at": DAY.isoformat()},
        headers={"X-API-Key": tenants.keys["a"]},
    )
    assert r.status_code == 200
    await tenants.flush()
    assert (await tenants.get("a", "/analytics/users/acme-only/summary")).json()["texts"] == 1
    for path in ("/analytics/users/{}/summary", "/analytics/users/{}/timeline"):
        seen = await tenants.get("b", path.format("acme-only"))  # written by acme alone
        unknown = await tenants.get("b", path.format("nobody"))
        assert seen.status_code == unknown.status_code == 200
        assert seen.json() | {"user_id": ""} == unknown.json() | {"user_id": ""}  # identical but for the id asked
        assert "acme" not in seen.text.replace("acme-only", "")


async def test_timelines_per_bucket(tenants: Tenants) -> None:
    r = await tenants.get("a", "/analytics/users/u1/timeline", bucket="day")
    assert r.status_code == 200
    body = r.json()
    assert body["bucket"] == "day"
    filled = [b for b in body["buckets"] if b["texts"]]
    assert [b["texts"] for b in filled] == [3]
    assert filled[0]["start"].startswith(DAY.date().isoformat())
    assert sum(e["count"] for e in filled[0]["emotions"].values()) >= 3
    tenant_wide = (await tenants.get("a", "/analytics/timeline", bucket="hour")).json()
    assert sum(b["texts"] for b in tenant_wide["buckets"]) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "year"}, "bucket"),
        ({"bucket": "hour", "start": "2000-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "bucket"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "soon"}, "start"),
    ],
)
async def test_bad_timeline_input_is_422(tenants: Tenants, params: dict[str, str], field: str) -> None:
    for path in ("/analytics/users/u1/timeline", "/analytics/timeline"):
        r = await tenants.client.get(path, params=params, headers={"X-API-Key": tenants.keys["a"]})
        assert r.status_code == 422, (path, r.text)
        assert field in str(r.json()["error"])


async def test_bad_user_id_in_the_path_is_422(tenants: Tenants) -> None:
    r = await tenants.get("a", "/analytics/users/" + "x" * 129 + "/summary")
    assert r.status_code == 422
    assert "user_id" in r.json()["error"]["message"]
    r = await tenants.client.delete("/users/a%20b", headers={"X-API-Key": tenants.keys["a"]})
    assert r.status_code == 422


async def test_erasure_stays_inside_the_tenant(tenants: Tenants) -> None:
    headers = {"X-API-Key": tenants.keys["a"]}
    r = await tenants.client.delete("/users/u1", headers=headers)
    assert r.json() == {"deleted": 3}
    assert (await tenants.client.delete("/users/u1", headers=headers)).json() == {"deleted": 0}
    assert (await tenants.client.delete("/users/nobody", headers=headers)).json() == {"deleted": 0}
    assert (await tenants.get("a", "/analytics/users/u1/summary")).json()["texts"] == 0
    assert (await tenants.get("b", "/analytics/users/u1/summary")).json()["texts"] == 1
    # nothing L3 could answer from: acme's erased text is a miss again (L1 aside, which holds no user)
    assert tenants.service.cache.l1 is not None
    tenants.service.cache.l1._cache.clear()
    again = await tenants.client.post("/predict", json={"text": "acme one"}, headers=headers)
    assert again.json()["cache"] == "miss"
    beta = await tenants.client.post("/predict", json={"text": "beta one"}, headers={"X-API-Key": tenants.keys["b"]})
    assert beta.json()["cache"] == "l3"  # beta's rows stay and still answer


async def test_admin_erases_in_one_tenant_or_all(tenants: Tenants) -> None:
    headers = {"X-API-Key": tenants.keys["admin"]}
    assert (await tenants.client.delete("/users/u1", params={"tenant": "beta"}, headers=headers)).json() == {
        "deleted": 1
    }
    assert (await tenants.get("a", "/analytics/users/u1/summary")).json()["texts"] == 3
    assert (await tenants.client.delete("/users/u1", headers=headers)).json() == {"deleted": 3}
