"""samo_serve.client against the real app in-process (fake model): the limit it learns, answers, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from samo_serve.client import AsyncClient, BatchTooLarge, EmptyText, Retry, TextTooLong
from samo_serve.core.model_card import ModelCard
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings


@pytest.fixture
async def samo(make_service: Callable[..., EmotionService], fake_runner: Any) -> AsyncIterator[AsyncClient]:
    settings = Settings(limits={"max_batch_texts": 3, "max_text_chars": 50})
    app = create_app(settings, make_service(fake_runner, settings))
    async with AsyncClient("http://t", transport=httpx.ASGITransport(app=app), retry=Retry(max_attempts=1)) as client:
        yield client


async def test_predict_batch_learns_the_limit_and_matches_predict(samo: AsyncClient, card: ModelCard) -> None:
    texts = [f"text number {i}" for i in range(8)]
    batch = await samo.predict_batch(texts, all_scores=True)
    assert await samo.max_batch_texts() == 3
    singles = [await samo.predict(t, all_scores=True) for t in texts]
    assert [b.scores for b in batch] == [s.scores for s in singles]
    assert [b.labels for b in batch] == [s.labels for s in singles]
    assert {s.cache for s in singles} == {"l1"}  # the batch filled the cache
    assert list(batch[0].scores or {}) == card.labels
    assert batch[0].model_version == card.version


async def test_server_errors_arrive_as_their_classes(samo: AsyncClient) -> None:
    with pytest.raises(EmptyText) as caught:
        await samo.predict("   ")
    assert caught.value.status == 422
    assert len(caught.value.request_id) == 32
    with pytest.raises(TextTooLong):
        await samo.predict_batch(["ok", "x" * 51])
    labels = await samo.emotions()
    assert len(labels) == 28


async def test_a_limit_given_over_the_servers_is_refused(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    settings = Settings(limits={"max_batch_texts": 2})
    app = create_app(settings, make_service(fake_runner, settings))
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://t", transport=transport, max_batch_texts=5) as samo:
        with pytest.raises(BatchTooLarge) as caught:
            await samo.predict_batch(["a", "b", "c"])
    assert caught.value.code == "BATCH_TOO_LARGE"
