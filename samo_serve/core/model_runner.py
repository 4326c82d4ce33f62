"""The model seam: a :class:`ModelRunner` protocol and its ONNX Runtime implementation."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import platform
import queue
from concurrent.futures import ThreadPoolExecutor
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

__all__ = ["ModelRunner", "OrtModelRunner", "activate", "needs_exact_int8", "session_options", "with_gpu_share"]

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


def _usable_cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def session_options(settings: RunnerSettings) -> ort.SessionOptions:
    """The options of every session the runner opens (also what tests open the served file with)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning worker threads burn the CPU that the ingress and tokenizer need on small machines.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.allow_spinning else "0")
    options.log_severity_level = 3
    # Exact int8 products on x86 CPUs without VNNI/AMX: there ORT's uint8 x int8 kernels add pairs of
    # products in saturating int16 (2 x 255 x 127 > 32,767), which moved a served score by up to 0.13 and
    # changed 2% of top labels against what VNNI CPUs serve; with this entry ORT computes the exact function
    # there, ~3% slower on a Zen 3 (docs/MODEL.md, "int8 on CPUs without VNNI"). Only there: on a Zen 4
    # with AVX-512 VNNI the entry changed no bit of any score and made a batch-1 run 1.87x slower.
    if needs_exact_int8():
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


_INT32_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # u8 x s8 summed in int32: already exact


@functools.cache
def needs_exact_int8(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this is an x86 CPU whose int8 kernels would saturate (no VNNI, no AMX).

    An x86 machine whose flags cannot be read (not Linux) says yes: exact at a small cost, never wrong.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False  # ORT's other kernels (Arm's sdot/i8mm) sum in int32
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return not _INT32_DOT_FLAGS.intersection(flags)


def _session(
    model_path: Path, settings: RunnerSettings, providers: list[str | tuple[str, dict[str, object]]]
) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_path), session_options(settings), providers=providers)


class OrtModelRunner:
    """ONNX Runtime sessions over a classifier graph with inputs ``input_ids`` and ``attention_mask``.

    A call's texts are shared out among ``settings.sessions`` sessions, each used by one thread at a time
    (the caller's and a pool's): with ``per_text`` each text runs alone, unpadded; with ``batched`` in
    length buckets (see :class:`samo_serve.settings.RunnerSettings`). Concurrent calls share the sessions:
    at most that many texts or buckets run at once, whatever the number of callers.

    Args:
        model_path: the ONNX file.
        activation: ``sigmoid`` (multi-label) or ``softmax`` (single-label), from the model card.
        settings: policy, sessions, threads, device, GPU memory cap, sub-batch size and length bucketing.
    """

    def __init__(self, model_path: Path, activation: Literal["sigmoid", "softmax"], settings: RunnerSettings) -> None:
        providers = _providers(settings)
        on_cuda = providers[0] != "CPUExecutionProvider"
        count = settings.sessions or (1 if on_cuda else _usable_cores())
        sessions = [_session(model_path, settings, providers) for _ in range(count)]
        self.provider: str = sessions[0].get_providers()[0]
        self.policy: Literal["per_text", "batched"] = (
            settings.policy
            if settings.policy != "auto"
            else ("batched" if self.provider == "CUDAExecutionProvider" else "per_text")
        )
        self._free: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for session in sessions:
            self._free.put(session)
        self.sessions = count
        self._pool = ThreadPoolExecutor(max_workers=max(count - 1, 1), thread_name_prefix="ort")
        self._inputs = {i.name for i in sessions[0].get_inputs()}
        self.n_labels: int = int(sessions[0].get_outputs()[0].shape[-1])
        self._activation: Literal["sigmoid", "softmax"] = activation
        self._settings = settings
        log.info("ONNX model %s on %s: %d session(s), %s", model_path.name, self.provider, count, self.policy)

    @classmethod
    def for_card(cls, card: ModelCard, model_dir: Path, settings: RunnerSettings) -> OrtModelRunner:
        """A runner over the ONNX file a model card names, with the card's activation."""
        return cls(model_dir / card.onnx_file, card.activation, settings)

    def predict(self, batch: TokenBatch) -> np.ndarray:
        out = np.empty((len(batch), self.n_labels), dtype=np.float32)
        if len(batch) == 0:
            return out
        if self.policy == "per_text":
            groups = [np.array([i]) for i in range(len(batch))]
        elif self._settings.length_bucketing:
            groups = plan_buckets(batch.lengths, self._settings.max_sub_batch, self._settings.max_pad_ratio)
        else:
            step = self._settings.max_sub_batch
            order = np.arange(len(batch))
            groups = [order[i : i + step] for i in range(0, len(batch), step)]
        taken = itertools.count()  # each worker takes the next group: long texts do not stall one session

        def work() -> None:
            session = self._free.get()  # blocks while every session is busy (other calls' work)
            try:
                while (g := next(taken)) < len(groups):
                    rows = groups[g]
                    out[rows] = activate(self._run(session, batch, rows), self._activation)
            finally:
                self._free.put(session)

        helpers = [self._pool.submit(work) for _ in range(min(self.sessions, len(groups)) - 1)]
        work()
        for helper in helpers:
            helper.result()
        return out

    def _run(self, session: ort.InferenceSession, batch: TokenBatch, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 1:  # one text: its own ids, unpadded
            start, end = int(batch.offsets[rows[0]]), int(batch.offsets[rows[0] + 1])
            ids = batch.ids[start:end].astype(np.int64, copy=False)[None, :]
            mask = np.ones_like(ids)
        else:
            ids, mask = pad_rows(batch, rows)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits: np.ndarray = session.run(None, feed)[0]
        return logits

    def health(self) -> None:
        # Ids 1..3 exist in any vocabulary, so the probe works for bring-your-own models too.
        probe = TokenBatch.from_sequences([[1, 2, 3]], [False])
        try:
            probs = self.predict(probe)
        except Exception as exc:  # ORT raises its own exception types
            raise ModelUnavailable(f"model inference failed: {exc}") from exc
        if not np.isfinite(probs).all():
            raise ModelUnavailable("model returned non-finite scores")
