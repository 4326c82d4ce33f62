"""Where the int8 model's top-1 disagreement with fp32 comes from: batch neighbours, and smoothing.

    python bench/agreement_probe.py --checkpoint artifacts/student4 [--alphas 0.5 0.7] [--texts 2000] [--split dev]

Needs the train extra, a checkpoint and ../shared/data/goemotions. Builds the exporter's plain fp32
graph from the checkpoint and compares with it, on the first ``--texts`` test (or dev) texts, the served recipe's
dynamic int8 (every op type, per-channel weights) scored alone (batch 1) and in batches of 64, and the
same int8 after SmoothQuant-style smoothing (Xiao et al., 2023) of every MatMul fed by a LayerNorm: an
explicit ``Mul`` by 1/s on the LayerNorm's output and the weights' rows times s, with
s = max|x|^alpha / max|w|^(1 - alpha) per channel, activation maxima calibrated on 512 train texts. The
fp32 graph is unchanged by it (printed); only the int8 error moves. Prints agreement and batch-32
texts/s (length-sorted) per variant. Results: docs/MODEL.md ("Agreement: where the 3% goes").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from loadgen import DATA  # noqa: E402

from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.modeling.evaluation import top_label_agreement  # noqa: E402
from samo_serve.modeling.goemotions import read_split  # noqa: E402
from samo_serve.modeling.graph_optimize import quantize_int8  # noqa: E402
from samo_serve.modeling.model_bench import capacity_batches, full_pass_rate  # noqa: E402
from samo_serve.modeling.smoothing import (  # noqa: E402
    CALIBRATION_TEXTS,
    activation_maxima,
    layernorm_matmuls,
    smooth_layernorm_outputs,
)
from samo_serve.settings import RunnerSettings  # noqa: E402


def main() -> None:
    from samo_serve.modeling.training.export import export_plain, load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--split", choices=["dev", "test"], default="test", help="dev: to choose alpha without test")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="samo-agree-"))
    model, meta = load_model(args.checkpoint)
    tokenizer = TextTokenizer(args.checkpoint / "tokenizer.json", int(meta["max_length"]))
    plain = tmp / "plain.fp32.onnx"
    export_plain(model, tokenizer, plain)
    texts = read_split(DATA, args.split, len(meta["labels"])).texts[: args.texts]
    sorted32 = capacity_batches(tokenizer, texts[:1024], 32)

    def scores(path: Path, batch: int = 64) -> tuple[np.ndarray, OrtModelRunner]:
        settings = RunnerSettings(device="cpu", intra_op_threads=2, max_sub_batch=64)
        runner = OrtModelRunner(path, meta["activation"], settings)
        out = [runner.predict(tokenizer.encode_batch(texts[i : i + batch])) for i in range(0, len(texts), batch)]
        return np.concatenate(out), runner

    fp32, _ = scores(plain)

    def report(name: str, path: Path, batch: int = 64) -> None:
        q, runner = scores(path, batch)
        rate = max(full_pass_rate(runner, sorted32) for _ in range(2))
        agree = top_label_agreement(q, fp32)
        print(f"{name:<44} agreement {agree:.2%}  batch-32 {rate:5.0f} texts/s", flush=True)

    quantize_int8(plain, tmp / "int8.onnx", op_types=(), head_fp32=False)
    report("int8 (recipe before), batches of 64", tmp / "int8.onnx")
    report("int8 (recipe before), each text alone", tmp / "int8.onnx", batch=1)
    quantize_int8(plain, tmp / "int8.head.onnx", op_types=())
    report("int8, head fp32", tmp / "int8.head.onnx")
    tensors = list(layernorm_matmuls(onnx.load(str(plain)).graph))
    maxima = activation_maxima(
        plain, tensors, tokenizer, read_split(DATA, "train", len(meta["labels"]), limit=CALIBRATION_TEXTS).texts
    )
    for alpha in args.alphas:
        smoothed = tmp / f"smooth{alpha}.fp32.onnx"
        smooth_layernorm_outputs(plain, smoothed, maxima, alpha)
        print(
            f"smoothed fp32 (alpha {alpha}) vs fp32: max |diff| {float(np.abs(scores(smoothed)[0] - fp32).max()):.1e}"
        )
        quantize_int8(smoothed, tmp / f"smooth{alpha}.int8.onnx", op_types=(), head_fp32=False)
        report(f"LayerNorm-smoothed int8, alpha {alpha}", tmp / f"smooth{alpha}.int8.onnx")
        quantize_int8(smoothed, tmp / f"smooth{alpha}.head.int8.onnx", op_types=())
        report(f"LayerNorm-smoothed int8, alpha {alpha}, head fp32", tmp / f"smooth{alpha}.head.int8.onnx")


if __name__ == "__main__":
    main()
