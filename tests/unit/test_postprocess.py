"""Postprocessor semantics (card thresholds, explicit threshold, top_k, all_scores) and the catalog."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.core.postprocess import Postprocessor, emotions_catalog

LABELS = ["a", "b", "c", "d"]
THRESHOLDS = [0.5, 0.5, 0.9, 0.1]


@pytest.fixture
def post() -> Postprocessor:
    return Postprocessor(LABELS, THRESHOLDS)


def _labels(out: dict[str, object]) -> list[str]:
    return [e["label"] for e in out["emotions"]]  # type: ignore[attr-defined,index]


def test_mismatched_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        Postprocessor(LABELS, [0.5])


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.6, 0.7, 0.95, 0.2], ["c", "b", "a", "d"]),
        ([0.6, 0.4, 0.85, 0.05], ["a"]),  # c (0.85) is under its own 0.9 threshold
        ([0.4, 0.45, 0.3, 0.05], ["b"]),  # nothing passes: the top label anyway
        ([0.0, 0.0, 0.0, 0.0], ["a"]),  # all equal: the first label (stable order)
        ([0.5, 0.5, 0.9, 0.1], ["c", "a", "b", "d"]),  # thresholds are inclusive
    ],
    ids=["all-pass", "per-label-threshold", "fallback-top", "all-zero", "inclusive"],
)
def test_card_thresholds_give_at_least_the_top_label(
    post: Postprocessor, scores: list[float], expected: list[str]
) -> None:
    values = np.array(scores, dtype=np.float32)
    out = post.render(values)
    assert _labels(out) == expected
    # primary is always the top score, even when that label misses its own threshold
    assert out["primary"]["label"] == LABELS[int(np.argmax(values))]  # type: ignore[index]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.5, ["c", "b", "a"]),
        (0.95, []),
        (1.0, []),
        (0.0, ["c", "b", "a", "d"]),
        (0.7, ["c", "b"]),  # exactly 0.7 is included
    ],
    ids=["half", "none-pass", "one", "zero-all", "inclusive"],
)
def test_explicit_threshold_gives_exactly_the_labels_at_or_above(
    post: Postprocessor, threshold: float, expected: list[str]
) -> None:
    scores = np.array([0.6, 0.7, 0.9, 0.2], dtype=np.float32)
    out = post.render(scores, threshold=threshold)
    assert _labels(out) == expected
    assert out["primary"] == {"label": "c", "score": pytest.approx(0.9)}


@pytest.mark.parametrize(
    ("top_k", "threshold", "expected"),
    [(1, 0.0, ["c"]), (2, 0.0, ["c", "b"]), (10, 0.0, ["c", "b", "a", "d"]), (2, 0.95, []), (1, None, ["c"])],
    ids=["k1", "k2", "k-over-labels", "k-with-none-passing", "k1-card"],
)
def test_top_k(post: Postprocessor, top_k: int, threshold: float | None, expected: list[str]) -> None:
    scores = np.array([0.6, 0.7, 0.9, 0.2], dtype=np.float32)
    assert _labels(post.render(scores, threshold=threshold, top_k=top_k)) == expected


def test_all_scores(post: Postprocessor) -> None:
    scores = np.array([0.1234567, 0.7, 0.9, 0.2], dtype=np.float32)
    out = post.render(scores, all_scores=True)
    assert list(out["scores"]) == LABELS  # type: ignore[arg-type]
    assert out["scores"]["a"] == pytest.approx(0.123457, abs=1e-6)  # type: ignore[index]
    assert "scores" not in post.render(scores)


def test_emotions_sorted_descending_and_rounded(post: Postprocessor) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.random(4).astype(np.float32)
        out = post.render(scores, threshold=0.0)
        values = [e["score"] for e in out["emotions"]]  # type: ignore[attr-defined,index]
        assert values == sorted(values, reverse=True)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)
        assert all(round(v, 6) == v for v in values)


def test_output_is_json_native(post: Postprocessor) -> None:
    import json

    out = post.render(np.array([0.6, 0.7, 0.9, 0.2], dtype=np.float32), all_scores=True)
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize(
    "shape", [(3,), (5,), (1, 4), (4, 1), (0,), ()], ids=["short", "long", "row", "column", "empty", "scalar"]
)
def test_wrong_shaped_scores(post: Postprocessor, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="expected 4 scores"):
        post.render(np.zeros(shape, dtype=np.float32))


def test_from_card(card: ModelCard) -> None:
    post = Postprocessor.from_card(card)
    assert post.labels == card.labels
    out = post.render(np.zeros(len(card.labels), dtype=np.float32))
    assert len(out["emotions"]) >= 1  # type: ignore[arg-type]


def test_emotions_catalog(card: ModelCard) -> None:
    catalog = emotions_catalog(card)
    assert catalog["model_version"] == card.version
    assert catalog["count"] == len(card.labels) == len(catalog["emotions"])
    for i, entry in enumerate(catalog["emotions"]):
        assert entry["id"] == i
        assert entry["label"] == card.labels[i]
        assert entry["threshold"] == card.thresholds[i]
        assert set(entry) == {"id", "label", "ekman", "sentiment", "threshold"}


def test_emotions_catalog_without_groups(card: ModelCard) -> None:
    bare = card.model_copy(update={"groups": {}})
    assert all(e["ekman"] is None and e["sentiment"] is None for e in emotions_catalog(bare)["emotions"])


def test_coverage_primary_weighs_how_much_of_the_text_carries_a_label() -> None:
    from samo_serve.core.postprocess import coverage_primary

    cut = np.array([0.5, 0.3, 0.4])  # labels: anger, joy, neutral (index 2)
    segments = np.array([[0.9, 0.0, 0.1], [0.0, 0.4, 0.6], [0.0, 0.0, 0.99], [0.6, 0.0, 0.2]])
    lengths = np.array([40, 100, 300, 40])
    doc = segments.max(axis=0)
    # neutral covers the most, and scores highest, but anger and joy clear their thresholds: never neutral;
    # anger: 40 * 0.9 + 40 * 0.6 = 60 over joy's 100 * 0.4 = 40
    assert coverage_primary(segments, lengths, cut, doc, neutral=2) == 0
    assert coverage_primary(segments, np.array([40, 400, 300, 40]), cut, doc, neutral=2) == 1  # joy carries more
    only_neutral = np.array([[0.1, 0.1, 0.9], [0.2, 0.0, 0.8]])
    assert coverage_primary(only_neutral, np.array([10, 10]), cut, only_neutral.max(axis=0), neutral=2) == 2
    nothing = np.array([[0.1, 0.1, 0.1], [0.2, 0.0, 0.3]])
    assert coverage_primary(nothing, np.array([10, 10]), cut, nothing.max(axis=0), neutral=2) is None


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.6, 0.4, 0.85, 0.1], {"a": 0.6, "d": 0.1}),  # per-label thresholds, inclusive; c under its 0.9
        ([0.4, 0.45, 0.3, 0.05], {}),  # nothing clears: the response names its top label, the row none
    ],
)
def test_cleared_json_is_the_labels_at_their_thresholds(
    post: Postprocessor, scores: list[float], expected: dict[str, float]
) -> None:
    got = json.loads(post.cleared_json(np.asarray(scores, dtype=np.float32)))
    assert got == pytest.approx(expected)
    assert list(got) == list(expected)  # the card's order
