"""Documents: a text longer than the model's window, split into sentences and windows, scores aggregated.

A text that fits the window is one segment, the whole text: it is classified exactly as before. A longer
one is split into sentences by rules (measured against pysbd, syntok and blingfire on GoEmotions texts
joined into entries: as accurate on punctuated boundaries and 5-180x faster; docs/MODEL.md), and a
sentence longer than the window into overlapping token windows cut between words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np

from samo_serve.core.emoji_text import Demojized, demojize_mapped
from samo_serve.core.tokenizer import TextTokenizer

__all__ = [
    "AGGREGATIONS",
    "Plan",
    "Segment",
    "aggregate",
    "has_content",
    "iter_segments",
    "plan_text",
    "split_text",
]


@dataclass(frozen=True, slots=True)
class Segment:
    """``text[start:end]``: offsets count Python ``str`` characters (code points) of the text given."""

    start: int
    end: int


# A sentence ends at a run of terminal punctuation (closing quotes and brackets included) before
# whitespace, at a CJK full stop, or at a line break: journal entries break lines between thoughts.
_BOUNDARY = re.compile(r"[.!?…‼⁇⁈⁉]+[\"'”’»)\]]*(?=\s)|[。！？]+[”’」』)]*|\n")
# only titles and Latin shorthands: "no." or "co." end sentences too often ("I said no.")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "jr", "sr", "prof", "approx", "lt", "sgt"})
_ALNUM = re.compile(r"[^\W_]")
# punctuation, separators, controls, format characters: what a text made only of says nothing (a lone
# surrogate or a private-use character is read as [UNK], as before)
_NOT_CONTENT = ("P", "Z", "Cc", "Cf")
# ASCII emoticons made only of punctuation (":(", ":((", "(:", ";-)", ":/", ">:("): punctuation to Unicode,
# a feeling to the writer (GoEmotions has labelled ones); ":D", "<3" or "T_T" have a letter or digit already
_EMOTICON = re.compile(r"[:;=][-'^]?[()\[\]{}/\\|*@$<>]|[()\[\]{}/\\|<>][-'^]?[:;=]")

#: a text longer than this many characters per window token is not tried whole: ~4 is usual, and
#: tokenizing a 50,000-character entry whole before its sentences would double its cost
_MAX_CHARS_PER_TOKEN = 16
#: token windows of a long sentence share this share of the window with the next one, so a phrase
#: cut at one window's edge is read whole in its neighbour
_OVERLAP = 0.25


def has_content(text: str) -> bool:
    """True when ``text`` has a character that is not whitespace, punctuation or a control (emoji count), or
    an emoticon."""
    if _ALNUM.search(text) or _EMOTICON.search(text):
        return True
    return any(not unicodedata.category(c).startswith(_NOT_CONTENT) for c in text)


def split_text(
    text: str, tokenizer: TextTokenizer, max_tokens: int | None = None, max_segments: int | None = None
) -> list[Segment]:
    """The segments of ``text``, in order: ``[Segment(0, len(text))]`` when it fits the model's window.

    Args:
        max_tokens: content tokens per segment (default: the tokenizer's window, ``max_length - 2``).
        max_segments: stop after this many (the service asks for one more to tell a capped text).
    """
    return list(islice(iter_segments(text, tokenizer, max_tokens), max_segments))


def iter_segments(text: str, tokenizer: TextTokenizer, max_tokens: int | None = None) -> Iterator[Segment]:
    """:func:`split_text`, lazily: a caller that caps the count stops the work there."""
    window = tokenizer.window if max_tokens is None else min(max_tokens, tokenizer.window)
    whole = len(text) <= window * _MAX_CHARS_PER_TOKEN
    if whole and window == tokenizer.window and tokenizer.fits(text):
        yield Segment(0, len(text))
        return
    for start, end in _sentences(text):
        sentence = text[start:end]
        if not has_content(sentence):
            continue  # a lone "..." or "!!" between sentences says nothing the model can read
        if _fits(tokenizer, sentence, window):
            yield Segment(start, end)
        else:
            for w_start, w_end in _windows(tokenizer, sentence, window):
                yield Segment(start + w_start, start + w_end)


def _fits(tokenizer: TextTokenizer, text: str, window: int) -> bool:
    if window == tokenizer.window:
        return tokenizer.fits(text)
    return len(tokenizer.token_spans(text)) <= window


def _sentences(text: str) -> Iterator[tuple[int, int]]:
    """Spans of sentences, whitespace trimmed."""
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group() == "." and _is_abbreviation(text, match.start()):
            continue
        yield from _trimmed(text, start, end)
        start = end
    yield from _trimmed(text, start, len(text))


def _is_abbreviation(text: str, dot: int) -> bool:
    """``Dr.``, ``etc.``, an initial (``J. K.``) or ``e.g.``: a period that does not end the sentence."""
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("(\"'“‘").lower()
    initial = len(word) == 1 and word.isalpha() and word != "i"  # "… did I." ends a sentence
    return word in _ABBREVIATIONS or initial or "." in word


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _windows(tokenizer: TextTokenizer, sentence: str, window: int) -> Iterator[tuple[int, int]]:
    """Overlapping spans of at most ``window`` tokens, cut where whitespace separates two tokens."""
    spans = tokenizer.token_spans(sentence)
    n = len(spans)
    # token i starts a word when whitespace precedes it; cutting there re-tokenizes to the same tokens
    cut_ok = [i == 0 or spans[i][0] > spans[i - 1][1] for i in range(n)] + [True]
    overlap = int(window * _OVERLAP)
    i = 0
    while i < n:
        end = min(i + window, n)
        k = end
        while k > i + 1 and not cut_ok[k]:
            k -= 1
        if k == i + 1 and not cut_ok[k]:
            k = end  # one word longer than the window: cut inside it, and make sure the piece fits
            while k > i + 1 and not _fits(tokenizer, sentence[spans[i][0] : spans[k - 1][1]], window):
                k -= 1
        yield spans[i][0], spans[k - 1][1]
        if k >= n:
            return
        nxt = max(k - overlap, i + 1)
        while nxt < k and not cut_ok[nxt]:
            nxt += 1
        i = nxt


def _top2_mean(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    top = np.sort(scores, axis=0)[-2:]
    return np.asarray(top.mean(axis=0), dtype=np.float32)


def _length_mean(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    weights = lengths.astype(np.float64)
    return np.asarray(weights @ scores / weights.sum(), dtype=np.float32)


def _noisy_or(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - np.prod(1.0 - scores.astype(np.float64), axis=0), dtype=np.float32)


#: score of each label in the document, from its segments' scores [n_segments, n_labels] and their lengths
AGGREGATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "max": lambda scores, lengths: scores.max(axis=0),
    "mean": lambda scores, lengths: np.asarray(scores.mean(axis=0), dtype=np.float32),
    "length_mean": _length_mean,
    "top2_mean": _top2_mean,
    "noisy_or": _noisy_or,
}


def aggregate(scores: np.ndarray, lengths: np.ndarray, method: str) -> np.ndarray:
    """Segment scores ``[n_segments, n_labels]`` -> document scores ``[n_labels]`` (float32).

    One segment is its own document for every method (the scores come back unchanged).

    Raises:
        ValueError: an unknown method, no segments, or lengths that do not match the scores.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; one of {sorted(AGGREGATIONS)}")
    if scores.ndim != 2 or scores.shape[0] == 0 or lengths.shape != (scores.shape[0],):
        raise ValueError(f"scores {scores.shape} and lengths {lengths.shape}: need [n, labels] and [n], n >= 1")
    if scores.shape[0] == 1:
        return np.asarray(scores[0], dtype=np.float32)
    result: np.ndarray = AGGREGATIONS[method](scores, lengths)
    return result


@dataclass(frozen=True, slots=True)
class Plan:
    """What the model reads of one text: the text of each segment, and where it lies in the text as sent."""

    #: the model's input per segment (emoji named where configured): the cache keys follow these
    texts: list[str]
    #: offsets into the original text; None: one segment, the whole text, read exactly as a single text
    spans: list[Segment] | None = None
    #: more segments than ``max_segments``: only the first ones are in ``texts``
    capped: bool = False
    #: False: sent whole on its length alone, not tokenized; the model's truncation flag tells if it fit
    checked: bool = True

    @property
    def cost(self) -> int:
        """What the text costs: its segments (rate limits charge this)."""
        return len(self.texts)


def plan_text(
    text: str,
    tokenizer: TextTokenizer | None,
    max_segments: int,
    assume_fits_chars: int = 0,
    name_emoji: bool = False,
) -> Plan:
    """The segments of ``text``, at most ``max_segments`` (``capped`` past them).

    ``tokenizer`` None: documents are off, the text is one segment that the model truncates as before.
    ``assume_fits_chars``: a text this short is sent whole unchecked (``checked`` False): the pipeline
    tokenizes it anyway and flags it when it did not fit, and then it is planned again with 0 here.
    ``name_emoji``: emoji become their names first (offsets still point into ``text``).
    """
    named = demojize_mapped(text) if name_emoji else Demojized(text, text)
    if tokenizer is None:
        return Plan([named.text])
    if len(named.text) <= assume_fits_chars:
        return Plan([named.text], checked=False)
    found = split_text(named.text, tokenizer, max_segments=max_segments + 1)
    if not found:  # no sentence has content: the whole text, as before
        return Plan([named.text])
    if len(found) == 1 and found[0] == Segment(0, len(named.text)):
        return Plan([named.text])
    capped = len(found) > max_segments
    found = found[:max_segments]
    spans = [Segment(*named.original(s.start, s.end)) for s in found]
    return Plan([named.text[s.start : s.end] for s in found], spans, capped)
