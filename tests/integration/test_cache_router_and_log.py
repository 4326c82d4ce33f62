"""The service over HTTP (in-process FastAPI app, real model, real Redis, real PostgreSQL/SQLite).

Cache levels and promotion, model-version invalidation, the request log behind every prediction,
analytics over HTTP against direct SQL, and Redis/PostgreSQL failing under traffic.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings
from samo_serve.storage.request_log.store import percentile_cont
from testkit.local_services import PostgresServer, RedisServer

_texts = (f"integration text number {i}, quite happy about it" for i in itertools.count())


def new_text() -> str:
    return next(_texts)


@asynccontextmanager
async def running(
    settings: Settings, card: ModelCard, pipeline: LocalPipeline
) -> AsyncIterator[tuple[httpx.AsyncClient, EmotionService]]:
    """The app with its lifespan (writer task started, flushed and stopped on exit)."""
    service = EmotionService.from_settings(card, pipeline, settings)
    app = create_app(settings, service)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://samo") as client:
            yield client, service


async def predict(client: httpx.AsyncClient, text: str) -> dict[str, Any]:
    r = await client.post("/predict", json={"text": text})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def stored_rows(url: str, sql: str = "SELECT count(*) FROM emotion_requests") -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_levels_fill_and_promote(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, redis_server: RedisServer
) -> None:
    settings = make_settings(redis_url=redis_server.url, cache={"l2_prefix": "levels:"})
    text = new_text()
    async with running(settings, card, pipeline) as (client, service):
        first = await predict(client, text)
        assert first["cache"] == "miss"
        assert (await predict(client, "  " + text + "\n"))["cache"] == "l1"  # same normalized text
        await service.cache.l2.flush()  # type: ignore[union-attr]
    # Another replica (empty L1) finds it in Redis, then in its own L1.
    async with running(settings, card, pipeline) as (client, service):
        second = await predict(client, text)
        assert second["cache"] == "l2"
        assert second["emotions"] == first["emotions"]
        assert (await predict(client, text))["cache"] == "l1"
        stats = (await client.get("/stats")).json()["replica"]["cache"]
        assert stats["l2"]["hits"] == 1
        assert stats["l1"]["hits"] == 1


async def test_a_new_model_version_never_serves_an_old_result(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, redis_server: RedisServer
) -> None:
    settings = make_settings(redis_url=redis_server.url, cache={"l3_enabled": True})
    text = new_text()
    async with running(settings, card, pipeline) as (client, service):
        await predict(client, text)
        await service.cache.l2.flush()  # type: ignore[union-attr]
    retrained = card.model_copy(update={"version": card.version + "-retrained"})
    async with running(settings, retrained, pipeline) as (client, _):
        body = await predict(client, text)
        assert body["cache"] == "miss"  # not l2 (Redis) nor l3 (log) of the old version
        assert body["model_version"] == retrained.version


async def test_l3_answers_from_the_request_log_and_promotes(
    make_settings: Callable[..., Settings],
    card: ModelCard,
    pipeline: LocalPipeline,
    redis_server: RedisServer,
    database_url: str,
) -> None:
    settings = make_settings(
        redis_url=redis_server.url, database_url=database_url, cache={"l3_enabled": True, "l2_prefix": "l3test:"}
    )
    text = new_text()
    async with running(settings, card, pipeline) as (client, service):
        first = await predict(client, text)
        assert await service.request_log.writer.flush()  # type: ignore[union-attr]
    await redis_server_flushall(redis_server)
    async with running(settings, card, pipeline) as (client, service):
        from_log = await predict(client, text)
        assert from_log["cache"] == "l3"
        assert from_log["emotions"] == first["emotions"]
        assert (await predict(client, text))["cache"] == "l1"
        await service.cache.l2.flush()  # type: ignore[union-attr]
    async with running(settings, card, pipeline) as (client, _):
        assert (await predict(client, text))["cache"] == "l2"  # promoted from L3 into Redis


async def redis_server_flushall(server: RedisServer) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(server.url)
    await client.flushall()
    await client.aclose()


async def test_every_prediction_is_logged_without_its_text_by_default(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, postgres_server: PostgresServer
) -> None:
    await stored_rows(postgres_server.url, "SELECT 1")
    settings = make_settings(database_url=postgres_server.url)
    marker = new_text()
    async with running(settings, card, pipeline) as (client, service):
        await predict(client, marker)
        await predict(client, marker)
        r = await client.post("/predict/batch", json={"texts": [marker, "another one", "a third"]})
        assert r.status_code == 200
        assert await service.request_log.writer.flush()  # type: ignore[union-attr]
        keyed = service.request_log.hasher.text_hash(marker)  # type: ignore[union-attr]
    conn = await asyncpg.connect(postgres_server.url)
    rows = await conn.fetch(
        "SELECT request_id, text, cache_level, primary_emotion, emotions FROM emotion_requests "
        "WHERE text_hash = $1 ORDER BY created_at",
        keyed,
    )
    bare = await conn.fetchval(  # the hash is keyed: a guessed text cannot be checked against the table
        "SELECT count(*) FROM emotion_requests WHERE text_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        marker,
    )
    assert bare == 0
    await conn.close()
    assert [r["cache_level"] for r in rows] == ["miss", "l1", "l1"]
    assert all(r["text"] is None for r in rows)  # SAMO_LOG_TEXT is off by default
    assert len({r["request_id"] for r in rows}) == 3


async def test_log_text_stores_the_text_when_asked(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    async with running(make_settings(database_url=url, log_text=True), card, pipeline) as (client, service):
        await predict(client, "keep \x00 me")
        assert await service.request_log.writer.flush()  # type: ignore[union-attr]
        rows = await service.request_log.store._run(  # type: ignore[union-attr,attr-defined]
            lambda c: c.execute("SELECT text FROM emotion_requests").fetchall()
        )
    assert rows == [("keep \ufffd me",)]


async def test_analytics_over_http_equal_direct_sql(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, fresh_postgres: PostgresServer
) -> None:
    settings = make_settings(database_url=fresh_postgres.url)
    async with running(settings, card, pipeline) as (client, service):
        texts = [new_text() for _ in range(30)]
        for text in texts + texts[:10]:
            await predict(client, text)
        assert await service.request_log.writer.flush()  # type: ignore[union-attr]
        emotions = (await client.get("/analytics/emotions")).json()
        summary = (await client.get("/analytics/summary")).json()
        bad = [
            await client.get("/analytics/summary", params={"start": "yesterday"}),
            await client.get(
                "/analytics/emotions", params={"start": "2026-11-27T10:00:00Z", "end": "2026-11-27T09:00"}
            ),
            await client.get(
                "/analytics/emotions", params={"start": "2026-11-27T10:00:00Z", "end": "2026-11-27T10:00Z"}
            ),
        ]
    conn = await asyncpg.connect(fresh_postgres.url)
    rows = await conn.fetch("SELECT primary_emotion, confidence, processing_time_ms, cache_level FROM emotion_requests")
    await conn.close()
    assert summary["texts"] == len(rows) == 40
    assert summary["cache"]["hit_rate"] == round(sum(r["cache_level"] != "miss" for r in rows) / 40, 4) == 0.25
    times = sorted(r["processing_time_ms"] for r in rows)
    # from the rollups' 5 %-wide latency histogram (docs/STORAGE.md): within 2.5 %
    assert summary["processing_time_ms"]["p95"] == pytest.approx(percentile_cont(times, 0.95), rel=0.026)
    by_emotion = {e["emotion"]: e for e in emotions["emotions"]}
    assert sum(e["count"] for e in by_emotion.values()) == 40
    for label, e in by_emotion.items():
        mine = [r for r in rows if r["primary_emotion"] == label]
        assert e["count"] == len(mine)
        assert e["mean_confidence"] == pytest.approx(sum(r["confidence"] for r in mine) / len(mine))
    for response in bad:
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_readyz_reports_dependencies_and_degrades(
    make_settings: Callable[..., Settings],
    card: ModelCard,
    pipeline: LocalPipeline,
    fresh_redis: RedisServer,
    fresh_postgres: PostgresServer,
) -> None:
    settings = make_settings(redis_url=fresh_redis.url, database_url=fresh_postgres.url)
    async with running(settings, card, pipeline) as (client, _):
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready"
        assert ready["dependencies"]["redis"]["state"] == "up"
        assert ready["dependencies"]["database"]["state"] == "up"
        fresh_redis.stop()
        fresh_postgres.stop()
        r = await client.get("/readyz")
        assert r.status_code == 200  # optional dependencies: degraded, still serving
        assert r.json()["status"] == "degraded"
        assert r.json()["dependencies"]["redis"]["state"] == "down"
        assert r.json()["dependencies"]["database"]["state"] == "down"
        analytics = await client.get("/analytics/summary")
        assert analytics.status_code == 503
        assert analytics.json()["error"]["code"] == "ANALYTICS_UNAVAILABLE"
        fresh_postgres.start()


async def _load(client: httpx.AsyncClient, n: int, concurrency: int, between: Callable[[int], Any]) -> list[int]:
    """n distinct texts at a fixed concurrency; ``between(i)`` runs once the i-th response is in."""
    statuses: list[int] = []
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            r = await client.post("/predict", json={"text": f"load {i} {new_text()}"})
            statuses.append(r.status_code)
            await between(len(statuses))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def test_redis_killed_under_load_fails_no_request_and_l2_recovers(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, fresh_redis: RedisServer
) -> None:
    settings = make_settings(redis_url=fresh_redis.url, cache={"circuit_open_s": 0.5})

    async def chaos(done: int) -> None:
        if done == 60:
            fresh_redis.stop()
        elif done == 180:
            fresh_redis.start()

    async with running(settings, card, pipeline) as (client, service):
        statuses = await _load(client, 300, 8, chaos)
        assert statuses == [200] * 300
        l2 = service.cache.l2
        assert l2 is not None
        assert l2.stats.errors > 0
        await asyncio.sleep(0.6)
        text = new_text()
        await predict(client, text)  # the circuit's trial call succeeds; the write goes through
        await l2.flush()
        assert l2.breaker.state == "closed"
        assert (await l2.get_many([service.keys(text).cache_key]))[0] is not None


async def test_postgres_restarted_under_load_loses_no_row(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, fresh_postgres: PostgresServer
) -> None:
    settings = make_settings(
        database_url=fresh_postgres.url,
        request_log={"flush_interval_ms": 20, "queue_max_rows": 50, "retry_max_backoff_s": 0.2},
    )

    async def chaos(done: int) -> None:
        if done == 40:
            await asyncio.to_thread(fresh_postgres.stop)
        elif done == 200:
            await asyncio.to_thread(fresh_postgres.start)

    async with running(settings, card, pipeline) as (client, service):
        statuses = await _load(client, 300, 8, chaos)
        log = service.request_log
        assert log is not None
        assert await log.writer.flush(timeout_s=30)
        counters = log.writer.counters
    assert statuses == [200] * 300
    assert counters.spilled > 0
    assert counters.replayed == counters.spilled
    assert counters.dropped == 0
    assert await stored_rows(fresh_postgres.url) == 300  # sent == stored


@pytest.mark.parametrize("log", [True, False], ids=["with-log", "redis-only"])
async def test_redis_keys_are_keyed_so_a_dump_cannot_test_a_sentence(
    make_settings: Callable[..., Settings],
    card: ModelCard,
    pipeline: LocalPipeline,
    redis_server: RedisServer,
    tmp_path: Path,
    log: bool,
) -> None:
    """Whoever reads Redis (or a dump) and guesses a sentence cannot find its entry without the server's key:
    the keys of two servers with different keys differ, and none is the plain sha256 of what was sent."""
    import hashlib

    from redis.asyncio import Redis

    text, prefix = new_text(), f"keyed-{log}:"
    found: list[set[bytes]] = []
    for n, secret in enumerate(("first server secret 0123456789", "second server secret 987654321")):
        settings = make_settings(
            redis_url=redis_server.url,
            data_dir=tmp_path / f"data-{n}",
            cache={"l2_prefix": prefix + f"{n}:"},
            request_log={"enabled": log, "hash_key": secret},
        )
        async with running(settings, card, pipeline) as (client, service):
            await predict(client, text)
            await service.cache.l2.flush()  # type: ignore[union-attr]
        redis = Redis.from_url(redis_server.url)
        found.append({k.removeprefix(f"{prefix}{n}:".encode()) async for k in redis.scan_iter(f"{prefix}{n}:*")})
        await redis.aclose()
    assert len(found[0]) == len(found[1]) == 1
    assert found[0] != found[1]  # the same text, another key: the key is what makes the entry findable
    normalized = text.encode()
    guesses = {
        hashlib.sha256(normalized).hexdigest(),
        hashlib.sha256(card.version.encode() + b"\x00\x00" + normalized).hexdigest(),  # the old formula
        hashlib.sha256(card.version.encode() + b"\x00" + normalized).hexdigest(),
        hashlib.sha256(f"{card.version}\x00\x00{hashlib.sha256(normalized).hexdigest()}".encode()).hexdigest(),
    }
    assert not {g.encode() for g in guesses} & (found[0] | found[1])


async def test_erasing_a_person_removes_their_cache_entries_and_only_theirs(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, fresh_redis: RedisServer
) -> None:
    from redis.asyncio import Redis

    settings = make_settings(redis_url=fresh_redis.url, cache={"l2_prefix": "erase:"})
    mine, theirs, queued = new_text(), new_text(), new_text()
    async with running(settings, card, pipeline) as (client, service):
        for text, user in ((mine, "u1"), (theirs, "u2")):
            r = await client.post("/predict", json={"text": text, "user_id": user})
            assert r.status_code == 200
        await service.cache.l2.flush()  # type: ignore[union-attr]
        assert service.request_log is not None
        await service.request_log.writer.flush()
        r = await client.post("/predict", json={"text": queued, "user_id": "u1"})  # its row still queued
        await service.cache.l2.flush()  # type: ignore[union-attr]
        redis = Redis.from_url(fresh_redis.url)
        keys = {text: service.keys(text).cache_key for text in (mine, theirs, queued)}
        assert all([await redis.exists(f"erase:{k}") for k in keys.values()])

        r = await client.delete("/users/u1")
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] >= 1
        assert not await redis.exists(f"erase:{keys[mine]}")
        assert not await redis.exists(f"erase:{keys[queued]}")
        assert await redis.exists(f"erase:{keys[theirs]}")  # another person's entry stays
        assert service.cache.l1 is not None
        assert service.cache.l1.get(keys[mine]) is None
        assert service.cache.l1.get(keys[theirs]) is not None
        assert (await predict(client, mine))["cache"] == "miss"  # no level answers from what was erased
        await redis.aclose()

        # Redis unreachable: the erasure fails before anything is gone (503), and a retry completes it
        r = await client.post("/predict", json={"text": new_text(), "user_id": "u3"})
        await service.request_log.writer.flush()
        fresh_redis.stop()
        r = await client.delete("/users/u3")
        assert r.status_code == 503, r.text
        assert "retry" in r.json()["error"]["message"]
        assert await service.request_log.user_texts(None, "u3")  # nothing of theirs deleted yet
        fresh_redis.start()
        await asyncio.sleep(settings.cache.circuit_open_s)
        r = await client.delete("/users/u3")
        assert (r.status_code, r.json().get("deleted")) == (200, 1), r.text
