"""What the client returns: frozen dataclasses over the server's JSON (docs/API.md).

Each keeps the answer's JSON as ``raw``, so a field a newer server adds is still reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Emotion",
    "EmotionCount",
    "EmotionStat",
    "JournalEntry",
    "Label",
    "Prediction",
    "Readiness",
    "Segment",
    "Summary",
    "TimelineBucket",
    "UserSummary",
]

CacheLevel = Literal["l1", "l2", "l3", "miss"]
TruncatedBy = Literal["max_segments", "model_window"]


@dataclass(frozen=True)
class Emotion:
    label: str
    score: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Emotion:
        return cls(str(data["label"]), float(data["score"]))


def _emotions(data: list[dict[str, Any]] | None) -> list[Emotion] | None:
    return [Emotion.from_json(e) for e in data] if data is not None else None


def _scores(data: dict[str, Any] | None) -> dict[str, float] | None:
    return {str(k): float(v) for k, v in data.items()} if data is not None else None


@dataclass(frozen=True)
class Segment:
    """One sentence or window of a document, as ``segments: true`` gives it.

    Attributes:
        start, end: offsets into the text sent, in Python ``str`` characters: see :meth:`text_of`.
        emotions: the segment's own labels at or above their threshold, highest score first.
        primary: its highest-scoring label.
        scores: every label's score, only with ``all_scores=True``.
    """

    start: int
    end: int
    emotions: list[Emotion]
    primary: Emotion
    scores: dict[str, float] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            emotions=[Emotion.from_json(e) for e in data["emotions"]],
            primary=Emotion.from_json(data["primary"]),
            scores=_scores(data.get("scores")),
        )

    def text_of(self, original: str) -> str:
        """The segment's text: ``original`` must be the very text sent to the server."""
        return original[self.start : self.end]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.emotions]


@dataclass(frozen=True)
class Prediction:
    """One text's answer, as ``POST /predict`` gives it.

    Attributes:
        emotions: the labels at or above their threshold, highest score first.
        primary: the highest-scoring label.
        cache: which level answered (``miss``: the model ran).
        scores: every label's score, only when asked for with ``all_scores=True``.
        truncated_by: which cap left part of the text unread (``max_segments``, ``model_window``).
        segment_count: sentences and windows read; set for a document (a text longer than the model's
            window) and for any text sent with ``segments=True``, else None.
        ekman, sentiment: each Ekman / sentiment group scored by its strongest label, highest first;
            set with ``segment_count``.
        segments: each sentence or window in text order, only with ``segments=True``.
    """

    emotions: list[Emotion]
    primary: Emotion
    model_version: str
    cache: CacheLevel
    truncated: bool
    latency_ms: float
    scores: dict[str, float] | None = None
    truncated_by: TruncatedBy | None = None
    segment_count: int | None = None
    ekman: list[Emotion] | None = None
    sentiment: list[Emotion] | None = None
    segments: list[Segment] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        count, segments = data.get("segment_count"), data.get("segments")
        return cls(
            emotions=[Emotion.from_json(e) for e in data["emotions"]],
            primary=Emotion.from_json(data["primary"]),
            model_version=str(data["model_version"]),
            cache=data["cache"],
            truncated=bool(data["truncated"]),
            latency_ms=float(data["latency_ms"]),
            scores=_scores(data.get("scores")),
            truncated_by=data.get("truncated_by"),
            segment_count=int(count) if count is not None else None,
            ekman=_emotions(data.get("ekman")),
            sentiment=_emotions(data.get("sentiment")),
            segments=[Segment.from_json(s) for s in segments] if segments is not None else None,
            raw=data,
        )

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.emotions]


@dataclass(frozen=True)
class Label:
    """One entry of ``GET /emotions``: a label with its Ekman and sentiment groups and tuned threshold."""

    id: int
    label: str
    ekman: str | None
    sentiment: str | None
    threshold: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Label:
        return cls(
            int(data["id"]), str(data["label"]), data.get("ekman"), data.get("sentiment"), float(data["threshold"])
        )


