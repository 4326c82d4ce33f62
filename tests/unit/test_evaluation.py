"""Metrics and threshold tuning on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from samo_serve.modeling.evaluation import (
    THRESHOLD_GRID,
    apply_thresholds,
    classification_report,
    f1_per_label,
    micro_f1,
    top_label_agreement,
    tune_thresholds,
)

# label 0: tp=1 fp=1 fn=1 -> P=R=F1=0.5; label 1: tp=2 -> 1,1,1; label 2: never true, never predicted -> 0
TARGETS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64)
PREDICTED = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=np.float64)


def test_f1_per_label_hand_computed() -> None:
    precision, recall, f1 = f1_per_label(TARGETS, PREDICTED)
    np.testing.assert_allclose(precision, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(recall, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(f1, [0.5, 1.0, 0.0])


def test_f1_per_label_asymmetric() -> None:
    targets = np.array([[1], [1], [1], [0]], dtype=np.float64)
    predicted = np.array([[1], [0], [0], [1]], dtype=np.float64)  # tp=1 fp=1 fn=2
    precision, recall, f1 = f1_per_label(targets, predicted)
    assert precision[0] == pytest.approx(0.5)
    assert recall[0] == pytest.approx(1 / 3)
    assert f1[0] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_f1_per_label_float32_inputs() -> None:
    _, _, f1 = f1_per_label(TARGETS.astype(np.float32), PREDICTED.astype(np.float32))
    np.testing.assert_allclose(f1, [0.5, 1.0, 0.0], rtol=1e-6)


def test_micro_f1_hand_computed() -> None:
    assert micro_f1(TARGETS, PREDICTED) == pytest.approx(6 / 8)  # tp=3 fp=1 fn=1


def test_micro_f1_without_true_positives() -> None:
    assert micro_f1(np.zeros((2, 2)), np.ones((2, 2))) == 0.0


def test_apply_thresholds_and_argmax_fallback() -> None:
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.2], [0.5, 0.5, 0.5]])
    predicted = apply_thresholds(scores, np.array([0.5, 0.5, 0.7]))
    assert predicted.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert (predicted.sum(axis=1) >= 1).all()


def test_apply_thresholds_every_row_gets_a_label() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 5)) * 0.3
    predicted = apply_thresholds(scores, np.full(5, 0.9))
    assert (predicted.sum(axis=1) == 1).all()
    assert (predicted.argmax(axis=1) == scores.argmax(axis=1)).all()


def test_grid() -> None:
    assert THRESHOLD_GRID[0] == pytest.approx(0.05)
    assert THRESHOLD_GRID[-1] == pytest.approx(0.95)
    assert len(THRESHOLD_GRID) == 19


def _tuning_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 200
    targets = np.zeros((n, 3))
    targets[:80, 0] = 1  # frequent, separable: positives 0.72, negatives 0.3
    targets[80:83, 1] = 1  # rare: support 3
    targets[100:160, 2] = 1  # frequent, noisy
    scores = np.empty((n, 3))
    scores[:, 0] = np.where(targets[:, 0] == 1, 0.72, 0.3)
    scores[:, 1] = rng.random(n)
    scores[:, 2] = np.clip(targets[:, 2] * 0.3 + rng.random(n) * 0.7, 0, 1)
    return scores, targets


def test_tune_thresholds_uses_grid_values() -> None:
    scores, targets = _tuning_data()
    thresholds, best_global = tune_thresholds(scores, targets, min_support=30)
    assert thresholds.shape == (3,)
    grid = set(np.round(THRESHOLD_GRID, 2).tolist())
    assert round(best_global, 2) in grid
    assert all(round(float(t), 2) in grid for t in thresholds)


def test_tune_thresholds_rare_labels_keep_the_global_threshold() -> None:
    scores, targets = _tuning_data()
    thresholds, best_global = tune_thresholds(scores, targets, min_support=30)
    assert thresholds[1] == best_global  # support 3 < 30
    all_rare, g = tune_thresholds(scores, targets, min_support=10_000)
    assert (all_rare == g).all()


def test_tune_thresholds_separates_a_separable_label() -> None:
    scores, targets = _tuning_data()
    thresholds, _ = tune_thresholds(scores, targets, min_support=30)
    assert 0.3 < thresholds[0] <= 0.72
    _, _, f1 = f1_per_label(targets[:, :1], (scores[:, :1] >= thresholds[0]).astype(np.float64))
    assert f1[0] == pytest.approx(1.0)


def test_classification_report() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7]])
    targets = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float64)
    report = classification_report(scores, targets, np.array([0.5, 0.5]), ["x", "y"])
    assert report["n"] == 3
    assert report["macro_f1"] == 1.0
    assert report["micro_f1"] == 1.0
    assert report["per_label"]["x"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert set(report["per_label"]) == {"x", "y"}


def test_top_label_agreement() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    b = np.array([[0.8, 0.2], [0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])
    assert top_label_agreement(a, b) == pytest.approx(0.75)
    assert top_label_agreement(a, a) == 1.0
