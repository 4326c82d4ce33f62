"""Make an exported fp32 graph fast on CPU: transformer fusions first, then int8 quantization.

ONNX Runtime's own session-time optimizer cannot fuse attention once the graph is quantized (the
MatMulInteger pattern no longer matches), so the shipped file before issue 16 ran attention as loose
MatMul/Transpose/Softmax ops. Fusing with ONNX Runtime's transformer optimizer *before* quantizing keeps
one ``Attention`` op per layer (quantized to ``QAttention``), ``SkipLayerNormalization``, ``BiasGelu``
and ``EmbedLayerNormalization``. docs/MODEL.md has the measurements that chose each step, and the later
one that made the plain graph the default int8 source (equal on served micro-batches, 5-10% faster at
full batches, 4% slower at batch 1 on two CPUs): the fused graph is the fp32 variant and, with
``samo-serve model export --int8-graph fused``, the int8 one.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

__all__ = ["FUSABLE_MODEL_TYPES", "QUANTIZED_OPS", "fuse_transformer", "quantize_int8"]

#: Hugging Face ``model_type`` values whose encoder ONNX Runtime's "bert" fusions understand
FUSABLE_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"})
#: op types quantized to int8 in the fused graph (the embeddings too: fp32 ones would make the file 59 MB
#: instead of 23); the classifier head (Gemm) stays fp32: tiny, and the scores' last step
QUANTIZED_OPS = ("MatMul", "Attention", "EmbedLayerNormalization")


def fuse_transformer(src: Path, dst: Path, num_heads: int, hidden_size: int, attention: bool = True) -> dict[str, int]:
    """Write ``src`` with BERT-family fusions applied to ``dst``; returns the fused op counts (zeros left out).

    ``attention=False`` leaves attention as loose MatMul/Softmax ops (every other fusion applied).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = attention
    # opt_level 0: only the Python fusions; ONNX Runtime applies its own graph optimizations when the
    # session loads, on whatever machine serves the file.
    model = optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        optimization_options=options,
    )
    model.save_model_to_file(str(dst))
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = QUANTIZED_OPS, exclude_suffix: str = "") -> None:
    """Dynamic int8 quantization: per-channel int8 weights, activations quantized per call.

    ``op_types`` empty: every op type ONNX Runtime can quantize (the recipe before issue 16). Nodes whose
    name ends with ``exclude_suffix`` stay fp32.
    """
    nodes = onnx.load(str(src)).graph.node if exclude_suffix else []  # the graph is read only to find them
    excluded = [n.name for n in nodes if n.name.endswith(exclude_suffix)]
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=list(op_types) or None,
        # quantize_dynamic first rewrites each Gemm as a MatMul named "<gemm>_MatMul" and a bias Add
        nodes_to_exclude=excluded + [f"{name}_MatMul" for name in excluded],
        # The fused ops are in the com.microsoft domain, which ONNX shape inference cannot type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
