"""Token buckets in a real Redis: shared and atomic across replicas, in-process while Redis is down."""

from __future__ import annotations

import asyncio
import time

from samo_serve.http.rate_limit import RateLimiter
from samo_serve.settings import RateLimitSettings
from samo_serve.storage.circuit import CircuitBreaker
from samo_serve.storage.redis_cache import redis_client
from testkit.local_services import RedisServer

# Redis timeout for these tests: generous, so that a loaded machine does not turn a slow answer into the
# in-process fallback (tested on its own below) and the count of allowed calls into a flake.
TIMEOUT_S = 2.0


def limiter(url: str, per_second: float = 0.001, burst: int = 20) -> RateLimiter:
    settings = RateLimitSettings(
        enabled=True, tiers={"default": {"per_second": per_second, "burst": burst}}, redis_prefix=f"rl{time.time_ns()}:"
    )
    return RateLimiter(settings, redis_client(url, TIMEOUT_S, 8), CircuitBreaker(2, 0.5))


async def test_replicas_share_one_bucket_and_never_overspend(redis_server: RedisServer) -> None:
    a = limiter(redis_server.url)
    b = RateLimiter(a.settings, redis_client(redis_server.url, TIMEOUT_S, 8), CircuitBreaker(2, 0.5))  # another replica
    decisions = await asyncio.gather(*(lim.check("key:k1", "default", 1) for lim in [a, b] * 30))
    assert sum(d.allowed for d in decisions) == 20  # exactly the burst, across both replicas
    refused = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 and d.retry_after_s >= 1 for d in refused)
    assert (await a.check("key:k2", "default", 1)).allowed  # buckets are per caller
    await a.close()
    await b.close()


async def test_a_batch_costs_its_texts_and_tokens_refill(redis_server: RedisServer) -> None:
    lim = limiter(redis_server.url, per_second=50, burst=10)
    first = await lim.check("ip:1.2.3.4", "default", 8)
    assert (first.allowed, first.remaining) == (True, 2)
    assert not (await lim.check("ip:1.2.3.4", "default", 8)).allowed
    await asyncio.sleep(0.2)  # +10 tokens at 50/s, capped at the burst
    again = await lim.check("ip:1.2.3.4", "default", 8)
    assert again.allowed
    await lim.close()


async def test_redis_down_falls_back_to_in_process_buckets(fresh_redis: RedisServer) -> None:
    lim = limiter(fresh_redis.url, burst=5)
    assert (await lim.check("key:x", "default", 1)).allowed
    fresh_redis.stop()
    decisions = [await lim.check("key:x", "default", 1) for _ in range(8)]
    assert sum(d.allowed for d in decisions) == 5  # a local bucket of its own, full at first
    assert lim.redis_errors >= 1
    fresh_redis.start()
    await asyncio.sleep(0.6)  # the circuit's open period
    back = await lim.check("key:y", "default", 1)
    assert back.allowed
    assert back.remaining == 4  # counted in Redis again (a fresh bucket there)
    await lim.close()
