"""Cache keys (model version, normalization, odd text) and the L1 LRU+TTL cache."""

from __future__ import annotations

import time

import numpy as np
import pytest

from samo_serve.core.results import CachedResult
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.storage.cache import L1Cache, cache_key, normalize_text


def _result(value: float = 0.5) -> CachedResult:
    return CachedResult(np.full(28, value, dtype=np.float32), truncated=False)


# ------------------------------------------------------------------------------------------ the key


def test_key_is_a_sha256_hex() -> None:
    key = cache_key("m-1", "hello")
    assert len(key) == 64
    int(key, 16)


def test_key_is_deterministic() -> None:
    assert cache_key("m-1", "hello") == cache_key("m-1", "hello")


def test_key_includes_the_model_version() -> None:
    assert cache_key("m-aaaaaaaaaaaa", "hello") != cache_key("m-bbbbbbbbbbbb", "hello")


def test_version_and_text_do_not_run_together() -> None:
    assert cache_key("ab", "c") != cache_key("a", "bc")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("hello world", "  hello   world  "),
        ("hello world", "hello\tworld\n"),
        ("hello world", "hello\r\n\r\nworld"),
        ("café", "cafe\u0301"),  # NFC == NFD
    ],
    ids=["spaces", "tab-newline", "crlf", "nfc-nfd"],
)
def test_equivalent_texts_share_a_key(a: str, b: str) -> None:
    assert cache_key("m", a) == cache_key("m", b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("hello world", "Hello world"), ("hello world", "helloworld"), ("a", "b"), ("happy", "happy!")],
    ids=["case", "joined", "different", "punctuation"],
)
def test_different_texts_get_different_keys(a: str, b: str) -> None:
    assert cache_key("m", a) != cache_key("m", b)


@pytest.mark.parametrize(
    "text",
    ["", "\ud800", "a\udfffb", "\ud83d\ude00", "😀🎉", "مرحبا", "e\u0301", "x" * 100_000, "\x00"],
    ids=[
        "empty",
        "lone-high",
        "lone-low-inside",
        "surrogate-pair",
        "emoji",
        "rtl",
        "combining",
        "100k",
        "nul",
    ],
)
def test_odd_texts_do_not_crash(text: str) -> None:
    assert len(cache_key("m", text)) == 64


def test_lone_surrogates_differ() -> None:
    assert cache_key("m", "\ud800") != cache_key("m", "\ud801")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("  a  b  ", "a b"), ("a\n\tb", "a b"), ("", ""), ("   ", ""), ("cafe\u0301", "café")],
    ids=["spaces", "tab-newline", "empty", "blank", "nfc"],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


EQUIVALENT_BY_KEY = [
    pytest.param("hello world", "  hello \t world\n", id="spaces"),
    pytest.param("café au lait", "cafe\u0301 au lait", id="nfc-nfd"),
]
CONTROL_SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT_BY_KEY)
def test_texts_sharing_a_key_tokenize_identically(tokenizer: TextTokenizer, a: str, b: str) -> None:
    """The cache is only correct if texts with one key are texts the model cannot tell apart."""
    assert cache_key("m", a) == cache_key("m", b)
    ea, eb = tokenizer.encode_batch([a]), tokenizer.encode_batch([b])
    assert ea.ids.tolist() == eb.ids.tolist()


@pytest.mark.parametrize("sep", CONTROL_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in CONTROL_SEPARATORS])
def test_control_separators_get_their_own_key(tokenizer: TextTokenizer, sep: str) -> None:
    """The tokenizer deletes these (it does not split on them), so they must not collapse to a space."""
    a, b = "hello world", f"hello{sep}world"
    assert tokenizer.encode_batch([a]).ids.tolist() != tokenizer.encode_batch([b]).ids.tolist()
    assert cache_key("m", a) != cache_key("m", b)


# ------------------------------------------------------------------------------------------ L1 cache


def test_hit_and_miss_counters() -> None:
    cache = L1Cache(max_entries=10, ttl_s=60)
    assert cache.get("k") is None
    value = _result()
    cache.set("k", value)
    assert cache.get("k") is value
    assert cache.get("k") is value
    assert cache.get("other") is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.sets) == (2, 2, 1)
    assert cache.snapshot() == {"hits": 2, "misses": 2, "sets": 1, "errors": 0, "entries": 1, "hit_rate": 0.5}
    assert len(cache) == 1


def test_stats_of_an_unused_cache() -> None:
    assert L1Cache(1, 1.0).snapshot() == {"hits": 0, "misses": 0, "sets": 0, "errors": 0, "entries": 0, "hit_rate": 0.0}


def test_overwrite_counts_a_set_but_one_entry() -> None:
    cache = L1Cache(10, 60)
    cache.set("k", _result(0.1))
    cache.set("k", _result(0.2))
    assert len(cache) == 1
    assert cache.stats.sets == 2
    hit = cache.get("k")
    assert hit is not None
    assert hit.scores[0] == pytest.approx(0.2)


def test_lru_eviction() -> None:
    cache = L1Cache(max_entries=2, ttl_s=60)
    cache.set("a", _result())
    cache.set("b", _result())
    assert cache.get("a") is not None  # a is now the most recently used
    cache.set("c", _result())
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


def test_ttl_expiry() -> None:
    cache = L1Cache(max_entries=10, ttl_s=0.05)
    cache.set("k", _result())
    assert cache.get("k") is not None
    time.sleep(0.1)
    assert cache.get("k") is None
    assert cache.stats.misses == 1
    assert len(cache) == 0


def test_cached_result_is_frozen() -> None:
    result = _result()
    with pytest.raises(AttributeError):
        result.truncated = True  # type: ignore[misc]
