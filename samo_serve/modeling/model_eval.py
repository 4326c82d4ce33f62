"""Scores and metrics of an exported model with ONNX Runtime + tokenizers only (no torch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from samo_serve.core.emoji_text import demojize
from samo_serve.core.model_card import ModelCard, load_card, with_variant
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.postprocess import document_primary_index
from samo_serve.core.segments import AGGREGATIONS, aggregate, plan_text
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.modeling.documents import (
    PseudoEntry,
    Span,
    boundary_recall,
    build_entries,
    document_metrics,
    document_targets,
    dominant_labels,
    primary_metrics,
    sentence_scores,
)
from samo_serve.modeling.evaluation import (
    apply_thresholds,
    classification_report,
    f1_per_label,
    micro_f1,
    top_label_agreement,
)
from samo_serve.modeling.goemotions import read_split
from samo_serve.observability.drift import reference_of
from samo_serve.settings import DocumentSettings, LimitSettings, RunnerSettings

# The documents benchmark reads texts as the service does by default (emoji named or not).
NAME_EMOJI = DocumentSettings().name_emoji


def as_served(text: str) -> str:
    return demojize(text) if NAME_EMOJI else text


__all__ = ["evaluate_documents", "evaluate_emoji", "evaluate_split", "score_texts"]


def _scorer(
    model_dir: Path, card: ModelCard, batch_size: int = 64, threads: int = 0
) -> tuple[TextTokenizer, Callable[[list[str]], np.ndarray]]:
    """The card's tokenizer, and a function from texts to their probabilities under its ONNX file, on CPU."""
    tokenizer = TextTokenizer.for_card(card, model_dir)
    runner = OrtModelRunner.for_card(
        card,
        model_dir,
        RunnerSettings(device="cpu", policy="batched", sessions=1, intra_op_threads=threads, max_sub_batch=batch_size),
    )

    def score(texts: list[str]) -> np.ndarray:
        out = [runner.predict(tokenizer.encode_batch(texts[i : i + 512])) for i in range(0, len(texts), 512)]
        return np.concatenate(out) if out else np.zeros((0, len(card.labels)), dtype=np.float32)

    return tokenizer, score


def score_texts(
    model_dir: Path, card: ModelCard, texts: list[str], batch_size: int = 64, threads: int = 0
) -> np.ndarray:
    """Probabilities of ``texts`` under the card's ONNX file, on CPU."""
    return _scorer(model_dir, card, batch_size, threads)[1](texts)


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
    # what the model says of the split: the drift watch's default reference (--write-reference keeps it)
    report["reference"] = reference_of(scores, card.labels, split)
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


def _metrics(
    scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, labels: list[str], past: np.ndarray
) -> dict[str, float]:
    """Macro/micro F1 over every sentence, and macro-F1 over the sentences of entries past the window
    (``past``): an entry that fits is read whole, so each of its sentences gets the whole entry's scores."""
    report = classification_report(scores, targets, thresholds, labels)
    split = classification_report(scores[past], targets[past], thresholds, labels)
    return {"macro_f1": report["macro_f1"], "micro_f1": report["micro_f1"], "macro_f1_past_window": split["macro_f1"]}


def _read(entries: list[PseudoEntry], tokenizer: TextTokenizer) -> tuple[list[list[Span]], list[str]]:
    """Each entry as the service reads it (core.segments.plan_text): its segments' offsets into the entry, and
    every segment's text in order (emoji named where the service names them); an entry that fits the window
    is one segment, itself."""
    spans: list[list[Span]] = []
    texts: list[str] = []
    for entry in entries:
        plan = plan_text(entry.text, tokenizer, LimitSettings().max_segments, name_emoji=NAME_EMOJI)
        spans.append([(0, len(entry.text))] if plan.spans is None else [(s.start, s.end) for s in plan.spans])
        texts.extend(plan.texts)
    return spans, texts


