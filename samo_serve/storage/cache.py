"""Result caching primitives: keys, the compact value format, per-level stats, and L1.

L1 is a per-process LRU with TTL (cachetools). L2 (Redis) is in :mod:`samo_serve.storage.redis_cache`, L3 is
the request log; :mod:`samo_serve.storage.cache_router` puts the levels together.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cachetools import TTLCache

from samo_serve.core.results import CachedResult

__all__ = [
    "L1Cache",
    "LevelStats",
    "TextKeys",
    "cache_key",
    "decode_result",
    "encode_result",
    "normalize_text",
    "text_keys",
]


_WHITESPACE = re.compile(r"[ \t\n\r]+")


def normalize_text(text: str) -> str:
    """NFC, trimmed, runs of space/tab/newline collapsed: what a BERT-style tokenizer cannot tell apart.

    Only these four count: ``str.split()`` also splits on separators such as U+001C that the tokenizer
    deletes instead, which made "hello\x1cworld" and "hello world" share a key.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip(" ")


@dataclass(frozen=True)
class TextKeys:
    #: sha256(model version, tenant, text_hash): the L1/L2 key. Keyed through ``text_hash``: whoever reads
    #: Redis (or a dump of it) cannot test whether a tenant sent a sentence without the server's key. A new
    #: model never hits an old entry, and one tenant never hits another's (unless
    #: cache.shared_across_tenants: then the tenant is "")
    cache_key: str
    #: HMAC-SHA256 of the normalized text under the server's key (TextHasher; plain sha256 only where
    #: nothing leaves the process: no request log and no Redis): what the log stores instead of the text,
    #: and L3's lookup key
    text_hash: str


def text_keys(
    model_version: str, text: str, tenant: str = "", text_hash: Callable[[bytes], str] | None = None
) -> TextKeys:
    """The keys of ``text``; ``text_hash`` hashes the normalized text (the request log's TextHasher)."""
    normalized = normalize_text(text).encode("utf-8", "surrogatepass")
    hashed = text_hash(normalized) if text_hash is not None else hashlib.sha256(normalized).hexdigest()
    return TextKeys(cache_key_of(model_version, tenant, hashed), hashed)


def cache_key_of(model_version: str, tenant: str, text_hash: str) -> str:
    """The L1/L2 key of a text by its hash (also what erasure finds a person's entries by, from log rows)."""
    # a tenant never holds NUL (api_keys.check_tenant), nor a version: the three parts stay apart
    return hashlib.sha256(f"{model_version}\x00{tenant}\x00{text_hash}".encode()).hexdigest()


def cache_key(model_version: str, text: str, tenant: str = "") -> str:
    return text_keys(model_version, text, tenant).cache_key


_TRUNCATED = 1


def encode_result(result: CachedResult) -> bytes:
    """One flag byte + little-endian float32 scores: 113 bytes for 28 labels, exact, no JSON parsing."""
    flags = _TRUNCATED if result.truncated else 0
    return bytes((flags,)) + np.asarray(result.scores, dtype="<f4").tobytes()


def decode_result(value: bytes, n_labels: int) -> CachedResult | None:
    """The result, or None for a value of another shape (a foreign or corrupt entry is a miss)."""
    if len(value) != 1 + 4 * n_labels:
        return None
    scores = np.frombuffer(value, dtype="<f4", offset=1).astype(np.float32)
    return CachedResult(scores, bool(value[0] & _TRUNCATED))


@dataclass
class LevelStats:
    hits: int = 0
    misses: int = 0
    sets: int = 0
    errors: int = 0

    def snapshot(self) -> dict[str, float | int]:
        lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "errors": self.errors,
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
        }


class L1Cache:
    """In-process LRU + TTL cache with hit/miss counters."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._cache: TTLCache[str, CachedResult] = TTLCache(maxsize=max_entries, ttl=ttl_s)
        self.stats = LevelStats()

    def get(self, key: str) -> CachedResult | None:
        value = self._cache.get(key)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def set(self, key: str, value: CachedResult) -> None:
        self._cache[key] = value
        self.stats.sets += 1

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._cache.pop(key, None)

    def __len__(self) -> int:
        return len(self._cache)

    def snapshot(self) -> dict[str, float | int]:
        return {**self.stats.snapshot(), "entries": len(self._cache)}
