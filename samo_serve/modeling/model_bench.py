"""``samo-serve model bench``: the exported precisions side by side, speed and quality, one process.

For each variant of the card whose file is present (fp32, int8; fp16 only where a GPU is visible, since
ONNX Runtime's CPU provider runs fp16 slower than fp32): time per batch and texts/s at batch 1, 32 and 64
(token ids prepared first: the model alone), the speed-up over fp32, and, on GoEmotions test, macro-F1
at the card's thresholds, its delta to fp32 and top-label agreement with fp32.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from samo_serve.core.gpu import is_gpu_visible
from samo_serve.core.model_card import load_card, with_variant
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.modeling.evaluation import classification_report, top_label_agreement
from samo_serve.modeling.goemotions import read_split
from samo_serve.modeling.model_eval import score_texts
from samo_serve.settings import RunnerSettings

__all__ = ["BATCH_SIZES", "CAPACITY_BATCHES", "bench_model", "capacity_batches", "full_pass_rate", "texts_per_second"]

BATCH_SIZES = (1, 32, 64)
#: the model's raw capacity (issue 16): the best of batch 1 in arrival order and length-sorted batches of
#: 8 and 32, full passes over the same texts
CAPACITY_BATCHES = (1, 8, 32)


def texts_per_second(runner: OrtModelRunner, batches: list[Any], min_seconds: float) -> tuple[float, float]:
    """(texts/s, median ms per batch) over at least ``min_seconds`` after a warm-up."""
    for b in batches[:3]:
        runner.predict(b)
    done, times = 0, []
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        for b in batches:
            t = time.perf_counter()
            runner.predict(b)
            times.append(time.perf_counter() - t)
            done += len(b)
    return done / sum(times), float(np.median(times)) * 1000


def capacity_batches(tokenizer: TextTokenizer, texts: list[str], batch_size: int) -> list[Any]:
    """``texts`` tokenized into batches of ``batch_size``: in arrival order at 1, sorted by token length above.

    Sorting the whole pass is what a length-bucketing server approaches under load; on this CPU class
    padding costs more than batching saves (arrival-order batches of 32 ran slower than batch 1).
    """
    if batch_size > 1:
        lengths = tokenizer.encode_batch(texts).lengths
        texts = [texts[i] for i in np.argsort(lengths, kind="stable")]
    return [tokenizer.encode_batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]


def full_pass_rate(runner: OrtModelRunner, batches: list[Any]) -> float:
    """texts/s of one full pass over ``batches`` (tokenization done beforehand)."""
    started = time.perf_counter()
    for b in batches:
        runner.predict(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def bench_model(
    model_dir: Path, data_dir: Path | None, texts: list[str], min_seconds: float = 2.0, threads: int = 0
) -> dict[str, Any]:
    card = load_card(model_dir)
    gpu = is_gpu_visible()
    wanted = ["fp32", "int8"] + (["fp16"] if gpu else [])
    tokenizer = TextTokenizer.for_card(card, model_dir)
    device: Literal["cuda", "cpu"] = "cuda" if gpu else "cpu"
    report: dict[str, Any] = {"model_version": card.version, "device": device, "variants": {}, "missing": {}}
    test = read_split(data_dir, "test", len(card.labels)) if data_dir is not None else None
    reference: np.ndarray | None = None
    for precision in wanted:
        info = card.variants.get(precision)
        if info is None or not (model_dir / info["file"]).exists():
            report["missing"][precision] = "not exported: `samo-serve model export --checkpoint CKPT` writes it"
            continue
        variant = with_variant(card, precision, model_dir)
        settings = RunnerSettings(
            device=device, policy="batched", sessions=1, intra_op_threads=threads, length_bucketing=False
        )
        runner = OrtModelRunner.for_card(variant, model_dir, settings)
        row: dict[str, Any] = {"file": info["file"], "provider": runner.provider, "batch": {}}
        for bs in BATCH_SIZES:
            batches = [tokenizer.encode_batch(texts[i : i + bs]) for i in range(0, len(texts) - bs + 1, bs)]
            rate, ms = texts_per_second(runner, batches[: max(1, 256 // bs)], min_seconds)
            row["batch"][bs] = {"texts_per_s": round(rate, 1), "ms_per_batch": round(ms, 3)}
        if test is not None:
            scores = score_texts(model_dir, variant, test.texts)
            quality = classification_report(scores, test.targets, np.asarray(card.thresholds), card.labels)
            row["macro_f1"] = quality["macro_f1"]
            if precision == "fp32":
                reference = scores
            elif reference is not None:
                row["top_label_agreement_vs_fp32"] = round(top_label_agreement(scores, reference), 4)
        report["variants"][precision] = row
    base = report["variants"].get("fp32")
    for row in report["variants"].values():
        if base is not None:
            row["speedup_vs_fp32"] = {
                bs: round(row["batch"][bs]["texts_per_s"] / base["batch"][bs]["texts_per_s"], 2) for bs in BATCH_SIZES
            }
            if "macro_f1" in row and "macro_f1" in base:
                row["macro_f1_delta_vs_fp32"] = round(row["macro_f1"] - base["macro_f1"], 4)
    return report
