"""Request and response models of the HTTP contract (v1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints, field_validator

from samo_serve.core.postprocess import PredictOptions
from samo_serve.core.times import parse_utc

__all__ = [
    "ENTRY_ID_PATTERN",
    "MAX_FUTURE",
    "USER_ID_PATTERN",
    "Authorship",
    "BatchItem",
    "BatchPredictRequest",
    "BatchPredictResponse",
    "Entry",
    "EntryId",
    "ErrorResponse",
    "PredictOptions",
    "PredictRequest",
    "PredictResponse",
    "SegmentResult",
    "UserId",
]

#: an opaque id the caller chooses for the person who wrote the text (unique within the caller's tenant)
USER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
UserId = Annotated[str, StringConstraints(strict=True, pattern=USER_ID_PATTERN)]
#: the caller's id of one journal entry (unique within the tenant): sent again, it replaces the entry
ENTRY_ID_PATTERN = USER_ID_PATTERN
EntryId = Annotated[str, StringConstraints(strict=True, pattern=ENTRY_ID_PATTERN)]
_ENTRY_ID_DESCRIPTION = (
    "the caller's id of this journal entry, 1-128 characters of A-Z a-z 0-9 . _ : @ - (unique within the "
    "tenant): sent again, its new text replaces the old one in the log and the analytics (an edit)"
)
#: clocks disagree and time zones confuse: a day ahead is the most an entry's time may be
MAX_FUTURE = timedelta(days=1)


class Authorship(BaseModel):
    """Whose text it is and when it was written: recorded with each text's row, never answered back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: UserId | None = Field(
        default=None, description="the person who wrote it: 1-128 characters of A-Z a-z 0-9 . _ : @ -"
    )
    occurred_at: datetime | None = Field(
        default=None,
        description="when it was written (ISO-8601; no zone = UTC; at most a day ahead); default: now",
    )

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_and_not_ahead(cls, value: object) -> datetime | None:
        # ISO-8601 text only (pydantic would also take a number, or digits, as Unix time)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("give an ISO-8601 time as a string, e.g. 2026-03-01T08:30:00Z")
        moment = parse_utc(value)
        if moment > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError("more than a day in the future")
        return moment


class Entry(PredictOptions, Authorship):
    """A request's options and its texts' authorship."""


class PredictRequest(Entry):
    text: StrictStr = Field(description="the text to classify (1 to max_text_chars characters)")
    entry_id: EntryId | None = Field(default=None, description=_ENTRY_ID_DESCRIPTION)


class BatchItem(Authorship):
    """One text of a batch with its own person, time and entry id (each defaults to the request's)."""

    text: StrictStr = Field(description="the text to classify (1 to max_text_chars characters)")
    entry_id: EntryId | None = Field(default=None, description=_ENTRY_ID_DESCRIPTION + "; once per batch")


class BatchPredictRequest(Entry):
    texts: list[BatchItem] = Field(
        min_length=1,
        description="1 to max_batch_texts texts: strings, or objects {text, user_id?, occurred_at?, entry_id?}",
    )

    @field_validator("texts", mode="before")
    @classmethod
    def _strings_are_items(cls, value: object) -> object:
        # a plain string is an item of just its text (errors then name `texts.3.text`, not a union branch)
        if isinstance(value, list):
            return [{"text": v} if isinstance(v, str) else v for v in value]
        return value


class EmotionScore(BaseModel):
    label: str
    score: float


class SegmentResult(BaseModel):
    start: int = Field(description="offset of the segment's first character (Python str code points)")
    end: int = Field(description="offset just past its last character: text[start:end] is the segment")
    emotions: list[EmotionScore]
    primary: EmotionScore
    scores: dict[str, float] | None = None


class PredictResponse(BaseModel):
    emotions: list[EmotionScore]
    primary: EmotionScore
    model_version: str
    cache: Literal["l1", "l2", "l3", "miss"] = Field(description="a document's slowest segment ('miss': any missed)")
    truncated: bool = Field(description="true only where a cap was hit: part of the text was not read")
    truncated_by: Literal["max_segments", "model_window"] | None = Field(
        default=None, description="which cap, when truncated"
    )
    latency_ms: float
    scores: dict[str, float] | None = None
    segment_count: int | None = Field(
        default=None, description="sentences and windows read: only for a document or with `segments: true`"
    )
    ekman: list[EmotionScore] | None = Field(default=None, description="Ekman groups, each its strongest label")
    sentiment: list[EmotionScore] | None = Field(default=None, description="sentiment groups, likewise")
    segments: list[SegmentResult] | None = Field(default=None, description="with `segments: true`: the arc")


class BatchPredictResponse(BaseModel):
    results: list[PredictResponse]
    count: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str
    details: object | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
