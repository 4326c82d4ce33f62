"""The drift watch of one ingress replica: reports on request, and the ``samo_drift_*`` gauges kept current.

It reads the hourly rollups (``RequestLog.drift_rows``): no scan of the raw log, a few thousand rollup rows
for a day of every tenant. References are per model version: the card's test-set mix and confidence
(``metrics.test.reference``) for the served version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from samo_serve.core.times import utc_iso
from samo_serve.errors import ValidationFailed
from samo_serve.observability.drift import reference_from, window_counts, window_report
from samo_serve.observability.metrics import Metrics
from samo_serve.settings import DriftSettings

if TYPE_CHECKING:
    from samo_serve.core.model_card import ModelCard
    from samo_serve.storage.request_log import RequestLog

__all__ = ["DriftWatch", "card_references"]

log = logging.getLogger(__name__)


def card_references(card: ModelCard) -> dict[str, dict[str, Any]]:
    """The served version's reference, when its card has one (``samo-serve model eval --write-reference``)."""
    reference = card.metrics.get("test", {}).get("reference")
    return {card.version: reference} if reference else {}


class DriftWatch:
    def __init__(
        self,
        request_log: RequestLog,
        settings: DriftSettings,
        references: dict[str, dict[str, Any]],
        metrics: Metrics | None = None,
    ) -> None:
        self.request_log = request_log
        self.settings = settings
        self.references = references
        self.metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._gauged: set[tuple[str, str]] = set()

    async def report(
        self, tenant_id: str | None = None, hours: int | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Each tenant's (or one tenant's) drift over the last ``hours`` (default ``window_hours``)."""
        end = now or datetime.now(UTC)
        start = end - timedelta(hours=hours or self.settings.window_hours)
        mix, confidence = await self.request_log.drift_rows(start, end, tenant_id)
        pinned = {(t, v): json.loads(r) for t, v, r in await self.request_log.pinned_references()}
        tenants = window_report(mix, confidence, self.references, self.settings.min_texts, pinned)
        if tenant_id is not None:
            tenants = {tenant_id: tenants.get(tenant_id, {})}
        thresholds = {
            "mix_js": self.settings.mix_js_threshold,
            "confidence_psi": self.settings.confidence_psi_threshold,
        }
        for versions in tenants.values():
            for entry in versions.values():
                if entry["judged"]:
                    entry["drifted"] = entry["mix_js"] > thresholds["mix_js"] or (
                        entry["confidence_psi"] > thresholds["confidence_psi"]
                    )
        return {
            "start": utc_iso(start),
            "end": utc_iso(end),
            "reference": {v: {"split": r.get("split"), "n": r.get("n")} for v, r in self.references.items()},
            "thresholds": thresholds,
            "tenants": tenants,
        }

    async def pin(self, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Make the tenant's texts of [start, end) its reference, per model version (``samo-serve drift pin``):
        drift then measures change from that window (a new customer's normal), not from the test set."""
        mix_rows, confidence_rows = await self.request_log.drift_rows(start, end, tenant_id)
        mix, confidence = window_counts(mix_rows, confidence_rows)
        split = f"pinned {utc_iso(start)}..{utc_iso(end)}"
        references = {v: reference_from(c, confidence[(t, v)], split) for (t, v), c in mix.items() if t == tenant_id}
        too_few = [v for v, r in references.items() if r["n"] < self.settings.min_texts]
        if too_few or not references:
            raise ValidationFailed(
                f"a pinned window needs at least {self.settings.min_texts} texts of the tenant per model version "
                f"(drift.min_texts); [start, end) has {({v: references[v]['n'] for v in too_few}) or 'none'}",
                [{"loc": ["query", "start"], "msg": "too few texts in the window"}],
            )
        await self.request_log.pin_references(tenant_id, references)
        return {"tenant": tenant_id, "pinned": {v: {"split": r["split"], "n": r["n"]} for v, r in references.items()}}

    async def unpin(self, tenant_id: str) -> None:
        """Back to the model card's reference."""
        await self.request_log.pin_references(tenant_id, {})

    async def update_gauges(self) -> dict[str, Any]:
        """Set ``samo_drift_mix_js`` and ``samo_drift_confidence_psi`` of every judged tenant and version;
        a series whose tenant has gone quiet (or below ``min_texts``) is set to 0, not left stale."""
        report = await self.report()
        if self.metrics is None:
            return report
        seen = set()
        for tenant, versions in report["tenants"].items():
            for version, entry in versions.items():
                if entry["judged"]:
                    tags = {"tenant": tenant, "model_version": version}
                    self.metrics.drift_mix_js.set(entry["mix_js"], tags)
                    self.metrics.drift_confidence_psi.set(entry["confidence_psi"], tags)
                    seen.add((tenant, version))
        for tenant, version in self._gauged - seen:
            tags = {"tenant": tenant, "model_version": version}
            self.metrics.drift_mix_js.set(0.0, tags)
            self.metrics.drift_confidence_psi.set(0.0, tags)
        self._gauged = seen
        return report

    def start(self) -> None:
        if self._task is None and self.settings.enabled and self.references:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="drift-watch")

    async def _loop(self) -> None:
        while True:
            try:
                await self.update_gauges()
            except Exception as exc:  # the log's database down: the gauges wait for the next round
                log.debug("drift gauges not updated: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
