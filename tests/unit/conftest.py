"""Unit-test fixtures: no Ray, no network, no ``SAMO_*`` environment; fakes for the model seam.

Helpers are fixtures (not importable modules) so the suite works with any pytest import mode.
"""

from __future__ import annotations

import importlib.util
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samo_serve.core.model_card import ModelCard, load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalPipeline
from samo_serve.core.tokenizer import TextTokenizer, TokenBatch
from samo_serve.service import EmotionService
from samo_serve.settings import RunnerSettings, Settings, default_model_dir

_RAY_AVAILABLE = importlib.util.find_spec("ray") is not None


def _refuse_ray(*args: object, **kwargs: object) -> None:
    raise RuntimeError("unit tests must not start Ray (ray.init was called)")


@pytest.fixture(autouse=True)
def _unit_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit test: ``ray.init`` raises and no ``SAMO_*`` variable leaks in from the environment."""
    for name in list(os.environ):
        if name.upper().startswith("SAMO_"):
            monkeypatch.delenv(name, raising=False)
    if _RAY_AVAILABLE:
        import ray

        monkeypatch.setattr(ray, "init", _refuse_ray)


# --------------------------------------------------------------------------------------------- fakes


def fake_scores(ids: np.ndarray, n_labels: int) -> np.ndarray:
    """Deterministic pseudo-probabilities in [0, 1) that depend only on one text's token ids."""
    seed = zlib.crc32(np.ascontiguousarray(ids, dtype="<i4").tobytes())
    return np.random.default_rng(seed).random(n_labels, dtype=np.float32)


class FakeRunner:
    """A :class:`samo_serve.core.model_runner.ModelRunner` whose scores are a pure function of token ids.

    Records the size of every ``predict`` call; ``health_error`` makes ``health()`` raise it.
    """

    provider = "FakeExecutionProvider"

    def __init__(self, n_labels: int = 28) -> None:
        self.n_labels = n_labels
        self.calls: list[int] = []
        self.health_error: BaseException | None = None
        self.health_calls = 0

    def predict(self, batch: TokenBatch) -> np.ndarray:
        self.calls.append(len(batch))
        out = np.empty((len(batch), self.n_labels), dtype=np.float32)
        for i in range(len(batch)):
            out[i] = fake_scores(batch.ids[batch.offsets[i] : batch.offsets[i + 1]], self.n_labels)
        return out

    def health(self) -> None:
        self.health_calls += 1
        if self.health_error is not None:
            raise self.health_error

    @property
    def texts_classified(self) -> int:
        return sum(self.calls)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = default_model_dir()
    if not (path / "card.json").exists():
        pytest.skip(f"no shipped model in {path}")
    return path


@pytest.fixture(scope="session")
def card(model_dir: Path) -> ModelCard:
    return load_card(model_dir, verify=True)


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path, card: ModelCard) -> TextTokenizer:
    return TextTokenizer(model_dir / card.tokenizer_file, card.max_length)


@pytest.fixture(scope="session")
def ort_runner(model_dir: Path, card: ModelCard) -> OrtModelRunner:
    """The shipped (served) ONNX variant on CPU."""
    return OrtModelRunner(model_dir / card.onnx_file, card.activation, RunnerSettings(device="cpu"))


@pytest.fixture
def fake_runner(card: ModelCard) -> FakeRunner:
    return FakeRunner(n_labels=len(card.labels))


@pytest.fixture
def fake_runner_cls() -> type[FakeRunner]:
    return FakeRunner


@pytest.fixture
def fake_scores_fn() -> Callable[[np.ndarray, int], np.ndarray]:
    return fake_scores


@pytest.fixture
def make_service(card: ModelCard, tokenizer: TextTokenizer) -> Callable[..., EmotionService]:
    """``make_service(runner, settings=None, card=None)``: an EmotionService over a LocalPipeline."""

    def make(runner: Any, settings: Settings | None = None, card_: ModelCard | None = None) -> EmotionService:
        return EmotionService(card_ or card, LocalPipeline(tokenizer, runner), settings or Settings())

    return make