@dataclass(frozen=True)
class Readiness:
    """``GET /readyz``: ``ready`` is true when the model answers (a ``degraded`` server is ready)."""

    ready: bool
    status: str
    model_version: str | None
    auth: str | None
    dependencies: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Readiness:
        status = str(data.get("status", "unavailable"))
        return cls(
            ready=status in ("ready", "degraded"),
            status=status,
            model_version=(data.get("model") or {}).get("version"),
            auth=data.get("auth"),
            dependencies=dict(data.get("dependencies") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class Summary:
    """``GET /analytics/summary``: the request log over [start, end)."""

    start: str
    end: str
    requests: int
    texts: int
    cache_hit_rate: float
    by_cache_level: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        cache, times = data["cache"], data["processing_time_ms"]
        return cls(
            start=str(data["start"]),
            end=str(data["end"]),
            requests=int(data["requests"]),
            texts=int(data["texts"]),
            cache_hit_rate=float(cache["hit_rate"]),
            by_cache_level={str(k): int(v) for k, v in cache["by_level"].items()},
            p50_ms=times["p50"],
            p95_ms=times["p95"],
            mean_ms=times["mean"],
            raw=data,
        )


@dataclass(frozen=True)
class EmotionCount:
    """One row of ``GET /analytics/emotions``: texts whose primary emotion was ``emotion``."""

    emotion: str
    count: int
    mean_confidence: float | None
    mean_processing_ms: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmotionCount:
        return cls(str(data["emotion"]), int(data["count"]), data["mean_confidence"], data["mean_processing_ms"])


@dataclass(frozen=True)
class JournalEntry:
    """One text of a batch with its own person, time and entry id (what it leaves out is the call's).

    ``entry_id``: your id of the entry; sent again, its new text replaces the old one in the log and the
    analytics (an edit), and :meth:`Client.delete_entry` erases it.
    """

    text: str
    user_id: str | None = None
    occurred_at: datetime | str | None = None
    entry_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text}
        for name in ("user_id", "entry_id"):
            if (value := getattr(self, name)) is not None:
                body[name] = value
        if self.occurred_at is not None:
            at = self.occurred_at
            body["occurred_at"] = at.isoformat() if isinstance(at, datetime) else at
        return body


@dataclass(frozen=True)
class EmotionStat:
    """An emotion in a person's texts: how many had it as their primary emotion (``emotions``) or cleared its
    threshold in them (``labels``), and its mean score over those texts (None: in none)."""

    count: int
    mean_score: float | None


def _stats(data: dict[str, Any]) -> dict[str, EmotionStat]:
    return {str(k): EmotionStat(int(v["count"]), v.get("mean_score")) for k, v in data.items()}


@dataclass(frozen=True)
class UserSummary:
    """``GET /analytics/users/{user_id}/summary``: a person's texts over [start, end)."""

    texts: int
    requests: int
    emotions: dict[str, EmotionStat]
    ekman: dict[str, float]
    sentiment: dict[str, float]
    #: positive share minus negative share of the texts, -1..1 (None: no texts)
    valence: float | None = None
    #: every label of the model: the texts it cleared its threshold in (a text counts under each it cleared)
    labels: dict[str, EmotionStat] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserSummary:
        return cls(
            texts=int(data["texts"]),
            requests=int(data.get("requests", 0)),
            emotions=_stats(data.get("emotions") or {}),
            ekman={str(k): float(v) for k, v in (data.get("ekman") or {}).items()},
            sentiment={str(k): float(v) for k, v in (data.get("sentiment") or {}).items()},
            valence=data.get("valence"),
            labels=_stats(data.get("labels") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class TimelineBucket(UserSummary):
    """One bucket of ``GET /analytics/users/{user_id}/timeline``: [start, end), UTC."""

    start: str = ""
    end: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineBucket:
        summary = UserSummary.from_json(data)
        return cls(**{**summary.__dict__, "start": str(data["start"]), "end": str(data.get("end", ""))})
