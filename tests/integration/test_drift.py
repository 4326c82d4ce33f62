"""The drift watch on real PostgreSQL and a real SQLite file (rows through the rollups, one tenant drifted,
one not), and a shifted stream through the real model: a tenant fed only anger and grief drifts, another
fed ordinary texts does not (GoEmotions; skipped without ../shared)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samo_serve.calls import RequestContext
from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.postprocess import PredictOptions
from samo_serve.errors import ValidationFailed
from samo_serve.modeling.goemotions import read_split
from samo_serve.observability.drift import js_divergence, psi
from samo_serve.observability.drift_watch import DriftWatch, card_references
from samo_serve.observability.metrics import Metrics, PrometheusFactory
from samo_serve.service import EmotionService
from samo_serve.settings import DriftSettings, Settings
from samo_serve.storage.request_log import RequestLog
from samo_serve.storage.request_log.store import LogStore

from .helpers import make_row

NOW = datetime.now(UTC)
REFERENCE = {"split": "test", "n": 100, "mix": {"joy": 0.5, "neutral": 0.4, "anger": 0.1},
             "confidence": [0, 0, 0, 0, 0, 0.2, 0.2, 0.2, 0.2, 0.2]}  # fmt: skip


def _rows(
    tenant: str, mix: dict[str, float], n: int, version: str = "m-1", rng: random.Random | None = None
) -> list[Any]:
    rng = rng or random.Random(3)
    labels = list(mix)
    return [
        make_row(NOW - timedelta(minutes=rng.uniform(5, 600)), tenant=tenant, version=version,
                 emotion=rng.choices(labels, weights=list(mix.values()))[0], confidence=rng.uniform(0.5, 0.999))
        for _ in range(n)
    ]  # fmt: skip




async def test_each_tenant_is_judged_against_the_reference(store: LogStore, tmp_path: Path) -> None:
    await store.insert(_rows("steady", REFERENCE["mix"], 400))
    await store.insert(_rows("angry", {"anger": 0.9, "joy": 0.1}, 400))
    await store.insert(_rows("quiet", REFERENCE["mix"], 20))  # under min_texts: not judged
    await store.insert(_rows("steady", {"joy": 1.0}, 300, version="m-0"))  # a version without a reference
    prom = PrometheusFactory()
    metrics = Metrics(prom)
    log = RequestLog(store, Settings(data_dir=tmp_path))
    watch = DriftWatch(log, DriftSettings(min_texts=100), {"m-1": REFERENCE}, metrics)
    report = await watch.update_gauges()
    tenants = report["tenants"]
    assert tenants["steady"]["m-1"]["judged"]
    assert not tenants["steady"]["m-1"]["drifted"]
    assert tenants["steady"]["m-1"]["mix_js"] < 0.02
    assert tenants["angry"]["m-1"]["drifted"]
    assert tenants["angry"]["m-1"]["mix_js"] > 0.3
    assert tenants["angry"]["m-1"]["moved"][0]["label"] == "anger"
    assert tenants["quiet"]["m-1"] == {"texts": 20, "judged": False}
    assert tenants["steady"]["m-0"] == {"texts": 300, "judged": False}
    assert tenants["angry"]["m-1"]["texts"] == 400  # edges of the window read raw, whole hours from rollups
    gauge = prom.registry.get_sample_value
    assert gauge("samo_drift_mix_js", {"tenant": "angry", "model_version": "m-1"}) == tenants["angry"]["m-1"]["mix_js"]
    assert gauge("samo_drift_mix_js", {"tenant": "quiet", "model_version": "m-1"}) is None
    one = await watch.report("angry")  # one tenant's report holds nothing of another's
    assert set(one["tenants"]) == {"angry"}


async def test_a_pinned_window_is_the_tenants_reference_until_unpinned(store: LogStore, tmp_path: Path) -> None:
    await store.insert(_rows("angry", {"anger": 0.9, "joy": 0.1}, 400))
    await store.insert(_rows("steady", REFERENCE["mix"], 400))
    log = RequestLog(store, Settings(data_dir=tmp_path))
    watch = DriftWatch(log, DriftSettings(min_texts=100), {"m-1": REFERENCE})
    assert (await watch.report("angry"))["tenants"]["angry"]["m-1"]["drifted"]
    pinned = await watch.pin("angry", NOW - timedelta(hours=12), NOW)  # angry is this tenant's normal
    assert pinned["pinned"]["m-1"]["n"] == 400
    after = (await watch.report())["tenants"]
    assert after["angry"]["m-1"]["mix_js"] < 0.001
    assert not after["angry"]["m-1"]["drifted"]
    assert after["angry"]["m-1"]["reference"].startswith("pinned ")
    assert after["steady"]["m-1"]["reference"] == "test"  # another tenant keeps the card's
    with pytest.raises(ValidationFailed, match="at least 100 texts"):
        await watch.pin("steady", NOW - timedelta(minutes=3), NOW)  # nothing written in the last minutes
    await watch.unpin("angry")
    assert (await watch.report("angry"))["tenants"]["angry"]["m-1"]["drifted"]


def test_the_distances_are_the_textbook_ones() -> None:
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.4 * np.log(0.9 / 0.5) - 0.4 * np.log(0.1 / 0.5))


async def test_a_shifted_stream_drifts_and_an_ordinary_one_does_not(
    make_settings: Callable[..., Settings], card: ModelCard, pipeline: LocalPipeline, goemotions_dir: Path
) -> None:
    """Through the service and the real model: 300 train texts whose gold labels are anger or grief for one
    tenant, 300 dev texts in file order for another, against the card's own test-set reference."""
    train = read_split(goemotions_dir, "train", len(card.labels))
    wanted = [card.labels.index("anger"), card.labels.index("grief")]
    shifted = [t for t, y in zip(train.texts, train.targets, strict=True) if y[wanted].any()][:300]
    ordinary = read_split(goemotions_dir, "dev", len(card.labels)).texts[:300]
    service = EmotionService.from_settings(card, pipeline, make_settings())
    assert service.request_log is not None
    assert service.drift is not None
    assert card_references(card), "the shipped card carries its test-set reference"
    await service.start()
    try:
        for tenant, texts in (("shifted", shifted), ("ordinary", ordinary)):
            for i in range(0, len(texts), 32):
                await service.predict(texts[i : i + 32], PredictOptions(), RequestContext(tenant_id=tenant))
        await service.request_log.writer.flush()
        report = await service.drift.report()
    finally:
        await service.stop()
    got = {t: report["tenants"][t][card.version] for t in ("shifted", "ordinary")}
    threshold = DriftSettings().mix_js_threshold
    assert got["shifted"]["mix_js"] > threshold, got
    assert got["ordinary"]["mix_js"] < threshold, got
    assert {m["label"] for m in got["shifted"]["moved"][:3]} & {"anger", "annoyance", "sadness", "grief"}
    print("drift", {t: (g["mix_js"], g["confidence_psi"]) for t, g in got.items()})
