"""LocalPipeline over the real tokenizer with a fake runner, and over the shipped ONNX model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.errors import ModelUnavailable

TEXTS = ["I am so happy", "", "word " * 20_000, "😀 مرحبا e\u0301", "ok"]


def test_classify_sync_one_result_per_text(
    tokenizer: TextTokenizer, fake_runner, fake_scores_fn: Callable[..., np.ndarray]
) -> None:
    pipeline = LocalPipeline(tokenizer, fake_runner)
    results = pipeline.classify_sync(TEXTS)
    assert len(results) == len(TEXTS)
    assert fake_runner.calls == [len(TEXTS)]  # one model call for the whole list
    batch = tokenizer.encode_batch(TEXTS)
    for i, result in enumerate(results):
        assert result.scores.shape == (28,)
        expected = fake_scores_fn(batch.ids[batch.offsets[i] : batch.offsets[i + 1]], 28)
        np.testing.assert_array_equal(result.scores, expected)
        assert isinstance(result.truncated, bool)
    assert [r.truncated for r in results] == [False, False, True, False, False]


async def test_classify_async_equals_sync(tokenizer: TextTokenizer, fake_runner) -> None:
    pipeline = LocalPipeline(tokenizer, fake_runner)
    sync = pipeline.classify_sync(TEXTS)
    async_ = await pipeline.classify(TEXTS)
    for a, b in zip(sync, async_, strict=True):
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.truncated == b.truncated


async def test_classify_empty_list(tokenizer: TextTokenizer, fake_runner) -> None:
    assert await LocalPipeline(tokenizer, fake_runner).classify([]) == []


async def test_model_info(tokenizer: TextTokenizer, fake_runner) -> None:
    info = await LocalPipeline(tokenizer, fake_runner).model_info()
    assert info == {"provider": "FakeExecutionProvider"}
    assert fake_runner.health_calls == 1


async def test_model_info_raises_when_unhealthy(tokenizer: TextTokenizer, fake_runner) -> None:
    fake_runner.health_error = ModelUnavailable("down")
    with pytest.raises(ModelUnavailable):
        await LocalPipeline(tokenizer, fake_runner).model_info()


async def test_real_model_pipeline(tokenizer: TextTokenizer, ort_runner: OrtModelRunner) -> None:
    pipeline = LocalPipeline(tokenizer, ort_runner)
    results = await pipeline.classify(TEXTS)
    assert len(results) == len(TEXTS)
    for result in results:
        assert result.scores.shape == (28,)
        assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert results[2].truncated
    assert (await pipeline.model_info())["provider"] == "CPUExecutionProvider"
