"""Texts to send: a file of the user's, or a small built-in sample of everyday sentences."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from samo_serve.modeling.documents import join_sentences
from samo_serve.modeling.goemotions import read_texts, unique_texts

__all__ = ["builtin_corpus", "entry_picker", "load_corpus"]

_OPENINGS = ("I love", "I hate", "I'm worried about", "Thank you for", "Wow, look at", "I miss", "I'm so proud of",
             "Ugh,", "I can't believe", "Honestly,", "Why does nobody care about", "So grateful for")  # fmt: skip
_SUBJECTS = ("this song", "my job", "the weather today", "our team", "that movie", "the news", "my dog",
             "the new update", "my best friend", "this city", "the game last night", "my exam results")  # fmt: skip
_ENDINGS = ("really.", "honestly!", "so much", "lol", "again?", "and I don't know what to do.", ":)",
            "it made my day", "this is ridiculous", "")  # fmt: skip


def builtin_corpus() -> list[str]:
    """1,440 distinct short sentences in the register of GoEmotions (Reddit comments), written for tests."""
    return [f"{o} {s} {e}".strip() for o in _OPENINGS for s in _SUBJECTS for e in _ENDINGS]


def load_corpus(path: Path | None) -> list[str]:
    """One text per line (``.txt``), the first column of a TSV (GoEmotions' format), ``{"text": …}`` JSON lines,
    or a GoEmotions folder (its test, dev and train texts); None: the built-in sample."""
    if path is None:
        return builtin_corpus()
    if path.is_dir():
        texts = unique_texts(path)
    elif path.suffix == ".tsv":
        texts = read_texts(path)
    else:
        with path.open(encoding="utf-8") as f:
            if path.suffix in (".jsonl", ".ndjson"):
                texts = [json.loads(line)["text"] for line in f if line.strip()]
            else:
                texts = [line.rstrip("\n") for line in f if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no texts found")
    return list(dict.fromkeys(texts))  # distinct, in file order


# the mark TextPicker appends to a unique (" #3f9a1c-7") or reused (" (2)") text, after its punctuation
_TRAILING_MARK = re.compile(r"^(.*?)([.!?…]+[\"'”’)\]]*)( (?:#[0-9a-f]+-\d+|\(\d+\)))$", re.DOTALL)


def entry_picker(pick: Callable[[], str], sentences: int) -> Callable[[], str]:
    """Journal-like entries: each the next ``sentences`` texts of ``pick`` joined as sentences (a full stop
    where one ends without), so the service reads it sentence by sentence once it is longer than the model's
    window. Every sentence comes from ``pick``: its repeats and unique numbering apply per sentence (the
    number goes before the sentence's final punctuation: after it, it would be read as a sentence of its own).
    """
    if sentences < 1:
        raise ValueError(f"sentences per entry must be >= 1, got {sentences}")

    def entry() -> str:
        return join_sentences([_TRAILING_MARK.sub(r"\1\3\2", pick()) for _ in range(sentences)])[0]

    return entry
