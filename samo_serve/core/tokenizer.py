"""Batch tokenization with HF ``tokenizers`` into a compact, picklable :class:`TokenBatch`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

if TYPE_CHECKING:
    from samo_serve.core.model_card import ModelCard

__all__ = ["TextTokenizer", "TokenBatch"]


@dataclass(frozen=True)
class TokenBatch:
    """Token ids of N texts, flat: text i is ``ids[offsets[i]:offsets[i+1]]``.

    One flat int32 array and two small ones pickle in microseconds, where a list of N arrays
    pays a per-object cost on every Ray handle hop.
    """

    ids: np.ndarray  # int32 [total_tokens]
    offsets: np.ndarray  # int64 [n + 1]
    truncated: np.ndarray  # bool [n]
    #: the caller's W3C traceparent and when it sent the batch (``time.time()``): the model replica's spans
    #: join the caller's trace (observability.tracing); None when the call is not traced
    traceparent: str | None = None
    sent_at: float = 0.0

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_sequences(cls, seqs: list[list[int]], truncated: list[bool]) -> TokenBatch:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids=flat, offsets=offsets, truncated=np.asarray(truncated, dtype=bool))


class TextTokenizer:
    """Encodes texts to token ids, truncating to ``max_length`` and flagging truncated texts.

    Args:
        tokenizer_path: a ``tokenizer.json`` file.
        max_length: the model's sequence limit (from the model card).
    """

    def __init__(self, tokenizer_path: Path, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self._tok = Tokenizer.from_file(str(tokenizer_path))
        # all-MiniLM's tokenizer.json pads every text to 128 tokens; padding happens per batch
        # in the model runner instead (measured: 5x faster on short texts).
        self._tok.no_padding()
        # the same tokenizer, truncating nothing: token counts and offsets of long texts (documents)
        self._full = Tokenizer.from_str(self._tok.to_str())
        self._full.no_truncation()
        self._tok.enable_truncation(max_length=max_length)
        self.max_length = max_length
        #: content tokens a text may have and still be read whole ([CLS] and [SEP] take two)
        self.window = max_length - 2

    @classmethod
    def for_card(cls, card: ModelCard, model_dir: Path) -> TextTokenizer:
        """The tokenizer a model card names, with the card's sequence limit."""
        return cls(model_dir / card.tokenizer_file, card.max_length)

    def fits(self, text: str) -> bool:
        """True when the model reads ``text`` whole (the tokenizer would not truncate it).

        An ASCII text of at most ``window`` characters fits without tokenizing: every BERT token covers
        at least one character there (NFD can expand other scripts: a Hangul syllable is three tokens).
        """
        if len(text) <= self.window and text.isascii():
            return True
        return len(self._full.encode(text, add_special_tokens=False)) <= self.window

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` str offsets into ``text`` of each content token, none dropped (no truncation)."""
        return list(self._full.encode(text, add_special_tokens=False).offsets)

    def encode_batch(self, texts: list[str]) -> TokenBatch:
        if not texts:
            return TokenBatch.from_sequences([], [])
        encodings = self._tok.encode_batch(texts)
        return TokenBatch.from_sequences([e.ids for e in encodings], [bool(e.overflowing) for e in encodings])
