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
]


class PredictRequest(PredictOptions):
    text: StrictStr = Field(description="the text to classify (1 to max_text_chars characters)")


class BatchPredictRequest(PredictOptions):
    texts: list[StrictStr] = Field(min_length=1, description="1 to max_batch_texts texts")


class EmotionScore(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    emotions: list[EmotionScore]
    primary: EmotionScore
    model_version: str
    cache: Literal["l1", "l2", "l3", "miss"]
    truncated: bool
    latency_ms: float
    scores: dict[str, float] | None = None


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
