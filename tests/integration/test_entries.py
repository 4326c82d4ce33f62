"""Journal entries in the request log, on real PostgreSQL and a real SQLite file: an entry sent again
replaces its row (an edit), one entry is erased alone, and the rollups stay equal to the raw rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from samo_serve.core.model_card import ModelCard
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings
from samo_serve.storage.request_log import RequestLog
from samo_serve.storage.request_log.rows import LogRow
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.store import LogStore, RangeQuery

from .helpers import T0, count_rows, make_row

START, END = T0 - timedelta(days=1), T0 + timedelta(days=1)  # whole days and hours: read from the rollups


async def _raw_rows(store: LogStore) -> list[tuple[Any, ...]]:
    """(tenant, user, entry, emotion) of every stored row, straight from the table."""
    sql = "SELECT tenant_id, user_id, entry_id, primary_emotion FROM emotion_requests ORDER BY 1, 2, 3, 4"
    if store.dialect == "postgresql":
        pool = await store._get_pool()  # type: ignore[attr-defined]
        rows = [tuple(r) for r in await pool.fetch(sql)]
    else:
        rows = await store._run(lambda c: c.execute(sql).fetchall())  # type: ignore[attr-defined]
    return sorted(rows, key=lambda r: tuple("" if v is None else v for v in r))


async def _views(store: LogStore) -> Any:
    """Everything analytics read from the rollups for [START, END): tenants', users' and the cache dimension."""
    out = []
    for query in (
        RangeQuery("emotion", START, END, "A"),
        RangeQuery("emotion", START, END, "A", "u1"),
        RangeQuery("emotion", START, END, "B", "u1"),
        RangeQuery("cache", START, END),
        RangeQuery("emotion", START, END, "A", by_hour=True),
        RangeQuery("label", START, END, "A"),
        RangeQuery("label", START, END, "A", "u1", by_hour=True),
        RangeQuery("drift_mix", START, END, by_tenant=True),
        RangeQuery("drift_confidence", START, END, "A"),
    ):
        out.append(sorted(tuple(_plain(v) for v in r) for r in await store.range(query)))
    return out


def _plain(value: Any) -> Any:
    """A range row's value, comparable across dialects and rebuilds: numbers rounded, times as text."""
    return round(float(value), 6) if isinstance(value, (int, float)) else str(value)


async def _rollups_equal_raw(store: LogStore) -> Any:
    """The rollups kept by inserts and deletes, and the same views once rebuilt from the raw rows: equal."""
    kept = await _views(store)
    await store.rebuild_rollups()
    assert await _views(store) == kept
    return kept


def _entry(at: datetime, entry: str, emotion: str, tenant: str = "A", user: str | None = "u1") -> LogRow:
    """An entry whose primary and one more label (fixed per emotion) cleared their thresholds."""
    cleared = {emotion: 0.8, "disappointment" if emotion == "joy" else "nervousness": 0.4}
    return make_row(
        at, tenant=tenant, user=user, entry=entry, emotion=emotion, text_hash=emotion[0] * 64, cleared=cleared
    )


async def test_an_entry_sent_again_replaces_its_row_and_its_rollups(store: LogStore) -> None:
    first = [_entry(T0, "e1", "joy"), _entry(T0, "e2", "anger"), make_row(T0, tenant="A", user="u1")]
    other_tenant = _entry(T0, "e1", "grief", tenant="B")  # the same entry id in another tenant: another entry
    assert await store.insert([*first, other_tenant]) == 4
    edit = _entry(T0 + timedelta(minutes=5), "e1", "sadness")
    assert await store.insert([edit]) == 1
    assert await store.insert([edit]) == 0  # a retried batch replaces nothing of itself
    assert await _raw_rows(store) == [
        ("A", "u1", None, "joy"), ("A", "u1", "e1", "sadness"), ("A", "u1", "e2", "anger"), ("B", "u1", "e1", "grief"),
    ]  # fmt: skip
    await _rollups_equal_raw(store)
    assert await count_rows(store) == 4


async def test_the_latest_row_of_an_entry_wins_whatever_order_it_arrives_in(store: LogStore) -> None:
    old, new, newest = (_entry(T0 + timedelta(minutes=m), "e1", e) for m, e in ((0, "joy"), (5, "anger"), (9, "fear")))
    assert await store.insert([old, newest, new]) == 1  # one batch: its latest row per entry
    assert await store.insert([new]) == 0  # replayed from a spill file after the edit: older, so dropped
    assert await _raw_rows(store) == [("A", "u1", "e1", "fear")]
    await _rollups_equal_raw(store)


async def test_one_entry_is_erased_alone_with_its_rollups(store: LogStore, tmp_path: Path) -> None:
    await store.insert([_entry(T0, "e1", "joy"), _entry(T0, "e2", "anger"), _entry(T0, "e1", "grief", tenant="B")])
    log = RequestLog(store, Settings(data_dir=tmp_path))
    spill = SpillFiles(tmp_path / "spill")
    spill.append([_entry(T0, "e2", "anger"), _entry(T0, "e1", "joy")])
    spill.rotate()
    log.writer.spill = spill
    log.writer.enqueue([_entry(T0, "e2", "anger")])

    assert await log.erase_user("A", "u1", "e2") == 1
    assert await _raw_rows(store) == [("A", "u1", "e1", "joy"), ("B", "u1", "e1", "grief")]
    await _rollups_equal_raw(store)
    claims = [claim for path in spill.pending() if (claim := spill.claim(path)) is not None]
    left = [(r.entry_id, r.primary_emotion) for claim in claims for r in claim.rows]
    for claim in claims:
        claim.release()
    assert left == [("e1", "joy")]
    assert log.writer.pending == 0
    assert await log.erase_user("A", "u1", "unknown") == 0
    assert await log.erase_user("A", "u2", "e1") == 0  # another person's entry id reads as not there
    assert await log.erase_user("A", "u1", "e1") == 1
    assert await _raw_rows(store) == [("B", "u1", "e1", "grief")]
    await _rollups_equal_raw(store)


