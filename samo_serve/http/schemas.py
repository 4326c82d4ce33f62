"""Request and response models of the HTTP contract (v1)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictStr

from samo_serve.core.postprocess import PredictOptions

__all__ = [
    "BatchPredictRequest",
    "BatchPredictResponse",
    "ErrorResponse",
    "PredictOptions",
    "PredictRequest",
    "PredictResponse",
    "SegmentResult",
]


class PredictRequest(PredictOptions):
    text: StrictStr = Field(description="the text to classify (1 to max_text_chars characters)")


class BatchPredictRequest(PredictOptions):
    texts: list[StrictStr] = Field(min_length=1, description="1 to max_batch_texts texts")


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
