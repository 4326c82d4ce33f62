"""The cache router: L1 (this process) -> L2 (Redis) -> L3 (request log), promoting hits upwards.

Each level is optional. A hit at a lower level is copied into the levels above it, so a repeat is
answered from the nearest one next time. Keys carry the model version (samo_serve.storage.cache.text_keys),
so a new model never serves an old model's result from any level.
"""

from __future__ import annotations

from typing import Any

from samo_serve.core.results import CachedResult
from samo_serve.errors import AnalyticsUnavailable
from samo_serve.observability.tracing import Tracing
from samo_serve.storage.cache import L1Cache, TextKeys, cache_key_of
from samo_serve.storage.redis_cache import RedisCache
from samo_serve.storage.request_log import RequestLog

__all__ = ["CacheRouter", "Found"]

#: cache key -> (result, level that answered: "l1" | "l2" | "l3" | "miss")
Found = dict[str, tuple[CachedResult, str]]


class CacheRouter:
    def __init__(
        self,
        model_version: str,
        labels: list[str],
        l1: L1Cache | None = None,
        l2: RedisCache | None = None,
        l3: RequestLog | None = None,
    ) -> None:
        self.model_version = model_version
        self.labels = labels
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
        #: spans of the L2 and L3 lookups (the service passes its own)
        self.tracing = Tracing.off()

    async def forget(self, texts: list[tuple[str, str, str]], shared_across_tenants: bool = False) -> None:
        """Erasure: the entries of these (model_version, tenant_id, text_hash) out of this process's L1 and
        out of Redis.

        Raises:
            AnalyticsUnavailable: Redis could not be reached (the erasure is to be retried).
        """
        keys = [cache_key_of(v, "" if shared_across_tenants else tenant, h) for v, tenant, h in texts]
        if self.l1 is not None:
            self.l1.delete(keys)
        if self.l2 is not None and keys:
            try:
                await self.l2.delete(keys)
            except Exception as exc:
                raise AnalyticsUnavailable(f"erasure could not reach the cache: {type(exc).__name__}; retry") from exc

    async def lookup(self, keys: list[TextKeys], tenant_id: str | None = None) -> Found:
        """Results found for these keys at any level (each distinct key looked up once per level).

        L1 and L2 keys carry the tenant already; L3 looks only at ``tenant_id``'s rows (None: anyone's).
        """
        found: Found = {}
        missing: dict[str, TextKeys] = {}
        for k in keys:
            if k.cache_key in found or k.cache_key in missing:
                continue
            if self.l1 is not None and (hit := self.l1.get(k.cache_key)) is not None:
                found[k.cache_key] = (hit, "l1")
            else:
                missing[k.cache_key] = k
        if missing and self.l2 is not None:
            with self.tracing.span("cache.l2", **{"samo.keys": len(missing)}):
                results = await self.l2.get_many(list(missing))
            for key, result in zip(list(missing), results, strict=True):
                if result is not None:
                    found[key] = (result, "l2")
                    del missing[key]
                    if self.l1 is not None:
                        self.l1.set(key, result)
        if missing and self.l3 is not None:
            hashes = [k.text_hash for k in missing.values()]
            with self.tracing.span("cache.l3", **{"samo.keys": len(hashes)}):
                by_hash = await self.l3.lookup(self.model_version, hashes, self.labels, tenant_id)
            promoted = {}
            for key, k in list(missing.items()):
                if (result := by_hash.get(k.text_hash)) is not None:
                    found[key] = (result, "l3")
                    promoted[key] = result
                    del missing[key]
            self._fill_upper(promoted)
        return found

    def fill(self, results: dict[str, CachedResult]) -> None:
        """Store freshly classified results at every level above the model (L3 fills from the log)."""
        self._fill_upper(results)

    def _fill_upper(self, results: dict[str, CachedResult]) -> None:
        if not results:
            return
        if self.l1 is not None:
            for key, result in results.items():
                self.l1.set(key, result)
        if self.l2 is not None:
            self.l2.set_later(results)

    def snapshot(self) -> dict[str, Any]:
        return {
            "l1": self.l1.snapshot() if self.l1 is not None else None,
            "l2": self.l2.snapshot() if self.l2 is not None else None,
            "l3": self.l3.l3_stats.snapshot() if self.l3 is not None else None,
        }
