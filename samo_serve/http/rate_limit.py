"""Per-caller token buckets: shared by every ingress replica in Redis, in-process when Redis is away.

A bucket holds up to ``burst`` tokens and refills at ``per_second``; a request costs one token per text
(a batch of 10 texts costs 10). In Redis the whole check-and-take is one Lua script, so concurrent
replicas can never both spend the last token, and it reads the clock from Redis (``TIME``) so replicas'
clocks do not matter. When Redis is not configured or its circuit is open, each replica limits with the
same algorithm in memory (so a caller gets up to ``replicas x`` the rate until Redis is back).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from cachetools import TTLCache
from redis.asyncio import Redis

from samo_serve.settings import RateLimitSettings, RateTier
from samo_serve.storage.circuit import CircuitBreaker
from samo_serve.storage.redis_cache import UNAVAILABLE

__all__ = ["RATE_LIMIT_HEADERS", "Decision", "RateLimiter", "take_tokens"]

RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

log = logging.getLogger(__name__)

TOKEN_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the burst: most texts that can be sent at once
    remaining: int  # whole tokens left after this request
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # when refused: seconds until this request's cost is available

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def take_tokens(tokens: float, elapsed_s: float, tier: RateTier, cost: int) -> tuple[bool, float]:
    """The bucket after ``elapsed_s`` of refill and an attempt to take ``cost``: (allowed, tokens left)."""
    tokens = min(tier.burst, tokens + max(0.0, elapsed_s) * tier.per_second)
    if tokens >= cost:
        return True, tokens - cost
    return False, tokens


def decide(allowed: bool, tokens: float, tier: RateTier, cost: int) -> Decision:
    return Decision(
        allowed=allowed,
        limit=tier.burst,
        remaining=math.floor(tokens),
        reset_s=math.ceil((tier.burst - tokens) / tier.per_second),
        retry_after_s=0 if allowed else max(1, math.ceil((cost - tokens) / tier.per_second)),
    )


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, redis: Redis | None, breaker: CircuitBreaker) -> None:
        self.settings = settings
        self._redis = redis
        self._script = redis.register_script(TOKEN_BUCKET_LUA) if redis is not None else None
        self._breaker = breaker
        # identity -> (tokens, monotonic time); bounded so a flood of client IPs cannot grow it forever
        self._local: TTLCache[str, tuple[float, float]] = TTLCache(maxsize=100_000, ttl=3600)
        self.redis_errors = 0

    def tier(self, name: str | None) -> RateTier:
        """A key's tier (unknown tiers get ``default``); None is an anonymous caller (auth off)."""
        if name is None:
            return self.settings.anonymous
        return self.settings.tiers.get(name) or self.settings.tiers["default"]

    async def check(self, identity: str, tier_name: str | None, cost: int) -> Decision:
        tier = self.tier(tier_name)
        if self._script is not None and self._breaker.allow():
            try:
                allowed, tokens = await self._script(
                    keys=[self.settings.redis_prefix + identity], args=[tier.burst, tier.per_second, cost]
                )
            except UNAVAILABLE as exc:
                self.redis_errors += 1
                self._breaker.failure()
                log.debug("rate limit in Redis failed (%s); limiting in-process", exc)
            else:
                self._breaker.success()
                return decide(bool(allowed), float(tokens), tier, cost)
        return self._check_locally(identity, tier, cost)

    def _check_locally(self, identity: str, tier: RateTier, cost: int) -> Decision:
        now = time.monotonic()
        tokens, then = self._local.get(identity, (float(tier.burst), now))
        allowed, tokens = take_tokens(tokens, now - then, tier, cost)
        self._local[identity] = (tokens, now)
        return decide(allowed, tokens, tier, cost)

    async def close(self) -> None:
        if self._redis is not None:
            await asyncio.shield(self._redis.aclose())
