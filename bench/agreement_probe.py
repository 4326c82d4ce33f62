"""Where the int8 model's top-1 disagreement with fp32 comes from: batch neighbours, and smoothing.

    python bench/agreement_probe.py --checkpoint artifacts/student4 [--alphas 0.5 0.7] [--texts 2000] \\
        [--split dev] [--per-node]

Needs the train extra, a checkpoint and ../shared/data/goemotions. Builds the exporter's plain fp32
graph from the checkpoint and compares with it, on the first ``--texts`` test texts, the served recipe's
dynamic int8 (every op type, per-channel weights) scored alone (batch 1) and in batches of 64, and the
same int8 after SmoothQuant-style smoothing (Xiao et al., 2023) of every MatMul fed by a LayerNorm: an
explicit ``Mul`` by 1/s on the LayerNorm's output and the weights' rows times s, with
s = max|x|^alpha / max|w|^(1 - alpha) per channel, activation maxima calibrated on 512 train texts. The
fp32 graph is unchanged by it (printed); only the int8 error moves. Prints agreement and batch-32
texts/s (length-sorted) per variant; with ``--per-node``, the agreement with each weight MatMul (and the
classifier head) left fp32 in turn. Results: docs/MODEL.md ("Agreement: where the 3% goes").
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from loadgen import DATA  # noqa: E402

from samo_serve.core.batching import pad_rows  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.modeling.evaluation import top_label_agreement  # noqa: E402
from samo_serve.modeling.goemotions import read_split  # noqa: E402
from samo_serve.modeling.graph_optimize import quantize_int8  # noqa: E402
from samo_serve.modeling.model_bench import capacity_batches, full_pass_rate  # noqa: E402
from samo_serve.settings import RunnerSettings  # noqa: E402


def layernorm_inputs(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """LayerNorm outputs that feed MatMuls with weights, and those MatMuls."""
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
    path: Path, tensors: list[str], tokenizer: TextTokenizer, texts: list[str]
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of ``tensors`` over ``texts`` in padded batches of 16 (padding included, as served)."""
    model = onnx.load(str(path))
    for name in tensors:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    enc = tokenizer.encode_batch(texts)
    maxima: dict[str, np.ndarray] = {}
    for i in range(0, len(texts), 16):
        ids, mask = pad_rows(enc, np.arange(i, min(i + 16, len(texts))))
        for name, out in zip(tensors, session.run(tensors, {"input_ids": ids, "attention_mask": mask}), strict=True):
            a = np.abs(out).reshape(-1, out.shape[-1]).max(0)
            maxima[name] = np.maximum(maxima.get(name, a), a)
    return maxima


def smooth(src: Path, dst: Path, maxima: dict[str, np.ndarray], alpha: float) -> None:
    model = onnx.load(str(src))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    inserted = {}
    for tensor, mms in layernorm_inputs(graph).items():
        w_max = np.max([np.abs(numpy_helper.to_array(weights[m.input[1]])).max(1) for m in mms], axis=0)
        s = (np.clip(maxima[tensor], 1e-5, None) ** alpha / np.clip(w_max, 1e-5, None) ** (1 - alpha)).astype(
            np.float32
        )
        key = tensor.replace("/", "_")
        graph.initializer.append(numpy_helper.from_array(1 / s, f"{key}_smooth"))
        inserted[tensor] = helper.make_node("Mul", [tensor, f"{key}_smooth"], [f"{tensor}_smooth"], name=f"{key}_mul")
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


def main() -> None:
    from samo_serve.modeling.training.export import export_plain, load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--split", choices=["dev", "test"], default="test", help="dev: to choose without test")
    parser.add_argument("--per-node", action="store_true", help="also: each weight op left fp32 alone, in turn")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="samo-agree-"))
    model, meta = load_model(args.checkpoint)
    tokenizer = TextTokenizer(args.checkpoint / "tokenizer.json", int(meta["max_length"]))
    plain = tmp / "plain.fp32.onnx"
    export_plain(model, tokenizer, plain)
    texts = read_split(DATA, args.split, len(meta["labels"])).texts[: args.texts]
    sorted32 = capacity_batches(tokenizer, texts[:1024], 32)

    def scores(path: Path, batch: int = 64) -> tuple[np.ndarray, OrtModelRunner]:
        settings = RunnerSettings(device="cpu", policy="batched", sessions=1, intra_op_threads=2, max_sub_batch=64)
        runner = OrtModelRunner(path, meta["activation"], settings)
        out = [runner.predict(tokenizer.encode_batch(texts[i : i + batch])) for i in range(0, len(texts), batch)]
        return np.concatenate(out), runner

    fp32, _ = scores(plain)

    def report(name: str, path: Path, batch: int = 64) -> None:
        q, runner = scores(path, batch)
        rate = max(full_pass_rate(runner, sorted32) for _ in range(2))
        agree = top_label_agreement(q, fp32)
        print(f"{name:<48} agreement {agree:.2%}  batch-32 {rate:5.0f} texts/s", flush=True)

    quantize_int8(plain, tmp / "int8.onnx", op_types=())
    report("int8 (served recipe), batches of 64", tmp / "int8.onnx")
    report("int8 (served recipe), each text alone", tmp / "int8.onnx", batch=1)
    if args.per_node:  # is the loss in a few ops (keep those fp32) or spread over all of them?
        graph = onnx.load(str(plain)).graph
        weights = {i.name for i in graph.initializer}
        nodes = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
        for name in nodes:
            quantize_int8(plain, tmp / "one.int8.onnx", op_types=(), exclude_suffix=name)
            q, _ = scores(tmp / "one.int8.onnx")
            print(f"  {name} fp32: agreement {top_label_agreement(q, fp32):.2%}", flush=True)
    tensors = list(layernorm_inputs(onnx.load(str(plain)).graph))
    maxima = activation_maxima(plain, tensors, tokenizer, read_split(DATA, "train", len(meta["labels"])).texts[:512])
    for alpha in args.alphas:
        smoothed = tmp / f"smooth{alpha}.fp32.onnx"
        smooth(plain, smoothed, maxima, alpha)
        print(
            f"smoothed fp32 (alpha {alpha}) vs fp32: max |diff| {float(np.abs(scores(smoothed)[0] - fp32).max()):.1e}"
        )
        quantize_int8(smoothed, tmp / f"smooth{alpha}.int8.onnx", op_types=())
        report(f"LayerNorm-smoothed int8, alpha {alpha}", tmp / f"smooth{alpha}.int8.onnx")


if __name__ == "__main__":
    main()
