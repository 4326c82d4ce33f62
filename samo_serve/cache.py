"""Result caching. L1: a per-process LRU with TTL (cachetools). Keys include the model version."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from cachetools import TTLCache

__all__ = ["CachedResult", "L1Cache", "cache_key", "normalize_text"]


@dataclass(frozen=True)
class CachedResult:
    scores: np.ndarray  # float32 [n_labels]
    truncated: bool


_WHITESPACE = re.compile(r"[ \t\n\r]+")


def normalize_text(text: str) -> str:
    """NFC, trimmed, runs of space/tab/newline collapsed: what a BERT-style tokenizer cannot tell apart.

    Only these four count: ``str.split()`` also splits on separators such as U+001C that the tokenizer
    deletes instead, which made "hello\x1cworld" and "hello world" share a key.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip(" ")


def cache_key(model_version: str, text: str) -> str:
    """sha256 over the model version and the normalized text; a new model never hits an old entry."""
    digest = hashlib.sha256()
    digest.update(model_version.encode())
    digest.update(b"\x00")
    digest.update(normalize_text(text).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class L1Cache:
    """In-process LRU + TTL cache with hit/miss counters."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._cache: TTLCache[str, CachedResult] = TTLCache(maxsize=max_entries, ttl=ttl_s)
        self.hits = 0
        self.misses = 0
        self.sets = 0

    def get(self, key: str) -> CachedResult | None:
        value = self._cache.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def set(self, key: str, value: CachedResult) -> None:
        self._cache[key] = value
        self.sets += 1

    def __len__(self) -> int:
        return len(self._cache)

    def stats(self) -> dict[str, float | int]:
        lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "entries": len(self._cache),
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
        }
