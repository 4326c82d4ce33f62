"""Through real Ray Serve over HTTP, with a real Redis (L2) and a real PostgreSQL (request log).

Both are private servers on free ports, because the fault tests here kill and restart them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from redis import Redis

from samo_serve.storage.request_log.store import percentile_cont
from testkit.drills import at, drive, wait_for_log_rows
from testkit.local_services import PostgresServer, RedisServer

from .conftest import Server, run_server

_ids = itertools.count()


def new_text() -> str:
    return f"e2e text {next(_ids)} {time.monotonic_ns()}: what a lovely surprise"


@pytest.fixture(scope="module")
def backed_server(
    tmp_path_factory: pytest.TempPathFactory, services: tuple[RedisServer, PostgresServer]
) -> Iterator[Server]:
    redis, postgres = services
    env = {
        "SAMO_REDIS_URL": redis.url,
        "SAMO_DATABASE_URL": postgres.url,
        "SAMO_REQUEST_LOG__FLUSH_INTERVAL_MS": "50",
        "SAMO_REQUEST_LOG__RETRY_MAX_BACKOFF_S": "0.5",
        "SAMO_CACHE__CIRCUIT_OPEN_S": "1",
    }
    yield from run_server(tmp_path_factory, env)


async def rows_between(url: str, start: datetime, end: datetime) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(
            "SELECT primary_emotion, confidence, processing_time_ms, cache_level, request_id FROM emotion_requests "
            "WHERE created_at >= $1 AND created_at < $2",
            start,
            end,
        )
    finally:
        await conn.close()


def test_levels_and_dependencies(backed_server: Server, services: tuple[RedisServer, PostgresServer]) -> None:
    with httpx.Client(base_url=backed_server.url, timeout=60) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["dependencies"]["redis"]["state"] == "up"
        assert ready["dependencies"]["database"] | {"rows": None} == {
            "state": "up",
            "dialect": "postgresql",
            "rows": None,
        }
        text = new_text()
        assert client.post("/predict", json={"text": text}).json()["cache"] == "miss"
        assert client.post("/predict", json={"text": text}).json()["cache"] == "l1"
    deadline = time.monotonic() + 10
    redis = Redis.from_url(services[0].url)
    while not redis.dbsize() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis.dbsize() >= 1  # written to L2 off the request path
    redis.close()


async def test_analytics_equal_direct_sql(backed_server: Server, services: tuple[RedisServer, PostgresServer]) -> None:
    postgres = services[1]
    start = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=backed_server.url, timeout=60) as client:
        texts = [new_text() for _ in range(20)]
        for text in texts + texts[:5]:
            assert (await client.post("/predict", json={"text": text})).status_code == 200
        r = await client.post("/predict/batch", json={"texts": texts[:4]})
        assert r.status_code == 200
        end = datetime.now(UTC)
        assert await wait_for_log_rows(postgres.url, start, end, 29, timeout_s=60) == 29
        params = {"start": start.isoformat(), "end": end.isoformat()}
        summary = (await client.get("/analytics/summary", params=params)).json()
        emotions = (await client.get("/analytics/emotions", params=params)).json()["emotions"]
        assert (await client.get("/analytics/summary", params={"start": "not-a-time"})).status_code == 422
    rows = await rows_between(postgres.url, start, end)
    assert summary["texts"] == 29
    assert summary["requests"] == 26 == len({r["request_id"] for r in rows})
    assert summary["cache"]["hit_rate"] == round(sum(r["cache_level"] != "miss" for r in rows) / 29, 4)
    times = sorted(r["processing_time_ms"] for r in rows)
    # percentiles come from the rollups' log-spaced histogram: within its 2.5 % (docs/STORAGE.md)
    assert summary["processing_time_ms"]["p50"] == pytest.approx(percentile_cont(times, 0.5), rel=0.025)
    assert summary["processing_time_ms"]["p95"] == pytest.approx(percentile_cont(times, 0.95), rel=0.025)
    assert {e["emotion"]: e["count"] for e in emotions} == {
        label: sum(r["primary_emotion"] == label for r in rows) for label in {r["primary_emotion"] for r in rows}
    }


async def test_redis_killed_under_load_fails_no_request(
    backed_server: Server, services: tuple[RedisServer, PostgresServer]
) -> None:
    redis = services[0]

    chaos = at({50 / 250: redis.stop, 150 / 250: redis.start}, 250)
    statuses = await drive(backed_server.url, [new_text() for _ in range(250)], 250, 8, chaos)
    assert statuses == {200: 250}
    await asyncio.sleep(1.5)  # the circuit's open period passes; the next call is its trial
    async with httpx.AsyncClient(base_url=backed_server.url, timeout=60) as client:
        for _ in range(5):
            await client.post("/predict", json={"text": new_text()})
        stats = (await client.get("/stats")).json()["replica"]["cache"]["l2"]
    assert stats["errors"] > 0
    assert stats["circuit"] == "closed"  # recovered by itself
    client_ = Redis.from_url(redis.url)
    assert client_.dbsize() > 0  # the restarted (empty) Redis is being filled again
    client_.close()


async def test_postgres_restarted_under_load_loses_no_row(
    backed_server: Server, services: tuple[RedisServer, PostgresServer]
) -> None:
    postgres = services[1]
    start = datetime.now(UTC)

    chaos = at({40 / 300: postgres.stop, 200 / 300: postgres.start}, 300)
    statuses = await drive(backed_server.url, [new_text() for _ in range(300)], 300, 8, chaos)
    end = datetime.now(UTC)
    assert statuses == {200: 300}
    assert await wait_for_log_rows(postgres.url, start, end, 300, timeout_s=60) == 300  # sent == stored
