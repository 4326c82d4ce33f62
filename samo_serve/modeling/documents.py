"""Pseudo-entries for the document benchmark, and its metrics (numpy only: no model here).

GoEmotions has no labelled documents, so a benchmark entry is a seeded run of 3-12 test texts joined into one
text, each keeping its gold labels and its exact character span in the entry. A text that ends without
sentence punctuation (most Reddit comments) gets a full stop, so that a sentence segmenter can see where it
ends, as it would in a journal entry; the same punctuated text is what is scored "alone".
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samo_serve.modeling.evaluation import apply_thresholds, f1_per_label

__all__ = [
    "Aggregate",
    "PseudoEntry",
    "Span",
    "as_sentence",
    "boundary_recall",
    "build_entries",
    "document_metrics",
    "document_targets",
    "dominant_labels",
    "primary_metrics",
    "join_sentences",
    "sentence_scores",
]

Span = tuple[int, int]  # str offsets: text[start:end]
#: scores [n_segments, n_labels], lengths [n_segments], method -> [n_labels] (core.segments.aggregate)
Aggregate = Callable[[np.ndarray, np.ndarray, str], np.ndarray]

# ends like a sentence: terminal punctuation, then any closing quotes or brackets
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def as_sentence(text: str) -> str:
    """``text`` stripped, with a full stop added where it does not end like a sentence."""
    text = text.strip()
    return text if _SENTENCE_END.search(text) else f"{text}."


def join_sentences(texts: Sequence[str]) -> tuple[str, list[Span]]:
    """One entry from ``texts`` (each through :func:`as_sentence`), joined by a space, and the span of each:
    ``entry[start:end]`` is the sentence. The load tester's N-sentence entries are built here too."""
    parts: list[str] = []
    spans: list[Span] = []
    at = 0
    for text in texts:
        sentence = as_sentence(text)
        spans.append((at, at + len(sentence)))
        parts.append(sentence)
        at += len(sentence) + 1
    return " ".join(parts), spans


@dataclass(frozen=True)
class PseudoEntry:
    text: str
    spans: tuple[Span, ...]  # gold sentences: text[start:end]
    rows: tuple[int, ...]  # the row of each sentence in the split (its gold labels)

    @property
    def sentences(self) -> list[str]:
        return [self.text[start:end] for start, end in self.spans]


def build_entries(
    texts: Sequence[str], seed: int = 14, min_sentences: int = 3, max_sentences: int = 12
) -> list[PseudoEntry]:
    """Every text in exactly one entry: the rows shuffled with ``seed``, cut into runs of a length drawn
    uniformly from ``[min_sentences, max_sentences]`` (a short last run joins the one before it)."""
    if not 1 <= min_sentences <= max_sentences:
        raise ValueError(f"need 1 <= min_sentences <= max_sentences, got {min_sentences}, {max_sentences}")
    rng = random.Random(seed)
    rows = list(range(len(texts)))
    rng.shuffle(rows)
    groups: list[list[int]] = []
    while rows:
        size = rng.randint(min_sentences, max_sentences)
        groups.append(rows[:size])
        rows = rows[size:]
    if len(groups) > 1 and len(groups[-1]) < min_sentences:
        groups[-2].extend(groups.pop())
    entries = []
    for group in groups:
        text, spans = join_sentences([texts[i] for i in group])
        entries.append(PseudoEntry(text=text, spans=tuple(spans), rows=tuple(group)))
    return entries


def _overlapping(span: Span, segments: Sequence[Span]) -> list[int]:
    start, end = span
    return [i for i, (s, e) in enumerate(segments) if s < end and e > start]


def sentence_scores(
    spans: Sequence[Span],
    segments: Sequence[Span],
    scores: np.ndarray,
    lengths: np.ndarray,
    aggregate: Aggregate,
    method: str,
) -> np.ndarray:
    """Scores of each gold sentence as read inside its entry: the segments that overlap it, aggregated.

    A sentence the segmenter cut in two gets both parts; a segment that runs over a gold boundary counts for
    both sentences (that is what a reader of the arc would see).
    """
    out = np.zeros((len(spans), scores.shape[1]), dtype=np.float64)
    for i, span in enumerate(spans):
        hits = _overlapping(span, segments)
        if not hits:
            raise ValueError(f"no segment overlaps sentence {span}: segments {list(segments)}")
        out[i] = aggregate(scores[hits], lengths[hits], method)
    return out


def boundary_recall(entries: Sequence[Sequence[Span]], segments: Sequence[Sequence[Span]]) -> float:
    """Share of the boundaries between gold sentences that no segment runs across."""
    kept = total = 0
    for spans, segs in zip(entries, segments, strict=True):
        for left, right in zip(spans, spans[1:], strict=False):
            total += 1
            kept += not set(_overlapping(left, segs)) & set(_overlapping(right, segs))
    return kept / total if total else 1.0


def document_targets(entries: Sequence[PseudoEntry], targets: np.ndarray) -> np.ndarray:
    """The union of the gold labels of each entry's sentences (multi-hot [n_entries, n_labels])."""
    return np.stack([targets[list(entry.rows)].max(axis=0) for entry in entries])


def dominant_labels(entries: Sequence[PseudoEntry], targets: np.ndarray, neutral: int | None) -> np.ndarray:
    """Each entry's gold label over the most of its text: the characters of the sentences carrying each
    label, summed (``neutral`` only when no sentence has another label). [n_entries] label indices."""
    out = []
    for entry in entries:
        chars = np.array([end - start for start, end in entry.spans], dtype=np.float64)
        weight = chars @ targets[list(entry.rows)].astype(np.float64)
        if neutral is not None and weight.sum() > weight[neutral]:
            weight[neutral] = 0.0
        out.append(int(np.argmax(weight)))
    return np.asarray(out)


def primary_metrics(
    primaries: np.ndarray, doc_targets: np.ndarray, dominant: np.ndarray, neutral: int | None
) -> dict[str, Any]:
    """How each entry's ``primary`` reads against its gold, over the entries whose sentences carry an
    emotion: one of those emotions, or ``neutral``; and over all entries: its dominant label
    (:func:`dominant_labels`)."""
    n = len(primaries)
    emotional = doc_targets.sum(axis=1) > (doc_targets[:, neutral] if neutral is not None else 0)
    among = doc_targets[np.arange(n), primaries].astype(bool) & (primaries != neutral)
    wrong_neutral = (primaries == neutral) & emotional if neutral is not None else np.zeros(n, bool)
    return {
        "emotion_in_gold": round(float(among[emotional].mean()), 4),
        "primary_is_dominant": round(float((primaries == dominant).mean()), 4),
        "neutral_primary_with_emotions": round(float(wrong_neutral.sum() / max(1, emotional.sum())), 4),
    }


def document_metrics(scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray) -> dict[str, Any]:
    """Micro precision/recall/F1 and macro-F1 at ``thresholds`` (each row gets at least its top label,
    as served), and the mean number of labels predicted and true per row."""
    predicted = apply_thresholds(scores, thresholds)
    tp = float((predicted * targets).sum())
    precision = tp / float(predicted.sum()) if predicted.sum() else 0.0
    recall = tp / float(targets.sum()) if targets.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "micro_precision": round(precision, 4),
        "micro_recall": round(recall, 4),
        "micro_f1": round(f1, 4),
        "macro_f1": round(float(f1_per_label(targets, predicted)[2].mean()), 4),
        "labels_predicted": round(float(predicted.sum(axis=1).mean()), 2),
        "labels_true": round(float(targets.sum(axis=1).mean()), 2),
    }
