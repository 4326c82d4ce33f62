"""Multi-label metrics and threshold tuning (numpy only: shared by training, eval and tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def f1_per_label(targets: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per label (0 where undefined)."""
    tp = (predicted * targets).sum(axis=0)
    fp = (predicted * (1 - targets)).sum(axis=0)
    fn = ((1 - predicted) * targets).sum(axis=0)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp, dtype=np.float64), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp, dtype=np.float64), where=(tp + fn) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return precision, recall, f1


def micro_f1(targets: np.ndarray, predicted: np.ndarray) -> float:
    tp = float((predicted * targets).sum())
    fp = float((predicted * (1 - targets)).sum())
    fn = float(((1 - predicted) * targets).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def apply_thresholds(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Multi-hot predictions; a row with nothing above threshold falls back to its top label.

    Every text gets at least one emotion, the same rule the serving postprocessor applies.
    """
    predicted = (scores >= thresholds[None, :]).astype(np.float64)
    empty = predicted.sum(axis=1) == 0
    predicted[empty, scores[empty].argmax(axis=1)] = 1.0
    return predicted


def tune_thresholds(scores: np.ndarray, targets: np.ndarray, min_support: int = 30) -> tuple[np.ndarray, float]:
    """Per-label thresholds from a grid, chosen on one split (dev).

    Labels with fewer than ``min_support`` positives keep the best global threshold: a per-label grid
    search on a handful of examples overfits (measured: test lands below dev on rare labels).

    Returns:
        (thresholds per label, best global threshold)
    """
    n_labels = scores.shape[1]
    global_f1 = [
        f1_per_label(targets, apply_thresholds(scores, np.full(n_labels, t)))[2].mean() for t in THRESHOLD_GRID
    ]
    best_global = float(THRESHOLD_GRID[int(np.argmax(global_f1))])
    thresholds = np.full(n_labels, best_global)
    support = targets.sum(axis=0)
    for j in range(n_labels):
        if support[j] < min_support:
            continue
        best_t, best_f1 = best_global, -1.0
        for t in THRESHOLD_GRID:
            p = (scores[:, j] >= t).astype(np.float64)
            _, _, f1 = f1_per_label(targets[:, j : j + 1], p[:, None])
            if f1[0] > best_f1 + 1e-9:
                best_t, best_f1 = float(t), float(f1[0])
        thresholds[j] = best_t
    return thresholds, best_global


def classification_report(
    scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """Macro/micro F1 and per-label P/R/F1/support at the given thresholds."""
    predicted = apply_thresholds(scores, thresholds)
    precision, recall, f1 = f1_per_label(targets, predicted)
    support = targets.sum(axis=0)
    return {
        "macro_f1": round(float(f1.mean()), 4),
        "micro_f1": round(micro_f1(targets, predicted), 4),
        "n": int(scores.shape[0]),
        "per_label": {
            label: {
                "precision": round(float(precision[j]), 4),
                "recall": round(float(recall[j]), 4),
                "f1": round(float(f1[j]), 4),
                "support": int(support[j]),
            }
            for j, label in enumerate(labels)
        },
    }


def top_label_agreement(scores_a: np.ndarray, scores_b: np.ndarray, min_margin: float = 0.0) -> float:
    """Share of rows whose top label is the same in both.

    With ``min_margin`` only rows where ``scores_b`` (the reference) puts its top label at least that far
    above its second count: near-ties flip under any quantization noise.
    """
    top2 = np.sort(scores_b, axis=1)[:, -2:]
    rows = (top2[:, 1] - top2[:, 0]) >= min_margin
    if not rows.any():
        return 1.0
    return float((scores_a.argmax(axis=1) == scores_b.argmax(axis=1))[rows].mean())
