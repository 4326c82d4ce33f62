"""The core pipeline: micro-batches over a fake model client, LocalPipeline over a fake runner and the
shipped ONNX model, and the Ray adapter's model client over a fake handle (Ray imported, never started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError

from deployments.model import REPLICA_RETRIES, EmotionModelClient
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import BatchingPipeline, LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch
from samo_serve.errors import ModelUnavailable, Overloaded
from samo_serve.settings import BatchingSettings

TEXTS = ["I am so happy", "", "word " * 20_000, "😀 مرحبا e\u0301", "ok"]


class FakeModel:
    """A ModelClient scoring each text by its first token id; ``gate`` holds calls in flight."""

    def __init__(self, n_labels: int = 28) -> None:
        self.n_labels = n_labels
        self.batches: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def predict(self, tokens: TokenBatch) -> np.ndarray:
        self.batches.append(len(tokens))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        firsts = [tokens.ids[tokens.offsets[i]] if tokens.lengths[i] else 0 for i in range(len(tokens))]
        return np.repeat(np.asarray(firsts, dtype=np.float32)[:, None], self.n_labels, axis=1)

    async def info(self) -> dict[str, object]:
        return {"provider": "fake"}


class Recorder:
    """A BatchObserver (the protocol Telemetry satisfies)."""

    def __init__(self) -> None:
        self.tokenize: list[float] = []
        self.batch: list[tuple[int, int, float]] = []

    def on_tokenize(self, seconds: float) -> None:
        self.tokenize.append(seconds)

    def on_batch(self, size: int, capacity: int, wait_s: float) -> None:
        self.batch.append((size, capacity, wait_s))


def first_token(tokenizer: TextTokenizer, text: str) -> float:
    return float(tokenizer.encode_batch([text]).ids[0])


def pipeline_over(tokenizer: TextTokenizer, model: FakeModel, size: int = 64, in_flight: int = 1) -> BatchingPipeline:
    batching = BatchingSettings(ingress_max_batch_size=size, ingress_max_in_flight=in_flight)
    return BatchingPipeline(tokenizer, model, batching)


async def test_concurrent_calls_merge_into_one_model_call_in_order(tokenizer: TextTokenizer) -> None:
    model = FakeModel()
    model.gate.clear()
    pipeline = pipeline_over(tokenizer, model)
    first = asyncio.ensure_future(pipeline.classify(["hello"]))
    await asyncio.sleep(0)
    calls = [["happy", "sad"], ["angry"], ["calm", "tired", "bored"]]
    waiting = [asyncio.ensure_future(pipeline.classify(call)) for call in calls]
    await asyncio.sleep(0)
    model.gate.set()
    await first
    results = await asyncio.gather(*waiting)
    assert model.batches == [1, 6]  # the three waiting calls left as one batch of six texts
    for call, got in zip(calls, results, strict=True):
        assert [r.scores[0] for r in got] == [first_token(tokenizer, t) for t in call]


async def test_a_model_error_reaches_every_caller_of_the_batch(tokenizer: TextTokenizer) -> None:
    model = FakeModel()
    model.gate.clear()
    pipeline = pipeline_over(tokenizer, model)
    blocker = asyncio.ensure_future(pipeline.classify(["first"]))
    await asyncio.sleep(0)
    batch = [asyncio.ensure_future(pipeline.classify([t])) for t in ("a", "b")]
    await asyncio.sleep(0)
    model.error = ModelUnavailable("model replica unavailable")
    model.gate.set()
    for call in (blocker, *batch):
        with pytest.raises(ModelUnavailable):
            await call
    model.error = None
    assert len(await pipeline.classify(["again"])) == 1  # the pipeline recovers


async def test_truncation_flags_follow_their_texts(tokenizer: TextTokenizer) -> None:
    results = await pipeline_over(tokenizer, FakeModel()).classify(TEXTS)
    assert [r.truncated for r in results] == [False, False, True, False, False]
    assert all(isinstance(r.truncated, bool) for r in results)


async def test_observer_sees_tokenize_time_and_batches(tokenizer: TextTokenizer) -> None:
    pipeline = pipeline_over(tokenizer, FakeModel(), size=32)
    recorder = Recorder()
    pipeline.observe(recorder)
    await pipeline.classify(["one", "two", "three"])
    (tokenize_s,) = recorder.tokenize
    assert tokenize_s > 0
    ((size, capacity, wait_s),) = recorder.batch
    assert (size, capacity) == (3, 32)
    assert wait_s >= 0
    pipeline.apply_batching(BatchingSettings(ingress_max_batch_size=8))
    await pipeline.classify(["four"])
    assert recorder.batch[-1][:2] == (1, 8)  # the capacity reported follows apply_batching


async def test_apply_batching_caps_later_batches(tokenizer: TextTokenizer) -> None:
    model = FakeModel()
    model.gate.clear()
    pipeline = pipeline_over(tokenizer, model)
    pipeline.apply_batching(BatchingSettings(ingress_max_batch_size=2, ingress_max_in_flight=1))
    blocker = asyncio.ensure_future(pipeline.classify(["x"]))
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(pipeline.classify([t])) for t in "abcde"]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(blocker, *waiting)
    assert model.batches == [1, 2, 2, 1]


async def test_an_async_encoder_is_awaited_and_not_timed_here(tokenizer: TextTokenizer) -> None:
    class RemoteEncoder:
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        async def encode(self, texts: list[str]) -> TokenBatch:
            self.calls.append(texts)
            return tokenizer.encode_batch(texts)

    encoder, model, recorder = RemoteEncoder(), FakeModel(), Recorder()
    pipeline = BatchingPipeline(encoder, model, BatchingSettings())
    pipeline.observe(recorder)
    (result,) = await pipeline.classify(["hello"])
    assert encoder.calls == [["hello"]]
    assert result.scores[0] == first_token(tokenizer, "hello")
    assert recorder.tokenize == []  # the Tokenizer deployment reports its own time
    assert await pipeline.model_info() == {"provider": "fake"}


async def test_empty_call_skips_the_model(tokenizer: TextTokenizer) -> None:
    model = FakeModel()
    assert await pipeline_over(tokenizer, model).classify([]) == []
    assert model.batches == []


# --------------------------------------------------------------------------------- LocalPipeline


async def test_local_pipeline_one_runner_call_per_batch(
    tokenizer: TextTokenizer, fake_runner: Any, fake_scores_fn: Callable[..., np.ndarray]
) -> None:
    results = await LocalPipeline(tokenizer, fake_runner).classify(TEXTS)
    assert fake_runner.calls == [len(TEXTS)]
    batch = tokenizer.encode_batch(TEXTS)
    for i, result in enumerate(results):
        np.testing.assert_array_equal(
            result.scores, fake_scores_fn(batch.ids[batch.offsets[i] : batch.offsets[i + 1]], 28)
        )
    assert [r.truncated for r in results] == [False, False, True, False, False]


async def test_local_pipeline_merges_concurrent_calls(tokenizer: TextTokenizer, fake_runner: Any) -> None:
    pipeline = LocalPipeline(tokenizer, fake_runner, BatchingSettings(ingress_max_in_flight=1))
    results = await asyncio.gather(*(pipeline.classify([f"text {i}"]) for i in range(10)))
    assert fake_runner.calls == [1, 9]  # the nine that came while the first ran left together
    for i, (result,) in enumerate(results):
        (alone,) = await LocalPipeline(tokenizer, fake_runner).classify([f"text {i}"])
        np.testing.assert_array_equal(result.scores, alone.scores)


async def test_model_info(tokenizer: TextTokenizer, fake_runner: Any) -> None:
    info = await LocalPipeline(tokenizer, fake_runner).model_info()
    assert info == {"provider": "FakeExecutionProvider"}
    assert fake_runner.health_calls == 1


async def test_model_info_raises_when_unhealthy(tokenizer: TextTokenizer, fake_runner: Any) -> None:
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
    direct = ort_runner.predict(tokenizer.encode_batch(TEXTS))  # int8 scores depend on the batch: same batch
    np.testing.assert_array_equal(np.stack([r.scores for r in results]), direct)
    assert (await pipeline.model_info())["provider"] == "CPUExecutionProvider"


# ------------------------------------------------------------------- the Ray adapter's model client


class FakeHandle:
    """A DeploymentHandle whose ``predict.remote`` raises the queued outcomes, then answers."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.predict = SimpleNamespace(remote=self._predict)
        self.info = SimpleNamespace(remote=self._info)

    async def _predict(self, tokens: TokenBatch) -> np.ndarray:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return np.zeros((len(tokens), 28), np.float32)

    async def _info(self) -> dict[str, object]:
        return {"provider": "remote"}


