"""Aggregates over the request log: /analytics/emotions and /analytics/summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from starlette.responses import Response

from samo_serve.errors import AnalyticsUnavailable
from samo_serve.http.responses import json_response
from samo_serve.http.schemas import ErrorResponse
from samo_serve.service import EmotionService
from samo_serve.storage.request_log import RequestLog, parse_range

__all__ = ["add_analytics_routes"]

_RESPONSES: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


def add_analytics_routes(app: FastAPI, service: EmotionService, limited: Sequence[Depends]) -> None:
    def request_log() -> RequestLog:
        if service.request_log is None:
            raise AnalyticsUnavailable("the request log is off (request_log.enabled=false)")
        return service.request_log

    @app.get(
        "/analytics/emotions",
        responses=_RESPONSES,
        summary="Per primary emotion in [start, end): count, mean confidence, mean processing time",
        dependencies=limited,
    )
    async def analytics_emotions(start: str | None = None, end: str | None = None) -> Response:
        start_at, end_at = parse_range(start, end)
        rows = await request_log().emotion_counts(start_at, end_at)
        return json_response({"start": start_at.isoformat(), "end": end_at.isoformat(), "emotions": rows})

    @app.get(
        "/analytics/summary",
        responses=_RESPONSES,
        summary="Requests, texts, cache hit rate and p50/p95 processing time in [start, end)",
        dependencies=limited,
    )
    async def analytics_summary(start: str | None = None, end: str | None = None) -> Response:
        start_at, end_at = parse_range(start, end)
        summary = await request_log().summary(start_at, end_at)
        return json_response({"start": start_at.isoformat(), "end": end_at.isoformat(), **summary})
