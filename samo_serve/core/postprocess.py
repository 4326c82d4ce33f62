"""Probabilities -> the response's emotions: thresholds, override threshold, top_k, primary emotion."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from samo_serve.core.model_card import ModelCard

__all__ = ["Postprocessor", "PredictOptions", "emotions_catalog"]


class PredictOptions(BaseModel):
    """A caller's per-request choices of what a prediction shows (the HTTP requests extend it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: StrictFloat | StrictInt | None = Field(
        default=None, ge=0.0, le=1.0, description="one threshold for every label instead of the tuned ones"
    )
    top_k: StrictInt | None = Field(default=None, ge=1, le=1000, description="at most this many emotions")
    all_scores: StrictBool = Field(default=False, description="also return every label's score")
    segments: StrictBool = Field(
        default=False, description="also return each segment (sentence or window) with its offsets and emotions"
    )


class Postprocessor:
    """Applies the card's per-label thresholds (or a caller's override) to one text's scores.

    With the card's thresholds a text always gets at least its top emotion (every GoEmotions example
    has one label, ``neutral`` included; evaluation applies the same rule). With an explicit
    ``threshold`` the caller gets exactly the labels at or above it, possibly none.
    """

    def __init__(
        self, labels: list[str], thresholds: list[float], groups: dict[str, dict[str, str]] | None = None
    ) -> None:
        if len(labels) != len(thresholds):
            raise ValueError(f"{len(thresholds)} thresholds for {len(labels)} labels")
        self.labels = labels
        self._thresholds = np.asarray(thresholds, dtype=np.float32)
        self._neutral = labels.index("neutral") if "neutral" in labels else None
        self._quoted = [json.dumps(label) for label in labels]
        # per grouping (ekman, sentiment): group names and, per group, the indices of its labels
        self._groups: dict[str, list[tuple[str, list[int]]]] = {}
        for grouping, of_label in (groups or {}).items():
            members: dict[str, list[int]] = {}
            for i, label in enumerate(labels):
                if label in of_label:
                    members.setdefault(of_label[label], []).append(i)
            self._groups[grouping] = list(members.items())

    def document_primary(
        self, segments: np.ndarray, lengths: np.ndarray, doc: np.ndarray, threshold: float | None = None
    ) -> dict[str, Any]:
        """``primary`` of a document by :func:`document_primary_index` at the card's thresholds (or the
        caller's one)."""
        cut = self._thresholds if threshold is None else np.full_like(self._thresholds, threshold)
        j = document_primary_index(segments, lengths, cut, doc, self._neutral)
        return {"label": self.labels[j], "score": round(float(doc[j]), 6)}

    def cleared_json(self, scores: np.ndarray) -> str:
        """The labels at or above their tuned thresholds, with their scores (9 digits: float32 exactly), as
        a JSON object: a log row's ``cleared``, under each of which timelines count the text; ``{}`` when
        none clears (the response then still names the top label, but timelines count it as primary only)."""
        picked = np.flatnonzero(scores >= self._thresholds)
        return "{" + ",".join(f"{self._quoted[j]}:{scores[j]:.9g}" for j in picked) + "}"

    @classmethod
    def from_card(cls, card: ModelCard) -> Postprocessor:
        return cls(card.labels, card.thresholds, card.groups)

    def render_groups(self, scores: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """Per grouping of the card (``ekman``, ``sentiment``): each group scored by its strongest label."""
        out = {}
        for grouping, members in self._groups.items():
            ranked = sorted(((float(scores[idx].max()), name) for name, idx in members), reverse=True)
            out[grouping] = [{"label": name, "score": round(score, 6)} for score, name in ranked]
        return out

    def render(
        self,
        scores: np.ndarray,
        threshold: float | None = None,
        top_k: int | None = None,
        all_scores: bool = False,
    ) -> dict[str, Any]:
        if scores.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} scores, got shape {scores.shape}")
        order = np.argsort(-scores, kind="stable")
        cut = self._thresholds if threshold is None else np.full_like(self._thresholds, threshold)
        chosen = [int(j) for j in order if scores[j] >= cut[j]]
        if not chosen and threshold is None:
            chosen = [int(order[0])]
        if top_k is not None:
            chosen = chosen[:top_k]
        top = int(order[0])
        out: dict[str, Any] = {
            "emotions": [{"label": self.labels[j], "score": round(float(scores[j]), 6)} for j in chosen],
            "primary": {"label": self.labels[top], "score": round(float(scores[top]), 6)},
        }
        if all_scores:
            out["scores"] = {label: round(float(s), 6) for label, s in zip(self.labels, scores, strict=True)}
        return out


def coverage_primary(
    scores: np.ndarray, lengths: np.ndarray, cut: np.ndarray, doc: np.ndarray, neutral: int | None
) -> int | None:
    """A document's primary label by how much of it carries the label, and how strongly: per label, the
    characters of each segment (``lengths`` [n]) where it clears its threshold (``cut``) times its score
    there (``scores`` [n, labels]), summed; a tie goes to the higher document score (``doc``).
    ``neutral`` ("no emotion" in GoEmotions) only when no other label clears its threshold anywhere. None
    when no label clears anywhere. Measured against the strongest score and plain coverage in
    docs/MODEL.md ("A day read right")."""
    weight = lengths.astype(np.float64) @ np.where(scores >= cut, scores.astype(np.float64), 0.0)
    if neutral is not None and weight.sum() > weight[neutral]:
        weight[neutral] = 0.0
    best = weight.max()
    if best <= 0:
        return None
    tied = np.flatnonzero(weight == best)
    return int(tied[np.argmax(doc[tied])])


def document_primary_index(
    scores: np.ndarray, lengths: np.ndarray, cut: np.ndarray, doc: np.ndarray, neutral: int | None
) -> int:
    """The primary a document is served with under ``documents.primary: coverage``: :func:`coverage_primary`
    of its segments, or its strongest document score when it was read in one piece or nothing clears."""
    j = coverage_primary(scores, lengths, cut, doc, neutral) if len(scores) > 1 else None
    return int(np.argmax(doc)) if j is None else j


def emotions_catalog(card: ModelCard) -> dict[str, Any]:
    """The label set with Ekman and sentiment groups and thresholds (``GET /emotions``)."""
    return {
        "model_version": card.version,
        "count": len(card.labels),
        "emotions": [
            {
                "id": i,
                "label": label,
                "ekman": card.groups.get("ekman", {}).get(label),
                "sentiment": card.groups.get("sentiment", {}).get(label),
                "threshold": card.thresholds[i],
            }
            for i, label in enumerate(card.labels)
        ],
    }
