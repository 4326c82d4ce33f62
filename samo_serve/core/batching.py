"""Pure batching logic: merge calls, count texts, bucket by length, pad, split results back.

``@serve.batch`` in deployments/ only wraps these; they are tested with plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from samo_serve.core.tokenizer import TokenBatch

T = TypeVar("T")

__all__ = [
    "count_texts",
    "flatten",
    "merge_token_batches",
    "pad_rows",
    "plan_buckets",
    "split_rows",
    "unflatten",
]


def count_texts(items: Sequence[Sequence[object] | TokenBatch]) -> int:
    """Batch size of a list of calls, counted in texts (``batch_size_fn`` for ``@serve.batch``)."""
    return sum(len(item) for item in items)


def flatten(groups: Sequence[Sequence[T]]) -> tuple[list[T], list[int]]:
    flat = [x for group in groups for x in group]
    return flat, [len(group) for group in groups]


def unflatten(flat: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    if sum(sizes) != len(flat):
        raise ValueError(f"sizes add up to {sum(sizes)}, got {len(flat)} items")
    out, start = [], 0
    for size in sizes:
        out.append(list(flat[start : start + size]))
        start += size
    return out


def merge_token_batches(batches: Sequence[TokenBatch]) -> TokenBatch:
    if len(batches) == 1:
        return batches[0]
    shifts = np.cumsum([0] + [int(b.offsets[-1]) for b in batches[:-1]])
    offsets = np.concatenate(
        [batches[0].offsets[:1]] + [b.offsets[1:] + s for b, s in zip(batches, shifts, strict=True)]
    )
    return TokenBatch(
        ids=np.concatenate([b.ids for b in batches]),
        offsets=offsets.astype(np.int64),
        truncated=np.concatenate([b.truncated for b in batches]),
    )


def split_rows(rows: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Split a [sum(sizes), ...] array back into one array per call."""
    return np.split(rows, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [rows]


def plan_buckets(lengths: np.ndarray, max_batch: int, max_pad_ratio: float = 1.5) -> list[np.ndarray]:
    """Group text indices into sub-batches of similar length.

    Texts are sorted by length; a bucket closes when it holds ``max_batch`` texts or when the next text
    is more than ``max_pad_ratio`` times as long as the bucket's shortest (plus 8 tokens of slack, so
    short texts are not split into tiny runs). One long text then pads only its neighbours, not the
    whole batch.
    """
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    order = np.argsort(lengths, kind="stable")
    buckets: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        limit = lengths[order[start]] * max_pad_ratio + 8
        end = start + 1
        while end < n and end - start < max_batch and lengths[order[end]] <= limit:
            end += 1
        buckets.append(order[start:end])
        start = end
    return buckets


def pad_rows(batch: TokenBatch, rows: np.ndarray, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad the texts ``rows`` of ``batch`` to their longest; int64 ids and attention mask."""
    lengths = batch.lengths[rows]
    width = int(lengths.max()) if len(rows) else 0
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
        start = int(batch.offsets[row])
        ids[i, :length] = batch.ids[start : start + length]
        mask[i, :length] = 1
    return ids, mask
