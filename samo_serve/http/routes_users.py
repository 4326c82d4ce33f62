"""DELETE /users/{user_id} and /users/{user_id}/entries/{entry_id}: erase a person's rows, or one entry's,
from the request log (and all that is kept from them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.params import Depends as DependsParam
from starlette.responses import Response

from samo_serve.http.guard import needs
from samo_serve.http.responses import json_response
from samo_serve.http.routes_analytics import TenantQuery, UserPath, tenant_filter
from samo_serve.http.schemas import ENTRY_ID_PATTERN, ErrorResponse
from samo_serve.service import EmotionService

__all__ = ["add_user_routes"]

EntryPath = Annotated[str, Path(pattern=ENTRY_ID_PATTERN, description="the caller's id of the journal entry")]

_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 422, 429, 503)}


def add_user_routes(app: FastAPI, service: EmotionService, limited: Sequence[DependsParam]) -> None:
    @app.delete(
        "/users/{user_id}",
        responses=_RESPONSES,
        summary="Erase a person's texts in the caller's tenant (log, rollups, spill files, cache): {deleted: n}",
        dependencies=[Depends(needs("analytics")), *limited],
    )
    async def erase_user(request: Request, user_id: UserPath, tenant: TenantQuery = None) -> Response:
        # admin: the tenant given, or every tenant's user of this id; any other key: its own tenant only.
        tenant_id = tenant_filter(request, tenant)
        deleted = await service.erase_user(tenant_id, user_id)
        return json_response({"deleted": deleted})

    @app.delete(
        "/users/{user_id}/entries/{entry_id}",
        responses=_RESPONSES,
        summary="Erase one journal entry of a person (log, rollups, spill files, cache): {deleted: n}",
        dependencies=[Depends(needs("analytics")), *limited],
    )
    async def erase_entry(
        request: Request, user_id: UserPath, entry_id: EntryPath, tenant: TenantQuery = None
    ) -> Response:
        # found by (tenant, user, entry id), never by its text; another tenant's or person's reads as not there
        deleted = await service.erase_user(tenant_filter(request, tenant), user_id, entry_id)
        return json_response({"deleted": deleted})
