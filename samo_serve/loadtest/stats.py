"""The served ``/stats`` document, read by the load tester (replica counts per level)."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["fetch_stats"]


async def fetch_stats(client: httpx.AsyncClient) -> dict[str, Any] | None:
    """``GET /stats`` on the client's base URL; None when it does not answer 200 with JSON."""
    try:
        response = await client.get("/stats")
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
