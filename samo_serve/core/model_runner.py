"""The model seam: a :class:`ModelRunner` protocol and its ONNX Runtime implementation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort

from samo_serve.core.batching import pad_rows, plan_buckets
from samo_serve.core.gpu import device_memory_bytes, gpu_mem_limit, is_gpu_visible
from samo_serve.core.model_card import ModelCard
from samo_serve.core.tokenizer import TokenBatch
from samo_serve.errors import ModelUnavailable
from samo_serve.settings import RunnerSettings

__all__ = ["ModelRunner", "OrtModelRunner", "activate", "with_gpu_share"]

log = logging.getLogger(__name__)


class ModelRunner(Protocol):
    """Turns token ids into per-label probabilities."""

    provider: str
    n_labels: int

    def predict(self, batch: TokenBatch) -> np.ndarray:
        """Probabilities, float32 [len(batch), n_labels], rows in the batch's order."""
        ...

    def health(self) -> None:
        """Run a real tiny inference; raise :class:`ModelUnavailable` if it fails."""
        ...


def activate(logits: np.ndarray, activation: Literal["sigmoid", "softmax"]) -> np.ndarray:
    logits = logits.astype(np.float32, copy=False)
    if activation == "sigmoid":
        # tanh form: no overflow warning for very negative logits, unlike 1 / (1 + exp(-x)).
        return 0.5 * (1.0 + np.tanh(0.5 * logits))
    shifted: np.ndarray = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probs


def with_gpu_share(settings: RunnerSettings, assigned_gpus: float | None) -> RunnerSettings:
    """The runner settings with ``gpu_fraction`` taken from the GPU share Ray gave this replica.

    An explicit ``runner.gpu_fraction`` wins; left at 0, the replica's ``num_gpus`` (0.25 → a quarter of
    the device memory) sets the ORT cap, so changing ``num_gpus`` alone cannot leave a stale cap.
    """
    if settings.gpu_fraction > 0 or not assigned_gpus or assigned_gpus <= 0:
        return settings
    return settings.model_copy(update={"gpu_fraction": min(float(assigned_gpus), 1.0)})


def _providers(settings: RunnerSettings) -> list[str | tuple[str, dict[str, object]]]:
    """CUDA then CPU when a GPU is visible and allowed; CPU alone otherwise.

    Asking for CUDA on a machine without a GPU works (onnxruntime-gpu falls back) but logs an error
    line per session, so CUDA is only requested when a GPU is really there.
    """
    wants_cuda = settings.device in ("auto", "cuda")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers() and is_gpu_visible()
    if settings.device == "cuda" and not has_cuda:
        log.warning("device=cuda requested but no usable GPU/CUDA provider: running on CPU")
    if not (wants_cuda and has_cuda):
        return ["CPUExecutionProvider"]
    cuda_options: dict[str, object] = {}
    limit = settings.gpu_mem_limit_bytes
    if limit is None and settings.gpu_fraction > 0:
        total = device_memory_bytes()
        if total is not None:
            limit = gpu_mem_limit(settings.gpu_fraction, total)
    if limit is not None:
        cuda_options["gpu_mem_limit"] = int(limit)
        cuda_options["arena_extend_strategy"] = "kSameAsRequested"
    return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]


class OrtModelRunner:
    """ONNX Runtime session over a classifier graph with inputs ``input_ids`` and ``attention_mask``.

    Args:
        model_path: the ONNX file.
        activation: ``sigmoid`` (multi-label) or ``softmax`` (single-label), from the model card.
        settings: threads, device, GPU memory cap, sub-batch size and length bucketing.
    """

    def __init__(self, model_path: Path, activation: Literal["sigmoid", "softmax"], settings: RunnerSettings) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning worker threads burn the CPU that the ingress and tokenizer need on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.allow_spinning else "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), options, providers=_providers(settings))
        self.provider: str = self._session.get_providers()[0]
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.n_labels: int = int(self._session.get_outputs()[0].shape[-1])
        self._activation: Literal["sigmoid", "softmax"] = activation
        self._settings = settings
        log.info("ONNX model %s on %s", model_path.name, self.provider)

    @classmethod
    def for_card(cls, card: ModelCard, model_dir: Path, settings: RunnerSettings) -> OrtModelRunner:
        """A runner over the ONNX file a model card names, with the card's activation."""
        return cls(model_dir / card.onnx_file, card.activation, settings)

    def predict(self, batch: TokenBatch) -> np.ndarray:
        out = np.empty((len(batch), self.n_labels), dtype=np.float32)
        if len(batch) == 0:
            return out
        lengths = batch.lengths
        if self._settings.length_bucketing:
            buckets = plan_buckets(lengths, self._settings.max_sub_batch, self._settings.max_pad_ratio)
        else:
            order = np.arange(len(batch))
            step = self._settings.max_sub_batch
            buckets = [order[i : i + step] for i in range(0, len(batch), step)]
        for rows in buckets:
            ids, mask = pad_rows(batch, rows)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            logits = self._session.run(None, feed)[0]
            out[rows] = activate(logits, self._activation)
        return out

    def health(self) -> None:
        # Ids 1..3 exist in any vocabulary, so the probe works for bring-your-own models too.
        probe = TokenBatch.from_sequences([[1, 2, 3]], [False])
        try:
            probs = self.predict(probe)
        except Exception as exc:  # ORT raises its own exception types
            raise ModelUnavailable(f"model inference failed: {exc}") from exc
        if not np.isfinite(probs).all():
            raise ModelUnavailable("model returned non-finite scores")
