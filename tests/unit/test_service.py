"""EmotionService: text checks, caching, de-duplication, rendering; driven by a fake runner."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from samo_serve.core.model_card import ModelCard
from samo_serve.core.postprocess import PredictOptions
from samo_serve.errors import EmptyText, TextTooLong
from samo_serve.service import EmotionService, check_text
from samo_serve.settings import Settings

DEFAULT = PredictOptions()


# ---------------------------------------------------------------------------------------- check_text


@pytest.mark.parametrize(
    "text",
    ["", " ", "\t\n\r ", "\u00a0\u3000", "\x1c"],
    ids=["empty", "space", "whitespace", "unicode-space", "fs"],
)
def test_check_text_refuses_blank(text: str) -> None:
    with pytest.raises(EmptyText, match="`text`"):
        check_text(text, 100)


def test_check_text_too_long_names_the_field() -> None:
    with pytest.raises(TextTooLong, match=r"`texts\[3\]` has 11 characters; the limit is 10"):
        check_text("x" * 11, 10, field="texts[3]")


@pytest.mark.parametrize(
    "text",
    ["x" * 10, "a", " a ", "😀", "\ud800"],
    ids=["at-limit", "one", "padded", "emoji", "lone-surrogate"],
)
def test_check_text_accepts(text: str) -> None:
    check_text(text, 10)


def test_check_text_counts_code_points() -> None:
    check_text("😀" * 10, 10)  # 10 code points (40 UTF-8 bytes)
    with pytest.raises(TextTooLong):
        check_text("😀" * 11, 10)


# ------------------------------------------------------------------------------------------ predict


async def test_predict_renders_each_text(
    make_service: Callable[..., EmotionService], fake_runner, card: ModelCard
) -> None:
    service = make_service(fake_runner)
    out = await service.predict(["I am happy", "word " * 2_000], DEFAULT)
    assert len(out) == 2
    single = {"emotions", "primary", "model_version", "cache", "truncated", "latency_ms"}
    assert set(out[0]) == single
    assert set(out[1]) == single | {"segment_count", "ekman", "sentiment"}
    for item in out:
        assert item["model_version"] == card.version
        assert item["cache"] == "miss"
        assert len(item["emotions"]) >= 1
        assert item["primary"]["label"] in card.labels
        assert item["latency_ms"] >= 0
    assert [item["truncated"] for item in out] == [False, False]  # a long text is read to its end


async def test_empty_list_does_not_call_the_model(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner)
    assert await service.predict([], DEFAULT) == []
    assert fake_runner.calls == []


async def test_second_request_hits_l1(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner)
    (first,) = await service.predict(["hello there"], DEFAULT)
    (second,) = await service.predict(["  hello   there "], DEFAULT)
    assert (first["cache"], second["cache"]) == ("miss", "l1")
    assert first["emotions"] == second["emotions"]
    assert fake_runner.calls == [1]
    assert service.stats()["cache"]["l1"]["hits"] == 1


async def test_duplicates_are_classified_once(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner)
    out = await service.predict(["a b", "c", "a  b", "c", "d"], DEFAULT)
    assert fake_runner.calls == [3]
    assert out[0]["emotions"] == out[2]["emotions"]
    assert [o["cache"] for o in out] == ["miss"] * 5


async def test_mixed_hits_and_misses_in_one_call(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner)
    await service.predict(["known"], DEFAULT)
    out = await service.predict(["new one", "known", "another"], DEFAULT)
    assert [o["cache"] for o in out] == ["miss", "l1", "miss"]
    assert fake_runner.calls == [1, 2]


async def test_l1_disabled(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner, Settings(cache={"l1_enabled": False}))
    for _ in range(2):
        (out,) = await service.predict(["same"], DEFAULT)
        assert out["cache"] == "miss"
    assert fake_runner.calls == [1, 1]
    assert service.stats()["cache"]["l1"] is None


async def test_options_change_rendering_not_the_cache(make_service: Callable[..., EmotionService], fake_runner) -> None:
    service = make_service(fake_runner)
    (plain,) = await service.predict(["text"], DEFAULT)
    (full,) = await service.predict(["text"], PredictOptions(threshold=0.0, all_scores=True))
    (top1,) = await service.predict(["text"], PredictOptions(threshold=0.0, top_k=1))
    (none,) = await service.predict(["text"], PredictOptions(threshold=1.0))
    assert fake_runner.calls == [1]
    assert len(full["emotions"]) == 28
    assert len(full["scores"]) == 28
    assert "scores" not in plain
    assert top1["emotions"] == full["emotions"][:1]
    assert none["emotions"] == []  # fake scores are < 1
    assert plain["primary"] == full["primary"] == none["primary"]


async def test_batch_equals_single(make_service: Callable[..., EmotionService], fake_runner_cls) -> None:
    texts = ["I am happy", "so sad today", "😀🎉", "שלום", "word " * 9_000]
    batched = await make_service(fake_runner_cls()).predict(texts, PredictOptions(all_scores=True))
    singles = make_service(fake_runner_cls())
    for text, b in zip(texts, batched, strict=True):
        (s,) = await singles.predict([text], PredictOptions(all_scores=True))
        for key in ("emotions", "primary", "scores", "truncated", "model_version"):
            assert s[key] == b[key]


async def test_new_model_version_never_hits_old_entries(
    make_service: Callable[..., EmotionService], fake_runner, card: ModelCard
) -> None:
    service = make_service(fake_runner)
    await service.predict(["shared text"], DEFAULT)
    service.card = card.model_copy(update={"version": card.name + "-000000000000"})
    (out,) = await service.predict(["shared text"], DEFAULT)
    assert out["cache"] == "miss"
    assert out["model_version"].endswith("-000000000000")


async def test_scores_in_range(make_service: Callable[..., EmotionService], ort_runner) -> None:
    service = make_service(ort_runner)
    out = await service.predict(["I love it", "this is terrible"], PredictOptions(all_scores=True))
    for item in out:
        values = np.array(list(item["scores"].values()))
        assert values.shape == (28,)
        assert ((values >= 0) & (values <= 1)).all()
        emotion_scores = [e["score"] for e in item["emotions"]]
        assert emotion_scores == sorted(emotion_scores, reverse=True)
        assert item["primary"]["score"] == max(values)


async def test_cache_never_serves_another_texts_scores(
    make_service: Callable[..., EmotionService], fake_runner_cls
) -> None:
    options = PredictOptions(all_scores=True)
    (fresh,) = await make_service(fake_runner_cls()).predict(["hello world"], options)
    service = make_service(fake_runner_cls())
    await service.predict(["hello\x1cworld"], options)
    (served,) = await service.predict(["hello world"], options)
    assert served["scores"] == fresh["scores"]
