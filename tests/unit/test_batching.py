"""Pure batching logic: count, flatten/unflatten, merge/split, length buckets, padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from samo_serve.core.batching import (
    count_texts,
    flatten,
    merge_token_batches,
    pad_rows,
    plan_buckets,
    split_rows,
    unflatten,
)
from samo_serve.core.tokenizer import TokenBatch


def _random_batch(rng: np.random.Generator, n: int, max_len: int = 40) -> TokenBatch:
    seqs = [rng.integers(1, 30_000, size=int(rng.integers(0, max_len + 1))).tolist() for _ in range(n)]
    return TokenBatch.from_sequences(seqs, (rng.random(n) < 0.2).tolist())


def _seqs(batch: TokenBatch) -> list[list[int]]:
    return [batch.ids[batch.offsets[i] : batch.offsets[i + 1]].tolist() for i in range(len(batch))]


# ---------------------------------------------------------------------------------------- count_texts


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], 0),
        ([["a"]], 1),
        ([["a", "b"], [], ["c"]], 3),
        ([TokenBatch.from_sequences([[1], [2, 3]], [False, False]), ["x"]], 3),
        ([TokenBatch.from_sequences([], [])], 0),
    ],
    ids=["no-calls", "one-text", "lists", "token-batch-and-list", "empty-token-batch"],
)
def test_count_texts(items: Sequence[object], expected: int) -> None:
    assert count_texts(items) == expected  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- flatten/unflatten


@pytest.mark.parametrize(
    "groups",
    [[], [[]], [["a"]], [["a", "b"], [], ["c", "d", "e"]], [[], [], []]],
    ids=["none", "one-empty", "one", "mixed", "all-empty"],
)
def test_flatten_unflatten_round_trip(groups: list[list[str]]) -> None:
    flat, sizes = flatten(groups)
    assert flat == [x for g in groups for x in g]
    assert sizes == [len(g) for g in groups]
    assert unflatten(flat, sizes) == groups


@pytest.mark.parametrize(
    ("flat", "sizes"),
    [(["a", "b"], [1]), (["a"], [1, 1]), ([], [1]), (["a"], [])],
    ids=["too-many-items", "too-few-items", "empty-flat", "no-sizes"],
)
def test_unflatten_size_mismatch(flat: list[str], sizes: list[int]) -> None:
    with pytest.raises(ValueError, match="sizes add up"):
        unflatten(flat, sizes)


# -------------------------------------------------------------------------------- merge / split rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3], ids=lambda s: f"seed{s}")
def test_merge_token_batches_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batches = [_random_batch(rng, int(rng.integers(0, 6))) for _ in range(int(rng.integers(1, 6)))]
    merged = merge_token_batches(batches)
    assert len(merged) == count_texts(batches)
    assert _seqs(merged) == [s for b in batches for s in _seqs(b)]
    assert merged.truncated.tolist() == [t for b in batches for t in b.truncated.tolist()]
    assert merged.offsets[0] == 0
    assert merged.offsets[-1] == merged.ids.shape[0]
    assert merged.offsets.dtype == np.int64
    # the model's [n, labels] output splits back into one array per call
    rows = np.arange(len(merged) * 3, dtype=np.float32).reshape(len(merged), 3)
    parts = split_rows(rows, [len(b) for b in batches])
    assert [p.shape[0] for p in parts] == [len(b) for b in batches]
    np.testing.assert_array_equal(np.concatenate(parts), rows)


def test_merge_single_batch_is_identity() -> None:
    batch = TokenBatch.from_sequences([[1, 2]], [False])
    assert merge_token_batches([batch]) is batch


def test_merge_with_empty_batches() -> None:
    a = TokenBatch.from_sequences([], [])
    b = TokenBatch.from_sequences([[5, 6], [7]], [True, False])
    merged = merge_token_batches([a, b, a])
    assert _seqs(merged) == [[5, 6], [7]]
    assert merged.truncated.tolist() == [True, False]


@pytest.mark.parametrize(
    "sizes",
    [[4], [1, 3], [2, 0, 2], [0, 4], [1, 1, 1, 1]],
    ids=["one", "two", "empty-middle", "empty-first", "ones"],
)
def test_split_rows(sizes: list[int]) -> None:
    rows = np.arange(8).reshape(4, 2)
    parts = split_rows(rows, sizes)
    assert [p.shape[0] for p in parts] == sizes
    np.testing.assert_array_equal(np.concatenate(parts), rows)


# ------------------------------------------------------------------------------------- plan_buckets


def _check_buckets(lengths: np.ndarray, buckets: list[np.ndarray], max_batch: int, ratio: float) -> None:
    seen = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)
    assert sorted(seen.tolist()) == list(range(len(lengths))), "every index exactly once"
    for bucket in buckets:
        assert 1 <= len(bucket) <= max_batch
        lens = lengths[bucket]
        assert lens.max() <= lens.min() * ratio + 8, "within-bucket length ratio bound"


@pytest.mark.parametrize(
    ("seed", "n", "max_batch", "ratio"),
    [
        (0, 1, 1, 1.5),
        (1, 10, 64, 1.5),
        (2, 100, 8, 1.5),
        (3, 200, 64, 1.0),
        (4, 257, 16, 2.0),
        (5, 50, 1, 1.5),
        (6, 1000, 128, 1.25),
    ],
    ids=["single", "small", "max8", "ratio1", "ratio2", "max1", "large"],
)
def test_plan_buckets_properties(seed: int, n: int, max_batch: int, ratio: float) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 65, size=n)
    buckets = plan_buckets(lengths, max_batch, ratio)
    _check_buckets(lengths, buckets, max_batch, ratio)


def test_plan_buckets_empty() -> None:
    assert plan_buckets(np.zeros(0, dtype=np.int64), 4) == []


def test_plan_buckets_equal_lengths_fill_to_max_batch() -> None:
    buckets = plan_buckets(np.full(10, 12), max_batch=4)
    assert [len(b) for b in buckets] == [4, 4, 2]


def test_plan_buckets_isolates_one_long_text() -> None:
    lengths = np.array([5, 6, 64, 5, 7])
    buckets = plan_buckets(lengths, max_batch=64)
    assert [sorted(b.tolist()) for b in buckets] == [[0, 1, 3, 4], [2]]


@pytest.mark.parametrize("max_batch", [0, -1], ids=["zero", "negative"])
def test_plan_buckets_bad_max_batch(max_batch: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        plan_buckets(np.array([3, 4]), max_batch)


# ------------------------------------------------------------------------------------------ pad_rows


def test_pad_rows() -> None:
    batch = TokenBatch.from_sequences([[1, 2, 3], [4], [5, 6]], [False, False, False])
    ids, mask = pad_rows(batch, np.array([2, 0]))
    assert ids.dtype == np.int64
    assert mask.dtype == np.int64
    assert ids.tolist() == [[5, 6, 0], [1, 2, 3]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_pad_rows_custom_pad_id_and_empty_text() -> None:
    batch = TokenBatch.from_sequences([[], [9, 9]], [False, False])
    ids, mask = pad_rows(batch, np.array([0, 1]), pad_id=-1)
    assert ids.tolist() == [[-1, -1], [9, 9]]
    assert mask.tolist() == [[0, 0], [1, 1]]


def test_pad_rows_no_rows() -> None:
    batch = TokenBatch.from_sequences([[1]], [False])
    ids, mask = pad_rows(batch, np.zeros(0, dtype=np.int64))
    assert ids.shape == (0, 0)
    assert mask.shape == (0, 0)


@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed{s}")
def test_pad_rows_recovers_each_text(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = _random_batch(rng, 20)
    for bucket in plan_buckets(batch.lengths, 6):
        ids, mask = pad_rows(batch, bucket)
        for row, text in zip(ids, bucket, strict=True):
            length = int(batch.lengths[text])
            assert row[:length].tolist() == _seqs(batch)[text]
        assert (mask.sum(axis=1) == batch.lengths[bucket]).all()
