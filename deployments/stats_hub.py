"""StatsHub deployment: merges the per-second windows of every ingress replica for ``GET /stats``.

Each ingress replica pushes its new rows once a second (one small handle call); /stats on any replica
asks the hub for the merged view, plus each deployment's status and replica states from Serve's own status.
One replica, a twentieth of a CPU: it only adds arrays.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray import serve

from deployments.common import settings_from_args
from samo_serve.observability.telemetry import build_view, deployment_states
from samo_serve.observability.window_stats import WindowStats, merge

#: a replica that has not pushed for this long no longer counts as reporting (its rows stay in the windows)
STALE_S = 30.0
REPLICAS_TTL_S = 5.0


class StatsHub:
    def __init__(self, args: dict[str, Any]) -> None:
        self._settings = settings_from_args(args)
        self._windows: dict[str, WindowStats] = {}
        self._gauges: dict[str, dict[str, Any]] = {}
        self._deployments: tuple[float, dict[str, dict[str, Any]] | None] = (0.0, None)

    def push(self, replica: str, rows: list[tuple[int, list[float]]], gauges: dict[str, Any]) -> None:
        self._windows.setdefault(replica, WindowStats()).absorb(rows)
        self._gauges[replica] = {**gauges, "seen": time.time()}

    async def view(self) -> dict[str, Any]:
        now = time.time()
        live = {r: g for r, g in self._gauges.items() if now - g["seen"] < STALE_S}
        obs = self._settings.observability
        return build_view(
            merge(self._windows.values()), live, obs.recommendations, self._settings.limits.max_rss_mb,
            deployments=await self._deployment_states(), now=now,
        )  # fmt: skip

    async def _deployment_states(self) -> dict[str, dict[str, Any]] | None:
        fetched_at, states = self._deployments
        if time.monotonic() - fetched_at < REPLICAS_TTL_S:
            return states
        try:
            status = await asyncio.to_thread(serve.status)
            app = status.applications.get(serve.get_replica_context().app_name)
            states = deployment_states(app.deployments if app else {})
        except Exception:  # the controller busy or restarting: report the last known states
            return states
        self._deployments = (time.monotonic(), states)
        return states


class HubClient:
    """:class:`samo_serve.observability.telemetry.StatsHubClient` over a handle to the StatsHub deployment."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def push(self, replica: str, rows: list[tuple[int, list[float]]], gauges: dict[str, Any]) -> None:
        await self._handle.push.remote(replica, rows, gauges)

    async def view(self) -> dict[str, Any]:
        view: dict[str, Any] = await self._handle.view.remote()
        return view


__all__ = ["HubClient", "StatsHub"]
