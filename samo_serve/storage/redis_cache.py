"""L2: results shared by every ingress replica, in Redis.

Lookups from concurrent requests merge into one ``MGET`` (the same timer-free micro-batcher as the
model path), so Redis costs one round trip per batch of requests, not per request. Writes never wait:
they are buffered and written by a background task with one pipelined ``SET .. EX`` per batch.
Every Redis error is counted and fed to a circuit breaker: while it is open, L2 is skipped and requests
are answered from L1 and the model; it closes by itself when a trial call succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from samo_serve.core.micro_batcher import MicroBatcher
from samo_serve.core.results import CachedResult
from samo_serve.settings import CacheSettings
from samo_serve.storage.cache import LevelStats, decode_result, encode_result
from samo_serve.storage.circuit import CircuitBreaker

__all__ = ["RedisCache", "redis_client"]

log = logging.getLogger(__name__)

# Errors that mean "Redis is unavailable"; anything else is a bug and propagates.
UNAVAILABLE = (RedisError, OSError, asyncio.TimeoutError)
MAX_PENDING_WRITES = 10_000
WRITE_COALESCE_S = 0.005
SET_MANY_LUA = """
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


def redis_client(url: str, timeout_s: float, max_connections: int) -> Redis:
    """A client for the request path: short timeouts, one quick reconnect, no backoff sleeps.

    redis-py's default retries three times with backoff: seconds of added latency while Redis is down.
    The pool blocks (up to ``timeout_s``) for a free connection instead of failing with "Too many
    connections" when more requests than ``max_connections`` ask at once.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class RedisCache:
    def __init__(self, client: Redis, settings: CacheSettings, n_labels: int) -> None:
        self._redis = client
        self._ttl_s = settings.l2_ttl_s
        self._prefix = settings.l2_prefix
        self._n_labels = n_labels
        self.breaker = CircuitBreaker(settings.circuit_failures, settings.circuit_open_s)
        self.stats = LevelStats()
        self.skipped = 0  # lookups and writes not tried while the circuit was open
        # One MGET in flight: lookups arriving meanwhile leave together in the next (a lone one never waits).
        self._lookups: MicroBatcher[list[str], list[CachedResult | None]] = MicroBatcher(
            self._mget, max_size=512, max_in_flight=1
        )
        self._pending: dict[str, bytes] = {}
        self._writer: asyncio.Task[None] | None = None
        # One EVALSHA per batch of writes: redis-py packs and parses each command of a pipeline in
        # Python (~50 us each), which made per-key SETs the largest cost of L2 on the ingress's CPU.
        self._set_many = client.register_script(SET_MANY_LUA)

    @classmethod
    def from_url(cls, url: str, settings: CacheSettings, n_labels: int) -> RedisCache:
        return cls(redis_client(url, settings.l2_timeout_s, settings.l2_max_connections), settings, n_labels)

    async def get_many(self, keys: list[str]) -> list[CachedResult | None]:
        """One result or None per key; None for all of them when Redis is unavailable."""
        if not keys:
            return []
        if not self.breaker.allow():
            self.skipped += len(keys)
            return [None] * len(keys)
        try:
            found = await self._lookups.submit(keys)
        except UNAVAILABLE as exc:
            self._failed("lookup", exc)
            return [None] * len(keys)
        self.breaker.success()
        hits = sum(r is not None for r in found)
        self.stats.hits += hits
        self.stats.misses += len(keys) - hits
        return found

    async def _mget(self, calls: list[list[str]]) -> list[list[CachedResult | None]]:
        keys = [key for call in calls for key in call]
        values: list[Any] = await self._redis.mget([self._prefix + k for k in keys])
        results = [None if v is None else decode_result(v, self._n_labels) for v in values]
        out, start = [], 0
        for call in calls:
            out.append(results[start : start + len(call)])
            start += len(call)
        return out

    def set_later(self, items: dict[str, CachedResult]) -> None:
        """Queue writes and return at once; a background task writes them in one pipeline."""
        if not items:
            return
        if self.breaker.state == "open" or len(self._pending) >= MAX_PENDING_WRITES:
            self.skipped += len(items)
            return
        for key, result in items.items():
            self._pending[key] = encode_result(result)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())

    async def _write_pending(self) -> None:
        await asyncio.sleep(WRITE_COALESCE_S)  # let writes of concurrent requests join one pipeline
        while self._pending:
            batch, self._pending = self._pending, {}
            if not self.breaker.allow():
                self.skipped += len(batch)
                return
            try:
                keys = [self._prefix + key for key in batch]
                await self._set_many(keys=keys, args=[self._ttl_s, *batch.values()])
            except UNAVAILABLE as exc:
                self._failed("write", exc)
                return
            self.breaker.success()
            self.stats.sets += len(batch)

    async def delete(self, keys: list[str]) -> None:
        """Remove entries now (erasure). Raises what redis-py raises when Redis is unavailable: an erasure
        must not report done while the entries may still be there."""
        for key in keys:  # writes of these keys still queued would put them back
            self._pending.pop(key, None)
        for start in range(0, len(keys), 1_000):
            await self._redis.delete(*(self._prefix + k for k in keys[start : start + 1_000]))

    def _failed(self, what: str, exc: BaseException) -> None:
        self.stats.errors += 1
        was = self.breaker.state
        self.breaker.failure()
        if was != "open" and self.breaker.state == "open":
            log.warning("Redis %s failed (%s: %s); L2 off for %g s", what, type(exc).__name__, exc, self.breaker.open_s)

    async def health(self) -> dict[str, Any]:
        """For /readyz: whether Redis answers a PING now, and the circuit's state."""
        try:
            await self._redis.ping()
            state = "up"
        except UNAVAILABLE:
            state = "down"
        return {"state": state, "circuit": self.breaker.snapshot()}

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats.snapshot(), "skipped": self.skipped, "circuit": self.breaker.state}

    async def flush(self) -> None:
        """Wait for queued writes (tests, shutdown)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), timeout=1.0)
        except (TimeoutError, *UNAVAILABLE):
            pass
        await self._redis.aclose()