async def test_entries_over_http_import_edit_and_delete(
    make_settings: Callable[..., Settings],
    card: ModelCard,
    pipeline: LocalPipeline,
    database_url: str,
    store: LogStore,  # an empty log at database_url
) -> None:
    """Through the app (in-process, the real model): a batch import with ids and people per item, an edit
    through /predict, one entry deleted; bad entries are 422 naming the field."""
    settings = make_settings(database_url=database_url)
    service = EmotionService.from_settings(card, pipeline, settings)
    app = create_app(settings, service)
    items = [
        {"text": "Thank you so much, this made my week.", "user_id": "u1", "entry_id": "day-1"},
        {"text": "I am furious about how they treated us.", "user_id": "u1", "entry_id": "day-2"},
        "A plain string still works.",
    ]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://samo") as client:
            r = await client.post("/predict/batch", json={"texts": items, "occurred_at": "2026-11-20T08:00:00Z"})
            assert r.status_code == 200, r.text
            assert service.request_log is not None
            await service.request_log.writer.flush()
            # the day's timeline counts every label each entry cleared at the card's thresholds
            cut = dict(zip(card.labels, card.thresholds, strict=True))
            cleared = [
                {e["label"] for e in out["emotions"] if e["score"] >= cut[e["label"]]} for out in r.json()["results"]
            ]
            assert sum(map(len, cleared)) > 2  # an entry with more than one label
            day = "start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&bucket=day"
            (bucket,) = (await client.get(f"/analytics/users/u1/timeline?{day}")).json()["buckets"]
            assert list(bucket["labels"]) == card.labels
            assert {k: v["count"] for k, v in bucket["labels"].items() if v["count"]} == {
                label: sum(label in c for c in cleared[:2]) for label in set().union(*cleared[:2])
            }
            edit = {"text": "Honestly I am a bit sad today.", "user_id": "u1", "entry_id": "day-1"}
            assert (await client.post("/predict", json=edit)).status_code == 200
            await service.request_log.writer.flush()
            rows = await _raw_rows(service.request_log.store)
            assert rows == [("", None, None, "neutral"), ("", "u1", "day-1", "sadness"), ("", "u1", "day-2", "anger")]

            bad = [
                ({"text": "x", "entry_id": "not an id"}, "/predict", "`entry_id`"),
                ({"texts": ["a", {"text": "b", "entry_id": "e 1"}]}, "/predict/batch", "`texts.1.entry_id`"),
                ({"texts": [{"text": "b", "mood": "ok"}]}, "/predict/batch", "`texts.0.mood`"),
                ({"texts": [{"text": "a", "entry_id": "e"}, {"text": "b", "entry_id": "e"}]}, "/predict/batch",
                 "`texts.1.entry_id`"),
            ]  # fmt: skip
            for body, path, named in bad:
                r = await client.post(path, json=body)
                assert r.status_code == 422, (body, r.text)
                assert named in r.json()["error"]["message"], (body, r.text)

            r = await client.delete("/users/u1/entries/day-2")
            assert (r.status_code, r.json()) == (200, {"deleted": 1})
            assert (await client.delete("/users/u1/entries/day-2")).json() == {"deleted": 0}
            assert (await client.delete("/users/u2/entries/day-1")).json() == {"deleted": 0}  # not u2's entry
            assert (await client.delete("/users/u1/entries/bad%20id")).status_code == 422
            assert await _raw_rows(service.request_log.store) == [
                ("", None, None, "neutral"), ("", "u1", "day-1", "sadness"),
            ]  # fmt: skip
            again = await client.post("/predict", json={"text": items[1]["text"]})  # type: ignore[index]
            assert again.json()["cache"] == "miss"  # the erased entry's result is gone from the caches too

            # Open Inference Protocol: the person as a parameter, each text's entry as an extra BYTES input
            tensor = {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["What a lovely surprise!", "Ok."]}
            ids = {"name": "entry_id", "shape": [2], "datatype": "BYTES", "data": ["day-3", ""]}
            infer = f"/v2/models/{card.name}/infer"
            r = await client.post(infer, json={"parameters": {"user_id": "u9"}, "inputs": [tensor, ids]})
            assert r.status_code == 200, r.text
            for bad, named in (
                ({"inputs": [tensor, {**ids, "data": ["day 3", ""]}]}, "entry_id[0]"),
                ({"inputs": [tensor, {**ids, "data": ["d", "d"]}]}, "twice"),
                ({"parameters": {"user_id": "no good"}, "inputs": [tensor]}, "parameters: user_id"),
                ({"inputs": [tensor, {**ids, "name": "mood"}]}, "optionally"),
            ):
                r = await client.post(infer, json=bad)
                assert (r.status_code, named in r.json()["error"]) == (400, True), (bad, r.text)
            await service.request_log.writer.flush()
            theirs = [row for row in await _raw_rows(service.request_log.store) if row[1] == "u9"]
            assert [row[2] for row in theirs] == [None, "day-3"]
    await _rollups_equal_raw(service.request_log.store)
