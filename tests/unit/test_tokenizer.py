"""Tokenizer and TokenBatch: truncation flags, bad and unusual input, flat layout, pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch

UNUSUAL_TEXTS = [
    "I love this 😀🎉🔥",
    "👨‍👩‍👧‍👦 family emoji with ZWJ",
    "مرحبا بالعالم، هذا رائع",
    "שלום עולם",
    "e\u0301cole cafe\u0301 Z\u0335\u0321a\u0336lgo\u0337",  # combining marks
    "日本語のテキストです",
    "zero\u200bwidth\u200djoiner\ufeff",
    "\u202eright-to-left override\u202c",
    "tabs\tand\nnewlines\r\n",
    "\x00\x01 control characters \x7f",
]
UNUSUAL_IDS = [
    "emoji",
    "zwj-emoji",
    "arabic",
    "hebrew",
    "combining",
    "cjk",
    "zero-width",
    "rtl-override",
    "whitespace",
    "control",
]


def _text_ids(batch: TokenBatch, i: int) -> list[int]:
    return batch.ids[batch.offsets[i] : batch.offsets[i + 1]].tolist()


@pytest.mark.parametrize("max_length", [1, 0, -5], ids=["one", "zero", "negative"])
def test_max_length_below_two_is_refused(model_dir: Path, card: ModelCard, max_length: int) -> None:
    with pytest.raises(ValueError, match="max_length"):
        TextTokenizer(model_dir / card.tokenizer_file, max_length)


def test_missing_tokenizer_file(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - tokenizers raises its own exception type
        TextTokenizer(tmp_path / "nope.json", 64)


def test_empty_list(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch([])
    assert len(batch) == 0
    assert batch.offsets.tolist() == [0]
    assert batch.ids.shape == (0,)
    assert batch.truncated.shape == (0,)
    assert batch.ids.dtype == np.int32
    assert batch.offsets.dtype == np.int64
    assert batch.truncated.dtype == np.bool_


def test_empty_string(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch([""])
    assert len(batch) == 1
    assert 0 <= int(batch.lengths[0]) <= 2  # at most the special tokens
    assert not batch.truncated[0]


def test_huge_text_is_truncated_and_flagged(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch(["word " * 20_000, "short text"])
    assert len("word " * 20_000) == 100_000
    assert batch.lengths[0] == tokenizer.max_length
    assert batch.truncated.tolist() == [True, False]
    assert batch.lengths[1] < tokenizer.max_length


def test_single_huge_unbroken_string_stays_within_max_length(tokenizer: TextTokenizer) -> None:
    # WordPiece maps a "word" longer than its max_input_chars_per_word to one [UNK] token, so a
    # 100k-character string without spaces is short after tokenization (and not flagged truncated).
    batch = tokenizer.encode_batch(["x" * 100_000])
    assert 1 <= batch.lengths[0] <= tokenizer.max_length


def test_short_texts_are_not_truncated(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch(["I am happy", "so sad", "what?"])
    assert not batch.truncated.any()
    assert (batch.lengths <= tokenizer.max_length).all()


@pytest.mark.parametrize("text", UNUSUAL_TEXTS, ids=UNUSUAL_IDS)
def test_unusual_texts_encode(tokenizer: TextTokenizer, text: str) -> None:
    batch = tokenizer.encode_batch([text])
    assert len(batch) == 1
    assert 1 <= int(batch.lengths[0]) <= tokenizer.max_length
    assert (batch.ids >= 0).all()


def test_batch_equals_per_text(tokenizer: TextTokenizer) -> None:
    texts = [*UNUSUAL_TEXTS, "", "word " * 500, "plain"]
    batch = tokenizer.encode_batch(texts)
    assert len(batch) == len(texts)
    for i, text in enumerate(texts):
        single = tokenizer.encode_batch([text])
        assert _text_ids(batch, i) == _text_ids(single, 0)
        assert bool(batch.truncated[i]) == bool(single.truncated[0])


def test_no_padding_in_batches(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch(["a", "a much longer text with many more words in it"])
    assert batch.lengths[0] < batch.lengths[1]
    assert batch.offsets[-1] == batch.ids.shape[0]


def test_exact_max_length_is_not_truncated(tokenizer: TextTokenizer) -> None:
    """Grow a text word by word: it is flagged truncated exactly when its encoding hits the cap."""
    words: list[str] = []
    for _ in range(200):
        words.append("hello")
        batch = tokenizer.encode_batch([" ".join(words)])
        length, truncated = int(batch.lengths[0]), bool(batch.truncated[0])
        if truncated:
            assert length == tokenizer.max_length
            break
        assert length <= tokenizer.max_length
    else:
        pytest.fail("200 words never hit the length cap")
    # one word fewer fits exactly (or nearly) without being flagged
    fits = tokenizer.encode_batch([" ".join(words[:-1])])
    assert not fits.truncated[0]


def test_token_batch_from_sequences() -> None:
    batch = TokenBatch.from_sequences([[1, 2, 3], [], [4]], [False, False, True])
    assert len(batch) == 3
    assert batch.ids.tolist() == [1, 2, 3, 4]
    assert batch.offsets.tolist() == [0, 3, 3, 4]
    assert batch.lengths.tolist() == [3, 0, 1]
    assert batch.truncated.tolist() == [False, False, True]
    assert batch.ids.dtype == np.int32
    assert batch.offsets.dtype == np.int64


def test_token_batch_pickles(tokenizer: TextTokenizer) -> None:
    batch = tokenizer.encode_batch(["one", "two three", "word " * 300])
    back = pickle.loads(pickle.dumps(batch))
    np.testing.assert_array_equal(back.ids, batch.ids)
    np.testing.assert_array_equal(back.offsets, batch.offsets)
    np.testing.assert_array_equal(back.truncated, batch.truncated)
