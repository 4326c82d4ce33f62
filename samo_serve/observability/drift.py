"""Drift: how far what the model sees now is from a reference, per tenant and model version.

Two distributions of the texts in a window, read from the hourly rollups (``drift_mix``: primary emotions,
``drift_confidence``: the top score in tenths, each keyed by model version), compared with a reference:
the model card's own test-set mix and confidence (``metrics.test.reference``, written by ``samo-serve
model eval --write-reference``), or a window an operator pinned.

* ``mix_js``: the Jensen-Shannon divergence of the primary-emotion mix, base 2, in [0, 1] (0: the same
  mix; 1: nothing in common). Symmetric and finite where a label is absent from one side.
* ``confidence_psi``: the population-stability index of the top score's histogram, with the customary
  reading: < 0.1 stable, 0.1-0.25 shifting, > 0.25 shifted. Empty bins count as 0.0001 (PSI's usual
  floor), so it stays finite.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "CONFIDENCE_BINS",
    "confidence_bin",
    "compare",
    "js_divergence",
    "psi",
    "reference_of",
    "reference_from",
    "shares",
    "window_counts",
    "window_report",
]

VERSION_SEPARATOR = "|"  # rollup keys: ``{model_version}|{label or tenth}`` (storage.request_log.rollups)
CONFIDENCE_BINS = 10  # tenths of the top score: bin i holds [i/10, (i+1)/10), the last one 1.0 too
_PSI_FLOOR = 1e-4
K = TypeVar("K")


def confidence_bin(score: float) -> int:
    return min(CONFIDENCE_BINS - 1, max(0, math.floor(score * CONFIDENCE_BINS)))


def shares(counts: Mapping[K, float], keys: Sequence[K]) -> list[float]:
    """``counts`` as shares over ``keys`` (in that order); all 0 when there is nothing."""
    total = sum(counts.get(k, 0.0) for k in keys)
    return [counts.get(k, 0.0) / total if total else 0.0 for k in keys]


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two distributions over the same keys, base 2 (0..1)."""
    total = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            total += a / 2 * math.log2(a / m)
        if b > 0:
            total += b / 2 * math.log2(b / m)
    return max(0.0, min(1.0, total))


def psi(actual: Sequence[float], expected: Sequence[float]) -> float:
    """Population-stability index of ``actual`` against ``expected`` (shares of the same bins)."""
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, _PSI_FLOOR), max(e, _PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def reference_of(scores: np.ndarray, labels: Sequence[str], split: str = "test") -> dict[str, Any]:
    """What the model says of a labelled split: the share of texts per primary emotion (the top score's
    label, as the log records a single text) and the top score's histogram in tenths."""
    top = scores.argmax(axis=1)
    best = scores.max(axis=1)
    n = len(scores)
    mix = {label: round(float((top == i).sum()) / n, 6) for i, label in enumerate(labels)}
    bins = np.bincount([confidence_bin(float(s)) for s in best], minlength=CONFIDENCE_BINS)
    return {"split": split, "n": n, "mix": mix, "confidence": [round(float(b) / n, 6) for b in bins]}


def compare(
    mix: Mapping[str, float], confidence: Mapping[int, float], reference: Mapping[str, Any], top: int = 5
) -> dict[str, Any]:
    """A window's counts (primary emotion -> texts, confidence bin -> texts) against a reference: the two
    distances and the labels whose share moved most (``moved``: label, share now, in the reference)."""
    labels = sorted(set(reference["mix"]) | set(mix))
    now, then = shares(mix, labels), [float(reference["mix"].get(k, 0.0)) for k in labels]
    expected = [float(x) for x in reference["confidence"]]
    observed = shares(confidence, range(CONFIDENCE_BINS))
    moved = sorted(zip(labels, now, then, strict=True), key=lambda x: -abs(x[1] - x[2]))[:top]
    return {
        "texts": int(sum(mix.values())),
        "mix_js": round(js_divergence(now, then), 6),
        "confidence_psi": round(psi(observed, expected), 6),
        "moved": [{"label": k, "share": round(a, 4), "reference": round(b, 4)} for k, a, b in moved],
    }


def window_counts(
    mix_rows: Iterable[Sequence[Any]], confidence_rows: Iterable[Sequence[Any]]
) -> tuple[dict[tuple[str, str], dict[str, float]], dict[tuple[str, str], dict[int, float]]]:
    """Rollup sums per tenant (``RangeQuery(by_tenant=True)``: tenant, ``version|key``, texts, ...) as texts
    per (tenant, version): per primary emotion, and per tenth of the top score."""
    mix: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    confidence: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for tenant, key, n, *_ in mix_rows:
        version, _, label = str(key).rpartition(VERSION_SEPARATOR)
        mix[(tenant, version)][label] = mix[(tenant, version)].get(label, 0.0) + n
    for tenant, key, n, *_ in confidence_rows:
        version, _, tenth = str(key).rpartition(VERSION_SEPARATOR)
        bins = confidence[(tenant, version)]
        bins[int(tenth)] = bins.get(int(tenth), 0.0) + n
    return mix, confidence


def reference_from(mix: Mapping[str, float], confidence: Mapping[int, float], split: str) -> dict[str, Any]:
    """A window's counts as a reference (what ``samo-serve drift pin`` keeps): shares, in the card's form."""
    labels = sorted(mix)
    return {
        "split": split,
        "n": int(sum(mix.values())),
        "mix": {label: round(share, 6) for label, share in zip(labels, shares(mix, labels), strict=True)},
        "confidence": [round(share, 6) for share in shares(confidence, range(CONFIDENCE_BINS))],
    }


def window_report(
    mix_rows: Iterable[Sequence[Any]],
    confidence_rows: Iterable[Sequence[Any]],
    references: Mapping[str, Mapping[str, Any]],
    min_texts: int,
    pinned: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per tenant and model version, a window's drift from its reference: the tenant's pinned one for that
    version (``pinned``: (tenant, version) -> reference), else the version's own (``references``).

    A version without a reference, or with fewer than ``min_texts`` texts in the window, is listed with its
    texts and ``judged: false``.
    """
    mix, confidence = window_counts(mix_rows, confidence_rows)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (tenant, version), counts in sorted(mix.items()):
        reference = (pinned or {}).get((tenant, version)) or references.get(version)
        texts = int(sum(counts.values()))
        entry: dict[str, Any] = {"texts": texts, "judged": False}
        if reference is not None and texts >= min_texts:
            entry = {**compare(counts, confidence[(tenant, version)], reference), "judged": True}
            entry["reference"] = reference.get("split")
        out.setdefault(tenant, {})[version] = entry
    return out
