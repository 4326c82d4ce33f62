"""SmoothQuant-style smoothing of LayerNorm outputs, so that dynamic int8 loses less of them.

Dynamic int8 gives each MatMul input one scale over the whole tensor. A LayerNorm's output has a few
channels whose values are many times larger than the rest, so that scale is set by them and the other
channels keep only a few of their 256 steps: the int8 model's top label then differs from fp32's on ~2.5%
of texts (docs/MODEL.md, "Agreement: where the 3% goes"). Smoothing (Xiao et al., 2023, "SmoothQuant")
moves that range into the weights, where int8 is per output channel: an explicit ``Mul`` by 1/s after the
LayerNorm, the rows of every weight it feeds times s, with ``s = max|x|^alpha / max|w|^(1 - alpha)`` per
channel and ``max|x|`` calibrated on train texts. The fp32 function is unchanged (to float rounding); only
where int8 rounds moves. The ``Mul`` is explicit rather than folded into the LayerNorm's weights because
the same output also feeds the residual connection, which must see it unscaled.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from samo_serve.core.batching import pad_rows
from samo_serve.core.tokenizer import TextTokenizer

__all__ = [
    "CALIBRATION_TEXTS",
    "SMOOTH_ALPHA",
    "activation_maxima",
    "layernorm_matmuls",
    "smooth_for_int8",
    "smooth_layernorm_outputs",
]

#: train texts whose activation maxima set the scales (their first rows: fixed, so exports reproduce)
CALIBRATION_TEXTS = 512
#: migration strength: 0 keeps the activations as they are, 1 moves their whole range into the weights
SMOOTH_ALPHA = 0.6


def layernorm_matmuls(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """LayerNorm outputs that feed MatMuls with constant weights, and those MatMuls."""
    weights = {i.name for i in graph.initializer}
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    found = {}
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            mms = [c for c in consumers[node.output[0]] if c.op_type == "MatMul" and c.input[1] in weights]
            if mms:
                found[node.output[0]] = mms
    return found


def activation_maxima(
    path: Path, tensors: list[str], tokenizer: TextTokenizer, texts: list[str], batch: int = 16
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of the graph's ``tensors`` over ``texts`` in padded batches (padding included, as served)."""
    model = onnx.load(str(path))
    for name in tensors:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    enc = tokenizer.encode_batch(texts)
    maxima: dict[str, np.ndarray] = {}
    for i in range(0, len(texts), batch):
        ids, mask = pad_rows(enc, np.arange(i, min(i + batch, len(texts))))
        for name, out in zip(tensors, session.run(tensors, {"input_ids": ids, "attention_mask": mask}), strict=True):
            a = np.abs(out).reshape(-1, out.shape[-1]).max(0)
            maxima[name] = np.maximum(maxima.get(name, a), a)
    return maxima


def smooth_layernorm_outputs(src: Path, dst: Path, maxima: dict[str, np.ndarray], alpha: float) -> int:
    """Write ``src`` with every LayerNorm output in ``maxima`` smoothed to ``dst``; returns how many."""
    model = onnx.load(str(src))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    inserted = {}
    for tensor, mms in layernorm_matmuls(graph).items():
        w_max = np.max([np.abs(numpy_helper.to_array(weights[m.input[1]])).max(1) for m in mms], axis=0)
        s = np.clip(maxima[tensor], 1e-5, None) ** alpha / np.clip(w_max, 1e-5, None) ** (1 - alpha)
        s = s.astype(np.float32)
        key = tensor.replace("/", "_")
        graph.initializer.append(numpy_helper.from_array(1 / s, f"{key}_smooth"))
        mul = helper.make_node("Mul", [tensor, f"{key}_smooth"], [f"{tensor}_smooth"], name=f"{key}_smooth_mul")
        inserted[tensor] = mul
        for m in mms:
            m.input[0] = f"{tensor}_smooth"
            w = numpy_helper.to_array(weights[m.input[1]]) * s[:, None]
            weights[m.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), m.input[1]))
    ordered = []
    for node in graph.node:  # each Mul right after the LayerNorm it reads: the graph stays topologically sorted
        ordered.append(node)
        ordered.extend(inserted[o] for o in node.output if o in inserted)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.save(model, str(dst))
    return len(inserted)


def smooth_for_int8(
    src: Path, dst: Path, tokenizer: TextTokenizer, texts: list[str], alpha: float = SMOOTH_ALPHA
) -> dict[str, Any]:
    """Write ``src`` (an fp32 graph with plain ``LayerNormalization`` ops) smoothed at ``alpha`` to ``dst``.

    ``texts`` calibrate the activation maxima (train texts only: the scales are part of the model).
    Returns what the card records: alpha, how many texts calibrated, how many LayerNorm outputs moved.
    """
    tensors = list(layernorm_matmuls(onnx.load(str(src)).graph))
    maxima = activation_maxima(src, tensors, tokenizer, texts) if tensors else {}
    smoothed = smooth_layernorm_outputs(src, dst, maxima, alpha)
    return {"alpha": alpha, "calibration_texts": len(texts), "layernorms": smoothed}