TOKENS = TokenBatch.from_sequences([[101, 7, 102]], [False])


@pytest.mark.parametrize("gone", [RayActorError(), ReplicaUnavailableError("r1")], ids=["actor", "replica"])
async def test_a_lost_replica_is_retried(gone: Exception) -> None:
    handle = FakeHandle(*[gone] * REPLICA_RETRIES)
    scores = await EmotionModelClient(handle, backoff_s=0).predict(TOKENS)  # type: ignore[arg-type]
    assert scores.shape == (1, 28)
    assert handle.calls == REPLICA_RETRIES + 1


async def test_replicas_lost_past_the_retries_are_model_unavailable() -> None:
    handle = FakeHandle(*[RayActorError()] * (REPLICA_RETRIES + 1))
    with pytest.raises(ModelUnavailable, match="RayActorError"):
        await EmotionModelClient(handle, backoff_s=0).predict(TOKENS)  # type: ignore[arg-type]
    assert handle.calls == REPLICA_RETRIES + 1


async def test_back_pressure_is_overloaded_with_retry_after_and_not_retried() -> None:
    handle = FakeHandle(BackPressureError(num_queued_requests=8, max_queued_requests=8))
    with pytest.raises(Overloaded) as caught:
        await EmotionModelClient(handle, backoff_s=0).predict(TOKENS)  # type: ignore[arg-type]
    assert caught.value.headers == {"Retry-After": "1"}
    assert handle.calls == 1


async def test_other_errors_pass_through_at_once() -> None:
    handle = FakeHandle(ValueError("bad batch"))
    with pytest.raises(ValueError, match="bad batch"):
        await EmotionModelClient(handle, backoff_s=0).predict(TOKENS)  # type: ignore[arg-type]
    assert handle.calls == 1
    assert await EmotionModelClient(handle).info() == {"provider": "remote"}  # type: ignore[arg-type]
