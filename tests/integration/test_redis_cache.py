"""L2 against a real Redis: values, TTL, batching of lookups, and Redis dying and coming back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis

from samo_serve.core.results import CachedResult
from samo_serve.settings import CacheSettings
from samo_serve.storage.redis_cache import RedisCache
from testkit.local_services import RedisServer

N = 28


def result(value: float, truncated: bool = False) -> CachedResult:
    return CachedResult(np.linspace(0, value, N, dtype=np.float32), truncated)


@pytest.fixture
async def l2(redis_server: RedisServer) -> AsyncIterator[RedisCache]:
    cache = RedisCache.from_url(redis_server.url, CacheSettings(l2_prefix=f"t{time.monotonic_ns()}:"), N)
    yield cache
    await cache.close()


async def test_set_then_get_is_exact(l2: RedisCache) -> None:
    l2.set_later({"a": result(0.9, truncated=True), "b": result(0.1)})
    await l2.flush()
    a, b, c = await l2.get_many(["a", "b", "c"])
    assert a is not None
    assert b is not None
    assert c is None
    np.testing.assert_array_equal(a.scores, result(0.9).scores)
    assert a.truncated is True
    assert b.truncated is False
    assert {k: l2.snapshot()[k] for k in ("hits", "misses", "sets", "errors")} == {
        "hits": 2,
        "misses": 1,
        "sets": 2,
        "errors": 0,
    }


async def test_values_are_compact_and_expire(redis_server: RedisServer) -> None:
    settings = CacheSettings(l2_prefix="ttl:", l2_ttl_s=1)
    cache = RedisCache.from_url(redis_server.url, settings, N)
    cache.set_later({"k": result(0.5)})
    await cache.flush()
    raw = Redis.from_url(redis_server.url)
    assert len(await raw.get("ttl:k")) == 1 + 4 * N
    assert 0 < await raw.ttl("ttl:k") <= 1
    await asyncio.sleep(1.6)
    assert await cache.get_many(["k"]) == [None]
    await raw.aclose()
    await cache.close()


async def test_a_value_of_another_shape_is_a_miss(l2: RedisCache, redis_server: RedisServer) -> None:
    raw = Redis.from_url(redis_server.url)
    await raw.set(l2._prefix + "odd", b"not a result")
    assert await l2.get_many(["odd"]) == [None]
    await raw.aclose()


async def test_concurrent_lookups_share_round_trips(l2: RedisCache) -> None:
    l2.set_later({f"k{i}": result(i / 100) for i in range(50)})
    await l2.flush()
    found = await asyncio.gather(*(l2.get_many([f"k{i}"]) for i in range(50)))
    assert all(f[0] is not None for f in found)
    assert l2._lookups.batches < 50  # merged into MGETs while one was in flight


async def test_redis_dying_opens_the_circuit_and_it_recovers(fresh_redis: RedisServer) -> None:
    settings = CacheSettings(circuit_failures=2, circuit_open_s=0.5)
    cache = RedisCache.from_url(fresh_redis.url, settings, N)
    cache.set_later({"k": result(0.3)})
    await cache.flush()
    fresh_redis.stop()

    for _ in range(20):
        assert await cache.get_many(["k"]) == [None]
    assert cache.stats.errors == 2
    assert cache.skipped > 0
    assert cache.breaker.state == "open"
    assert (await cache.health())["state"] == "down"

    fresh_redis.start()  # empty: it kept nothing on disk
    await asyncio.sleep(0.6)
    assert await cache.get_many(["k"]) == [None]  # the trial call succeeds: a plain miss
    assert cache.breaker.state == "closed"
    cache.set_later({"k": result(0.3)})
    await cache.flush()
    assert (await cache.get_many(["k"]))[0] is not None
    assert (await cache.health())["state"] == "up"
    await cache.close()