def evaluate_documents(model_dir: Path, data_dir: Path, split: str = "test", seed: int = 14) -> dict[str, Any]:
    """The document benchmark: ``split``'s texts joined into seeded pseudo-entries of 3-12 sentences.

    (a) segment level: each gold sentence as read inside its entry (the segments overlapping it, aggregated)
    against the same sentence sent alone; (b) document level: each entry against the union of its sentences'
    gold labels, per aggregation and as read with documents off (the first ``max_length`` tokens). Every
    text has its emoji named, as served.
    """
    card = load_card(model_dir)
    data = read_split(data_dir, split, len(card.labels))
    thresholds = np.asarray(card.thresholds)
    tokenizer, score = _scorer(model_dir, card)
    started = time.perf_counter()
    entries = build_entries(data.texts, seed)
    gold = data.targets[[row for entry in entries for row in entry.rows]]
    alone = score([as_served(s) for entry in entries for s in entry.sentences])
    segments, seg_texts = _read(entries, tokenizer)
    seg_scores = score(seg_texts)
    seg_lengths = np.fromiter((len(t) for t in seg_texts), dtype=np.int64, count=len(seg_texts))  # as served
    bounds = np.cumsum([0, *(len(segs) for segs in segments)])
    past = np.repeat([len(segs) > 1 for segs in segments], [len(entry.rows) for entry in entries])
    doc_gold = document_targets(entries, data.targets)
    whole = score([as_served(entry.text) for entry in entries])
    document_level = {"first_window": document_metrics(whole, doc_gold, thresholds)}
    segment_level: dict[str, dict[str, float]] = {}
    primary: dict[str, dict[str, Any]] = {}
    for method in AGGREGATIONS:
        docs, sentences = [], []
        for i, entry in enumerate(entries):
            part = slice(bounds[i], bounds[i + 1])
            docs.append(aggregate(seg_scores[part], seg_lengths[part], method))
            sentences.append(
                sentence_scores(entry.spans, segments[i], seg_scores[part], seg_lengths[part], aggregate, method)
            )
        segment_level[method] = _metrics(np.concatenate(sentences), gold, thresholds, card.labels, past)
        document_level[method] = document_metrics(np.stack(docs), doc_gold, thresholds)
        if method == DocumentSettings().aggregation:  # the served scores: each way of naming the primary
            neutral = card.labels.index("neutral") if "neutral" in card.labels else None
            dominant = dominant_labels(entries, data.targets, neutral)
            strongest = np.stack(docs).argmax(axis=1)
            parts = [slice(bounds[i], bounds[i + 1]) for i in range(len(entries))]
            covered = [
                document_primary_index(seg_scores[part], seg_lengths[part], thresholds, doc, neutral)
                for part, doc in zip(parts, docs, strict=True)
            ]  # as served (samo_serve.service)
            primary = {
                "max": primary_metrics(strongest, doc_gold, dominant, neutral),
                "coverage": primary_metrics(np.asarray(covered), doc_gold, dominant, neutral),
            }
    return {
        "split": split,
        "seed": seed,
        "model_version": card.version,
        "entries": len(entries),
        "sentences": len(gold),
        "segments": int(bounds[-1]),
        "entries_in_one_window": sum(len(segs) == 1 for segs in segments),
        "boundary_recall": round(boundary_recall([e.spans for e in entries], segments), 4),
        "alone": _metrics(alone, gold, thresholds, card.labels, past),
        "segment_level": segment_level,
        "document_level": document_level,
        "primary": primary,
        "best_aggregation": max(AGGREGATIONS, key=lambda m: document_level[m]["micro_f1"]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def evaluate_emoji(model_dir: Path, data_dir: Path, splits: tuple[str, ...] = ("test", "dev")) -> dict[str, Any]:
    """F1 on the texts of ``splits`` that hold emoji, read as they are and after demojize.

    Train is left out: the model learnt from those texts. Macro-F1 here averages over the labels these few
    texts carry (the others have no support); micro-F1 weighs every gold label alike.
    """
    card = load_card(model_dir)
    thresholds = np.asarray(card.thresholds)
    _, score = _scorer(model_dir, card)
    report: dict[str, Any] = {"model_version": card.version, "splits": {}}
    for split in splits:
        data = read_split(data_dir, split, len(card.labels))
        named = [demojize(text) for text in data.texts]
        rows = [i for i, (text, after) in enumerate(zip(data.texts, named, strict=True)) if after != text]
        targets = data.targets[rows]
        present = targets.sum(axis=0) > 0
        out: dict[str, Any] = {"texts": len(rows), "labels_present": int(present.sum())}
        for name, texts in (("before", [data.texts[i] for i in rows]), ("after", [named[i] for i in rows])):
            predicted = apply_thresholds(score(texts), thresholds)
            f1 = f1_per_label(targets, predicted)[2]
            out[name] = {
                "macro_f1": round(float(f1[present].mean()), 4),
                "micro_f1": round(micro_f1(targets, predicted), 4),
            }
        report["splits"][split] = out
    return report
