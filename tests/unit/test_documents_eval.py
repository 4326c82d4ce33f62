"""The document benchmark's parts, no model: pseudo-entries, sentence alignment and document metrics."""

from __future__ import annotations

import numpy as np
import pytest

from samo_serve.core.segments import aggregate
from samo_serve.modeling.documents import (
    as_sentence,
    boundary_recall,
    build_entries,
    document_metrics,
    document_targets,
    join_sentences,
    sentence_scores,
)

TEXTS = [
    "I love this song",
    "Why does nobody care?",
    '"He said no."',
    "  so tired 😩  ",
    "ok…",
    "[NAME] is here (finally)",
    "العربية نص",
    "e\u0301 combining",
    "Thanks!!",
    "meh",
    "What a day.",
    "wow",
    "last one",
]


def test_as_sentence_adds_a_full_stop_only_where_none_ends_it() -> None:
    assert as_sentence("I love this song") == "I love this song."
    assert as_sentence("  so tired 😩  ") == "so tired 😩."
    for ended in ("Why?", "ok…", '"He said no."', "(fine.)", "Thanks!!", "it’s over.’"):
        assert as_sentence(ended) == ended


def test_join_sentences_spans_slice_each_sentence() -> None:
    text, spans = join_sentences(["a", "Why?", "  b c "])
    assert text == "a. Why? b c."
    assert [text[s:e] for s, e in spans] == ["a.", "Why?", "b c."]


@pytest.mark.parametrize("seed", [0, 14, 99])
def test_entries_cover_every_text_once_with_exact_offsets(seed: int) -> None:
    entries = build_entries(TEXTS, seed=seed, min_sentences=3, max_sentences=5)
    rows = [row for entry in entries for row in entry.rows]
    assert sorted(rows) == list(range(len(TEXTS)))
    for entry in entries:
        assert 3 <= len(entry.rows) <= 5 + 2  # a short last run joins the one before it
        assert entry.sentences == [as_sentence(TEXTS[row]) for row in entry.rows]
        assert entry.text == " ".join(entry.sentences)


def test_entries_are_seeded() -> None:
    assert build_entries(TEXTS, seed=5) == build_entries(TEXTS, seed=5)
    assert build_entries(TEXTS, seed=5) != build_entries(TEXTS, seed=6)
    sizes = {len(e.rows) for seed in range(30) for e in build_entries(TEXTS * 10, seed=seed)}
    assert min(sizes) >= 3  # the default 3-12 range is used
    assert max(sizes) >= 12
    with pytest.raises(ValueError, match="min_sentences"):
        build_entries(TEXTS, min_sentences=4, max_sentences=3)


def test_sentence_scores_aggregate_the_segments_that_overlap_each_sentence() -> None:
    spans = [(0, 10), (11, 20), (21, 30)]
    # the first sentence cut in two; the second and third read as one segment (a missed boundary)
    segments = [(0, 4), (5, 10), (11, 30)]
    scores = np.array([[0.9, 0.1], [0.2, 0.6], [0.3, 0.4]], dtype=np.float32)
    lengths = np.array([4, 5, 19])
    got = sentence_scores(spans, segments, scores, lengths, aggregate, "max")
    np.testing.assert_allclose(got, [[0.9, 0.6], [0.3, 0.4], [0.3, 0.4]])
    got = sentence_scores(spans, segments, scores, lengths, aggregate, "mean")
    np.testing.assert_allclose(got[0], [0.55, 0.35], rtol=1e-6)
    with pytest.raises(ValueError, match="no segment overlaps"):
        sentence_scores([(40, 50)], segments, scores, lengths, aggregate, "max")


def test_boundary_recall_counts_boundaries_no_segment_runs_across() -> None:
    spans = [(0, 10), (11, 20), (21, 30)]
    assert boundary_recall([spans], [[(0, 4), (5, 10), (11, 30)]]) == 0.5
    assert boundary_recall([spans], [[(0, 10), (11, 20), (21, 30)]]) == 1.0
    assert boundary_recall([spans], [[(0, 30)]]) == 0.0  # read whole: one window
    assert boundary_recall([[(0, 5)]], [[(0, 5)]]) == 1.0


def test_document_targets_are_the_union_of_the_sentences_labels() -> None:
    entries = build_entries(TEXTS[:6], seed=1, min_sentences=3, max_sentences=3)
    targets = np.eye(6, 4, dtype=np.float32)  # text i has label i (none for 4 and 5)
    union = document_targets(entries, targets)
    for entry, row in zip(entries, union, strict=True):
        assert set(np.flatnonzero(row)) == {i for i in entry.rows if i < 4}


def test_document_metrics() -> None:
    targets = np.array([[1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float64)
    scores = np.array([[0.9, 0.1, 0.8, 0.0], [0.1, 0.2, 0.3, 0.1]])
    m = document_metrics(scores, targets, np.full(4, 0.5))
    # row 0 predicts labels 0 and 2 (one right); row 1 nothing above threshold: its top label, 2 (right)
    assert (m["micro_precision"], m["micro_recall"]) == (pytest.approx(2 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4))
    assert m["micro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["macro_f1"] == pytest.approx((1 + 0 + 2 / 3 + 0) / 4, abs=1e-4)
    assert (m["labels_predicted"], m["labels_true"]) == (1.5, 1.5)
