"""Aggregates over the request log, each answered from the caller's tenant only.

/analytics/emotions and /analytics/summary over a range (optionally one user), /analytics/timeline
(the dashboard's emotion mix over time), and a user's own: /analytics/users/{user_id}/timeline and
/summary. A key with ``analytics`` reads its tenant; ``admin`` reads every tenant, or one given as
``?tenant=``. A user of another tenant reads exactly as a user with no data: the queries are filtered by
tenant before anything is counted, so nothing (not even existence) crosses tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.params import Depends as DependsParam
from starlette.responses import Response

from samo_serve.core.times import utc_iso
from samo_serve.errors import AnalyticsUnavailable, Forbidden, ValidationFailed
from samo_serve.http.guard import needs, require
from samo_serve.http.responses import json_response
from samo_serve.http.schemas import USER_ID_PATTERN, ErrorResponse
from samo_serve.observability.drift_watch import DriftWatch
from samo_serve.service import EmotionService
from samo_serve.storage.request_log import RequestLog, parse_range
from samo_serve.storage.request_log.analytics import Bucket, bucket_count

__all__ = ["MAX_BUCKETS", "add_analytics_routes", "tenant_filter"]

_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 422, 429, 503)}
#: a timeline longer than this is refused (422): ask for a coarser bucket or a shorter range
MAX_BUCKETS = 10_000

UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN, description="the caller's id of the person")]
UserQuery = Annotated[str | None, Query(pattern=USER_ID_PATTERN, description="only this person's texts")]
Start = Annotated[str | None, Query(description="ISO-8601, inclusive (default: end - 24 h); no zone = UTC")]
End = Annotated[str | None, Query(description="ISO-8601, exclusive (default: now); no zone = UTC")]
BucketQuery = Annotated[Bucket, Query(description="UTC hours, days, weeks (from Monday) or months (from the 1st)")]
TenantQuery = Annotated[
    str | None, Query(description="admin only: one tenant (default: every tenant); others always read their own")
]


def tenant_filter(request: Request, tenant: str | None, scope: str = "analytics") -> str | None:
    """The tenant a request may read or erase: the key's own, or for ``admin`` every one (None) or ``tenant``.

    Raises:
        Forbidden: the key lacks ``scope``, or names a tenant without ``admin``.
    """
    who = require(request, scope)
    if who.admin:
        return tenant
    if tenant is not None:
        raise Forbidden("only an `admin` key may choose a tenant (`tenant`); this key reads its own")
    return who.tenant_id


def _timeline_range(start: str | None, end: str | None, bucket: Bucket) -> tuple[datetime, datetime]:
    start_at, end_at = parse_range(start, end)
    if (n := bucket_count(start_at, end_at, bucket)) > MAX_BUCKETS:
        raise ValidationFailed(
            f"{n} {bucket} buckets in [start, end); at most {MAX_BUCKETS}: choose a coarser bucket or a shorter range",
            [{"loc": ["query", "bucket"], "msg": f"more than {MAX_BUCKETS} buckets"}],
        )
    return start_at, end_at


def _range(start_at: datetime, end_at: datetime) -> dict[str, str]:
    return {"start": utc_iso(start_at), "end": utc_iso(end_at)}


def add_analytics_routes(app: FastAPI, service: EmotionService, limited: Sequence[DependsParam]) -> None:
    def request_log() -> RequestLog:
        if service.request_log is None:
            raise AnalyticsUnavailable("the request log is off (request_log.enabled=false)")
        return service.request_log

    scoped = [Depends(needs("analytics")), *limited]

    @app.get(
        "/analytics/emotions",
        responses=_RESPONSES,
        summary="Per primary emotion in [start, end): count, mean confidence, mean processing time",
        dependencies=scoped,
    )
    async def analytics_emotions(
        request: Request, start: Start = None, end: End = None, user_id: UserQuery = None, tenant: TenantQuery = None
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        start_at, end_at = parse_range(start, end)
        rows = await request_log().emotion_counts(start_at, end_at, tenant_id=tenant_id, user_id=user_id)
        return json_response({**_range(start_at, end_at), "emotions": rows})

    @app.get(
        "/analytics/summary",
        responses=_RESPONSES,
        summary="Requests, texts, cache hit rate and p50/p95 processing time in [start, end)",
        dependencies=scoped,
    )
    async def analytics_summary(
        request: Request, start: Start = None, end: End = None, user_id: UserQuery = None, tenant: TenantQuery = None
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        start_at, end_at = parse_range(start, end)
        summary = await request_log().summary(start_at, end_at, tenant_id=tenant_id, user_id=user_id)
        return json_response({**_range(start_at, end_at), **summary})

    @app.get(
        "/analytics/timeline",
        responses=_RESPONSES,
        summary="Emotion mix per UTC bucket in [start, end): every user of the tenant, or one",
        dependencies=scoped,
    )
    async def analytics_timeline(
        request: Request,
        start: Start = None,
        end: End = None,
        bucket: BucketQuery = "hour",
        user_id: UserQuery = None,
        tenant: TenantQuery = None,
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        start_at, end_at = _timeline_range(start, end, bucket)
        buckets = await request_log().timeline(tenant_id, user_id, start_at, end_at, bucket)
        return json_response({**_range(start_at, end_at), "bucket": bucket, "buckets": buckets})

    _add_drift_routes(app, service, request_log, scoped)
    _add_user_analytics(app, request_log, scoped)


def _add_drift_routes(
    app: FastAPI, service: EmotionService, request_log: Callable[[], RequestLog], scoped: list[Any]
) -> None:
    """GET /analytics/drift, and pinning a tenant's own reference (docs/METRICS.md, "Drift")."""

    @app.get(
        "/analytics/drift",
        responses=_RESPONSES,
        summary="Drift of each tenant's emotion mix and confidence from the model's reference, per model version",
        dependencies=scoped,
    )
    async def analytics_drift(
        request: Request,
        hours: Annotated[int | None, Query(ge=1, le=744, description="the window (default drift.window_hours)")] = None,
        tenant: TenantQuery = None,
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        return json_response(await watch().report(tenant_id, hours))

    def watch() -> DriftWatch:
        request_log()  # 503 when the log is off
        if service.drift is None:
            raise AnalyticsUnavailable("the drift watch needs the request log")
        return service.drift

    def drift_watch(request: Request, tenant: str | None) -> tuple[DriftWatch, str]:
        """The watch and the one tenant a pin is for: the key's own, or the one an admin names."""
        tenant_id = tenant_filter(request, tenant)
        drift = watch()
        if tenant_id is None:
            raise ValidationFailed("an admin key pins one tenant's reference: add `tenant`",
                                   [{"loc": ["query", "tenant"], "msg": "required for an admin key"}])  # fmt: skip
        return drift, tenant_id

    @app.post(
        "/analytics/drift/pin",
        responses=_RESPONSES,
        summary="Make the tenant's texts of [start, end) its drift reference, per model version",
        dependencies=scoped,
    )
    async def drift_pin(request: Request, start: Start = None, end: End = None, tenant: TenantQuery = None) -> Response:
        watch, tenant_id = drift_watch(request, tenant)
        start_at, end_at = parse_range(start, end)
        return json_response(await watch.pin(tenant_id, start_at, end_at))

    @app.delete(
        "/analytics/drift/pin",
        responses=_RESPONSES,
        summary="Drop the tenant's pinned drift references: back to the model card's",
        dependencies=scoped,
    )
    async def drift_unpin(request: Request, tenant: TenantQuery = None) -> Response:
        watch, tenant_id = drift_watch(request, tenant)
        await watch.unpin(tenant_id)
        return json_response({"tenant": tenant_id, "pinned": {}})


def _add_user_analytics(app: FastAPI, request_log: Callable[[], RequestLog], scoped: list[Any]) -> None:
    @app.get(
        "/analytics/users/{user_id}/timeline",
        responses=_RESPONSES,
        summary="One person's emotions per UTC bucket: texts, count and mean score per emotion, Ekman and sentiment",
        dependencies=scoped,
    )
    async def user_timeline(
        request: Request,
        user_id: UserPath,
        start: Start = None,
        end: End = None,
        bucket: BucketQuery = "day",
        tenant: TenantQuery = None,
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        start_at, end_at = _timeline_range(start, end, bucket)
        buckets = await request_log().timeline(tenant_id, user_id, start_at, end_at, bucket)
        body = {"user_id": user_id, **_range(start_at, end_at), "bucket": bucket, "buckets": buckets}
        return json_response(body)

    @app.get(
        "/analytics/users/{user_id}/summary",
        responses=_RESPONSES,
        summary="One person's texts and emotion mix in [start, end): count and mean score per emotion, groups",
        dependencies=scoped,
    )
    async def user_summary(
        request: Request, user_id: UserPath, start: Start = None, end: End = None, tenant: TenantQuery = None
    ) -> Response:
        tenant_id = tenant_filter(request, tenant)
        start_at, end_at = parse_range(start, end)
        summary = await request_log().summary(start_at, end_at, tenant_id=tenant_id, user_id=user_id)
        return json_response({"user_id": user_id, **_range(start_at, end_at), **summary})
