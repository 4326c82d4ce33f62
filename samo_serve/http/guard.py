"""Who may call, how much, and how many at once: API keys, rate limits, the in-flight bound, headers.

The edge (samo_serve.http.edge) applies it to every route, so none repeats it:

- public paths (liveness, readiness, the docs) pass; everything else needs an active API key once any
  key is configured (``Authorization: ApiKey <key>`` or ``X-API-Key: <key>``), else 401;
- the key's tenant and scopes go into ``scope["state"]``; routes ask for a scope with :func:`require`
  (403 FORBIDDEN without it). With no key configured the service is open: one tenant (``""``), every scope;
- at most ``limits.max_in_flight_requests`` requests are worked on at once (one waiting for its body is
  not: samo_serve.http.edge); beyond that a request is answered 503 OVERLOADED with ``Retry-After`` at
  once instead of queueing without bound;
- every response gets ``nosniff``, frame denial and no referrer; HTML gets a Content-Security-Policy;
  rate-limit headers are added where a route charged the caller's bucket (:meth:`Guard.charge`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.types import Scope

from samo_serve.errors import Forbidden, HeadersTooLarge, RateLimited, Unauthorized
from samo_serve.http.api_keys import SCOPES, KeyStore
from samo_serve.http.rate_limit import RateLimiter
from samo_serve.settings import Settings
from samo_serve.storage.circuit import CircuitBreaker
from samo_serve.storage.redis_cache import redis_client

__all__ = ["HTML_CSP", "PUBLIC_PATHS", "SECURITY_HEADERS", "Caller", "Guard", "caller", "needs", "require"]

log = logging.getLogger(__name__)

#: reachable without a key and outside the in-flight bound (probes must answer under overload; the
#: dashboard page holds no data: it reads /stats with the key given as ?key=)
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"}  # probes, the native and the V2 ones
    | {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/dashboard"}
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# /docs loads Swagger UI from jsdelivr with an inline bootstrap script; our own pages need only 'self'.
HTML_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


#: an open service (no keys): one tenant, every scope, as before keys had scopes
_OPEN_SCOPES = frozenset(SCOPES)


class Caller(NamedTuple):
    """Who is asking: the tenant their data lives in, and what they may do."""

    tenant_id: str
    scopes: frozenset[str]

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes


def caller(request: Request) -> Caller:
    state = request.scope.get("state", {})
    return Caller(state.get("tenant_id", ""), state.get("scopes", _OPEN_SCOPES))


def require(request: Request, scope: str) -> Caller:
    """The caller, when their key holds ``scope`` (``admin`` holds every scope); 403 FORBIDDEN otherwise."""
    who = caller(request)
    if scope not in who.scopes and not who.admin:
        raise Forbidden(f"this API key lacks the `{scope}` scope (samo-serve keys create --scope {scope})")
    return who


def needs(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency asking for ``scope``: listed first, it answers 403 before input is validated or charged."""

    async def dependency(request: Request) -> None:
        require(request, scope)

    return dependency


def _presented_key(scope: Scope) -> str:
    """The key sent as ``X-API-Key: <key>`` or ``Authorization: ApiKey <key>``; "" when none."""
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return str(value.decode("latin-1"))
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "apikey":
                return str(token)
    return ""


class Guard:
    def __init__(self, settings: Settings, keys: KeyStore, limiter: RateLimiter | None) -> None:
        self.keys = keys
        self.limiter = limiter
        self.max_in_flight = settings.limits.max_in_flight_requests
        self.max_header_count = settings.limits.max_header_count
        self.max_header_bytes = settings.limits.max_header_bytes
        self.in_flight = 0
        self.refused_overload = 0
        self.refused_auth = 0
        self.refused_rate = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        limiter = None
        if settings.rate_limits.enabled:
            cache = settings.cache
            redis = (
                redis_client(settings.redis_url, cache.l2_timeout_s, cache.l2_max_connections)
                if settings.redis_url
                else None
            )
            limiter = RateLimiter(
                settings.rate_limits, redis, CircuitBreaker(cache.circuit_failures, cache.circuit_open_s)
            )
        return cls(settings, KeyStore(settings.api_keys_file), limiter)

    def check_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """431 HEADERS_TOO_LARGE past ``limits.max_header_count`` headers or ``max_header_bytes`` in all."""
        if len(headers) > self.max_header_count or sum(len(n) + len(v) for n, v in headers) > self.max_header_bytes:
            raise HeadersTooLarge(f"at most {self.max_header_count} headers of {self.max_header_bytes} bytes in all")

    def authenticate(self, scope: Scope) -> None:
        """Record the caller's key (or client address) in ``scope["state"]``; raise 401 when a key is missing."""
        state = scope.setdefault("state", {})
        if not self.keys.enabled:
            client = scope.get("client")
            state["rate_identity"] = f"ip:{client[0] if client else 'unknown'}"
            state["rate_tier"] = None
            state["tenant_id"], state["scopes"] = "", _OPEN_SCOPES
            return
        presented = _presented_key(scope)
        key = self.keys.authenticate(presented) if presented else None
        if key is None:
            self.refused_auth += 1
            raise Unauthorized(
                "send an active API key as `Authorization: ApiKey <key>` or `X-API-Key: <key>`"
                if not presented
                else "API key not recognized or revoked",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        state["api_key_id"] = key.id
        state["rate_identity"] = f"key:{key.id}"
        state["rate_tier"] = key.tier
        state["tenant_id"], state["scopes"] = key.tenant_id, frozenset(key.scopes)

    def operator(self, scope: Scope) -> bool:
        """Whether this request, on a route that asks for no key, may see the service's counters: an open
        service (no keys), or an active key with the ``admin`` scope."""
        if not self.keys.enabled:
            return True
        presented = _presented_key(scope)
        key = self.keys.authenticate(presented) if presented else None
        return key is not None and "admin" in key.scopes

    async def charge(self, request: Request, cost: int) -> None:
        """Take ``cost`` tokens (texts; a document's segments) from the caller's bucket; 429 when it is empty."""
        if self.limiter is None:
            return
        state = request.scope.setdefault("state", {})
        decision = await self.limiter.check(state.get("rate_identity", "ip:unknown"), state.get("rate_tier"), cost)
        state["rate_limit_headers"] = decision.headers()
        if not decision.allowed:
            self.refused_rate += 1
            tier = self.limiter.tier(state.get("rate_tier"))
            if cost > tier.burst:
                message = (
                    f"{cost} texts at once (a document counts its sentences) is more than this caller's burst "
                    f"of {tier.burst}: split the batch or the document"
                )
            else:
                message = f"rate limit of {tier.per_second:g} texts/s (burst {tier.burst}) reached"
            raise RateLimited(message, headers=decision.headers())

    def snapshot(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "refused": {
                "overloaded": self.refused_overload,
                "unauthorized": self.refused_auth,
                "rate_limited": self.refused_rate,
            },
            "auth": self.keys.enabled,
            "rate_limits": self.limiter is not None,
        }

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()
