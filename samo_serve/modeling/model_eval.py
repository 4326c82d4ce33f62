"""Scores and metrics of an exported model with ONNX Runtime + tokenizers only (no torch)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from samo_serve.core.model_card import ModelCard, load_card, with_variant
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.modeling.evaluation import classification_report, top_label_agreement
from samo_serve.modeling.goemotions import read_split
from samo_serve.settings import RunnerSettings

__all__ = ["evaluate_split", "score_texts"]


def score_texts(
    model_dir: Path, card: ModelCard, texts: list[str], batch_size: int = 64, threads: int = 0
) -> np.ndarray:
    """Probabilities of ``texts`` under the card's ONNX file, on CPU."""
    tokenizer = TextTokenizer.for_card(card, model_dir)
    runner = OrtModelRunner.for_card(
        card, model_dir, RunnerSettings(device="cpu", intra_op_threads=threads, max_sub_batch=batch_size)
    )
    out = []
    for start in range(0, len(texts), 512):
        out.append(runner.predict(tokenizer.encode_batch(texts[start : start + 512])))
    return np.concatenate(out) if out else np.zeros((0, len(card.labels)), dtype=np.float32)


def evaluate_split(model_dir: Path, data_dir: Path, split: str = "test") -> dict[str, Any]:
    """Macro/micro F1 and per-label P/R/F1 of the served variant at the card's thresholds.

    When the card also lists an ``fp32`` variant whose file is present, adds the served variant's
    top-label agreement with it and the macro-F1 delta (the int8 quantization check).
    """
    card = load_card(model_dir)
    data = read_split(data_dir, split, len(card.labels))
    started = time.perf_counter()
    scores = score_texts(model_dir, card, data.texts)
    elapsed = time.perf_counter() - started
    thresholds = np.asarray(card.thresholds)
    report = classification_report(scores, data.targets, thresholds, card.labels)
    report.update(split=split, model_version=card.version, onnx_file=card.onnx_file, seconds=round(elapsed, 1))
    fp32 = card.variants.get("fp32")
    if fp32 and fp32["file"] != card.onnx_file and (model_dir / fp32["file"]).exists():
        ref_card = with_variant(card, "fp32", model_dir)
        ref_scores = score_texts(model_dir, ref_card, data.texts)
        ref = classification_report(ref_scores, data.targets, thresholds, card.labels)
        report["vs_fp32"] = {
            "fp32_macro_f1": ref["macro_f1"],
            "macro_f1_delta": round(report["macro_f1"] - ref["macro_f1"], 4),
            "top_label_agreement": round(top_label_agreement(scores, ref_scores), 4),
            # near-ties (fp32's top two within 0.05) flip under any int8 noise; 6.6% of test texts
            "top_label_agreement_margin_0.05": round(top_label_agreement(scores, ref_scores, 0.05), 4),
        }
    return report
