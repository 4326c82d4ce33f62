"""Documents through the service and the HTTP routes in-process (issue 14): every segment is a text of its own."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.core.postprocess import PredictOptions
from samo_serve.errors import TextTooLong
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings
from samo_serve.storage.request_log import LogRow
from samo_serve.storage.request_log.hashing import TextHasher

SENTENCES = [
    "I woke up early and made coffee before anyone else was awake.",
    "Then my boss yelled at me in front of the whole team for nothing.",
    "I am so angry I could scream.",
    "My grandmother passed away last spring and I still miss her every day.",
    "Thank you so much to my friends who stayed with me tonight.",
]
ENTRY = " ".join(SENTENCES)
WITH_SEGMENTS = PredictOptions(segments=True)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_document_is_its_sentences_in_one_model_call(
    make_service: Callable[..., EmotionService], fake_runner
) -> None:
    service = make_service(fake_runner)
    (doc,) = await service.predict([ENTRY + " " + SENTENCES[2]], WITH_SEGMENTS)
    # six segments, five distinct: one pipeline call, each distinct sentence classified once
    assert doc["segment_count"] == 6
    assert fake_runner.calls == [5]
    assert doc["truncated"] is False
    assert "truncated_by" not in doc
    assert doc["cache"] == "miss"
    alone = await service.predict(SENTENCES, PredictOptions())
    assert fake_runner.calls == [5]  # every sentence sent alone afterwards is a cache hit
    assert [a["cache"] for a in alone] == ["l1"] * 5
    for segment, sentence, single in zip(doc["segments"], SENTENCES, alone, strict=False):
        assert ENTRY[segment["start"] : segment["end"]] == sentence
        assert segment["primary"] == single["primary"]
        assert segment["emotions"] == single["emotions"]
    (again,) = await service.predict([ENTRY], PredictOptions())
    assert again["cache"] == "l1"
    assert "segments" not in again


async def test_document_scores_are_the_aggregation_of_its_segments(
    make_service: Callable[..., EmotionService], fake_runner, card: ModelCard
) -> None:
    service = make_service(fake_runner)
    (doc,) = await service.predict([ENTRY], PredictOptions(all_scores=True, segments=True))
    for label in card.labels:  # the default aggregation is max
        assert doc["scores"][label] == max(s["scores"][label] for s in doc["segments"])
    # the primary is the label over its threshold in most of the text (documents.primary: coverage)
    label = doc["primary"]["label"]
    assert doc["primary"]["score"] == doc["scores"][label]
    assert label in {s["primary"]["label"] for s in doc["segments"]} | {e["label"] for e in doc["emotions"]}
    ekman = {g["label"]: g["score"] for g in doc["ekman"]}
    groups = card.groups["ekman"]
    for group, score in ekman.items():
        assert score == max(doc["scores"][lbl] for lbl in card.labels if groups.get(lbl) == group)
    assert [g["score"] for g in doc["sentiment"]] == sorted((g["score"] for g in doc["sentiment"]), reverse=True)


@pytest.mark.parametrize("method", ["mean", "length_mean", "top2_mean", "noisy_or"])
async def test_aggregation_is_a_setting(make_service: Callable[..., EmotionService], fake_runner, method: str) -> None:
    by_max = make_service(fake_runner)
    other = make_service(fake_runner, Settings(documents={"aggregation": method}))
    (a,) = await by_max.predict([ENTRY], PredictOptions(all_scores=True))
    (b,) = await other.predict([ENTRY], PredictOptions(all_scores=True))
    assert a["scores"] != b["scores"]


async def test_a_text_that_fits_is_unchanged(make_service: Callable[..., EmotionService], fake_runner, card) -> None:
    service = make_service(fake_runner)
    (out,) = await service.predict(["I am happy"], PredictOptions())
    assert set(out) == {"emotions", "primary", "model_version", "cache", "truncated", "latency_ms"}
    assert service.cache.l1 is not None
    assert service.cache.l1.get(service.keys("I am happy").cache_key) is not None
    (asked,) = await service.predict(["I am happy"], WITH_SEGMENTS)  # same shape as a document's, one segment
    assert asked["segment_count"] == 1
    assert asked["segments"][0]["start"] == 0
    assert asked["segments"][0]["end"] == len("I am happy")
    assert asked["emotions"] == out["emotions"]


@pytest.mark.parametrize("name_emoji", [True, False], ids=["named", "as-is"])
async def test_the_cache_key_follows_the_text_the_model_reads(
    make_service: Callable[..., EmotionService], fake_runner, name_emoji: bool
) -> None:
    service = make_service(fake_runner, Settings(documents={"name_emoji": name_emoji}))
    (angry,) = await service.predict(["😡😡😡"], PredictOptions(all_scores=True))
    (named,) = await service.predict(["enraged face enraged face enraged face"], PredictOptions(all_scores=True))
    # named: the model read the names, so the named text is the same key; as-is (the default): another text
    assert named["cache"] == ("l1" if name_emoji else "miss")


async def test_max_segments_refuses_or_truncates(make_service: Callable[..., EmotionService], fake_runner) -> None:
    entry = " ".join(f"This is sentence number {i} of my long day." for i in range(12))
    strict = make_service(fake_runner, Settings(limits={"max_segments": 5}))
    with pytest.raises(TextTooLong, match=r"`text` has more than 5 segments.*limits.max_segments") as refused:
        await strict.predict([entry], PredictOptions())
    assert refused.value.details == {"limit": "max_segments", "value": 5}
    lenient = make_service(
        fake_runner, Settings(limits={"max_segments": 5}, documents={"over_max_segments": "truncate"})
    )
    (doc,) = await lenient.predict([entry], WITH_SEGMENTS)
    assert (doc["truncated"], doc["truncated_by"], doc["segment_count"]) == (True, "max_segments", 5)
    assert doc["segments"][-1]["end"] < len(entry)


async def test_request_log_has_one_row_per_text_with_its_segment_count(
    make_service: Callable[..., EmotionService], fake_runner, card: ModelCard
) -> None:
    rows: list[LogRow] = []

    class Log:
        hasher = TextHasher(b"k" * 32)  # rows hold the log's keyed hash
        writer = SimpleNamespace(tracing=None)  # the service hands its tracing to the log's writer

        def record(self, batch: list[LogRow]) -> None:
            rows.extend(batch)

    base = make_service(fake_runner)
    service = EmotionService(card, base.pipeline, Settings(), request_log=Log())  # type: ignore[arg-type]
    out = await service.predict(["I am happy", ENTRY], PredictOptions())
    assert [r.segment_count for r in rows] == [1, 5]
    assert rows[1].text_hash == Log.hasher.text_hash(ENTRY)
    assert rows[1].primary_emotion == out[1]["primary"]["label"]
    assert rows[0].text_hash == Log.hasher.text_hash("I am happy")


# ------------------------------------------------------------------------------------------------ HTTP


async def test_http_document_and_batch(make_service: Callable[..., EmotionService], fake_runner) -> None:
    settings = Settings()
    async with client(create_app(settings, make_service(fake_runner, settings))) as c:
        r = await c.post("/predict", json={"text": ENTRY, "segments": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [ENTRY[s["start"] : s["end"]] for s in body["segments"]] == SENTENCES
        r = await c.post("/predict/batch", json={"texts": ["I am happy", ENTRY], "segments": True})
        assert r.status_code == 200, r.text
        assert [x["segment_count"] for x in r.json()["results"]] == [1, 5]
        assert r.json()["results"][1]["cache"] == "l1"


@pytest.mark.parametrize("text", ["?!...", " . , ; ", "\u00a0—\u200b"], ids=["punctuation", "mixed", "unicode"])
async def test_http_punctuation_only_is_empty_text(
    make_service: Callable[..., EmotionService], fake_runner, text: str
) -> None:
    settings = Settings()
    async with client(create_app(settings, make_service(fake_runner, settings))) as c:
        r = await c.post("/predict", json={"text": text})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "EMPTY_TEXT"


async def test_http_limits_name_the_limit(make_service: Callable[..., EmotionService], fake_runner) -> None:
    settings = Settings(limits={"max_segments": 3, "max_text_chars": 1_000})
    async with client(create_app(settings, make_service(fake_runner, settings))) as c:
        r = await c.post("/predict/batch", json={"texts": ["fine", ENTRY]})
        assert r.status_code == 413
        error = r.json()["error"]
        assert error["code"] == "TEXT_TOO_LONG"
        assert "`texts[1]`" in error["message"]
        assert error["details"] == {"limit": "max_segments", "value": 3}
        r = await c.post("/predict", json={"text": "a" * 1_001})
        assert r.status_code == 413
        assert r.json()["error"]["details"] == {"limit": "max_text_chars", "value": 1_000}


async def test_http_rate_limit_charges_a_document_by_its_segments(
    make_service: Callable[..., EmotionService], fake_runner
) -> None:
    settings = Settings(rate_limits={"enabled": True, "anonymous": {"per_second": 0.001, "burst": 6}})
    async with client(create_app(settings, make_service(fake_runner, settings))) as c:
        assert (await c.post("/predict", json={"text": ENTRY})).status_code == 200  # 5 of 6 tokens
        r = await c.post("/predict", json={"text": ENTRY})
        assert r.status_code == 429
        assert (await c.post("/predict", json={"text": "one more"})).status_code == 200  # the 6th


async def test_a_short_text_past_the_window_is_read_as_a_document(
    make_service: Callable[..., EmotionService], fake_runner
) -> None:
    # short enough to be sent whole unchecked (4 characters a token), but 150 tokens: the pipeline flags it
    text = "Ça va? Ja! 한국! " * 10
    assert len(text) <= 4 * 62
    service = make_service(fake_runner)
    (doc,) = await service.predict([text], WITH_SEGMENTS)
    assert doc["truncated"] is False
    assert doc["segment_count"] == 30
    assert [text[s["start"] : s["end"]] for s in doc["segments"][:3]] == ["Ça va?", "Ja!", "한국!"]
    assert fake_runner.calls == [1, 3]  # the whole text once, then its three distinct sentences
    (again,) = await service.predict([text], PredictOptions())
    assert (again["cache"], again["segment_count"]) == ("l1", 30)
    assert fake_runner.calls == [1, 3]
