"""Each graph step of the model, measured in one run: speed (raw capacity) and quality (macro-F1, agreement).

    python bench/model_graphs.py --checkpoint artifacts/ckpt [--baseline-rev 4368a19] [--texts 1024] [--rounds 3]
    python bench/model_graphs.py [--rounds 5]     # no checkpoint: the shipped file against the baseline only

Needs the train extra and a checkpoint (`samo-serve model train`, see docs/MODEL.md) and the GoEmotions
data in ../shared/data/goemotions. From the checkpoint it builds, in a temporary folder: the exporter's
plain fp32 graph, its dynamic int8 (the served recipe), the fused fp32 graph (ONNX Runtime's transformer
fusions), fused + dynamic int8 (`--int8-graph fused`), every fusion but attention + dynamic int8, fused
int8 with every layer's two output projections (FFN down, attention out) left in fp32, fused with only the
attention's QKV projection in int8, and the plain graph with static per-channel QDQ (activation ranges
calibrated on 512 train texts, MinMax). The int8 file shipped at ``--baseline-rev`` is loaded from git
history for the same-run comparison. Without ``--checkpoint`` only the two int8 files are timed (the
capacity target needs no checkpoint). The baseline and shipped rows always take their quality from their
own cards; with a student's checkpoint (``--layers`` in ``samo-serve model train``) pass ``--model-dir``
with its exported folder, whose thresholds score the variants.

Speed: the model's raw capacity (samo_serve.modeling.model_bench): texts/s over full passes of the
first ``--texts`` test texts at batch 1 in arrival order and length-sorted batches of 8, 32 and 64, 2 ORT
threads, tokenization done beforehand; every file is timed once per round, in an order that alternates
between rounds, and each cell is the median over rounds. Capacity: the best of batch 1, 8 and 32.
Quality: test macro-F1 at the thresholds of the card in --model-dir, and top-label agreement with the
fused fp32 graph, on all 5,427 test texts (scored as the service scores them: length-bucketed batches).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from loadgen import DATA  # noqa: E402

from samo_serve.core.model_card import ModelCard, load_card  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.modeling.evaluation import classification_report, top_label_agreement  # noqa: E402
from samo_serve.modeling.goemotions import read_split  # noqa: E402
from samo_serve.modeling.graph_optimize import QUANTIZED_OPS, quantize_int8  # noqa: E402
from samo_serve.modeling.model_bench import CAPACITY_BATCHES, capacity_batches, full_pass_rate  # noqa: E402
from samo_serve.modeling.model_eval import score_texts  # noqa: E402
from samo_serve.settings import RunnerSettings, default_model_dir  # noqa: E402

SHIPPED = "samo_serve/models/goemotions-minilm/model.int8.onnx"
BATCHES = (*CAPACITY_BATCHES, 64)


def static_qdq(graph: Path, out: Path, tokenizer: TextTokenizer, texts: list[str]) -> None:
    """Static per-channel QDQ of every MatMul, activation ranges calibrated on ``texts`` (train)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from samo_serve.core.batching import pad_rows

    enc = tokenizer.encode_batch(texts)
    feeds = [
        dict(zip(("input_ids", "attention_mask"), pad_rows(enc, np.arange(i, min(i + 16, len(texts)))), strict=True))
        for i in range(0, len(texts), 16)
    ]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    quantize_static(
        str(graph), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )  # fmt: skip


def build_variants(checkpoint: Path | None, tmp: Path, baseline_rev: str, tokenizer: TextTokenizer) -> dict[str, Path]:
    from samo_serve.modeling.training.export import export_plain, fuse_for, load_model

    files = {"baseline": tmp / "baseline.int8.onnx"}
    files["baseline"].write_bytes(subprocess.run(["git", "show", f"{baseline_rev}:{SHIPPED}"], cwd=ROOT,
                                                 check=True, capture_output=True).stdout)  # fmt: skip
    files["shipped"] = tmp / "shipped.int8.onnx"  # today's file: a student's checkpoint is timed beside it
    shutil.copyfile(ROOT / SHIPPED, files["shipped"])
    if checkpoint is None:
        return files
    model, _ = load_model(checkpoint)
    plain, fused = tmp / "plain.fp32.onnx", tmp / "fused.fp32.onnx"
    export_plain(model, tokenizer, plain)
    fused_ops = fuse_for(model, plain, fused)
    print(f"fused ops: {fused_ops}", flush=True)
    files |= {"plain fp32": plain, "fused fp32": fused}
    files["plain int8 (served)"] = tmp / "plain.int8.onnx"
    quantize_int8(plain, files["plain int8 (served)"], op_types=())  # () = every op type, as before
    files["fused int8"] = tmp / "fused.int8.onnx"
    quantize_int8(fused, files["fused int8"], QUANTIZED_OPS)
    files["fused but attention, int8"] = tmp / "fused.noattention.int8.onnx"
    fuse_for(model, plain, tmp / "fused.noattention.fp32.onnx", attention=False)
    quantize_int8(tmp / "fused.noattention.fp32.onnx", files["fused but attention, int8"], QUANTIZED_OPS)
    files["fused int8, output projections fp32"] = tmp / "fused.int8.outputs.onnx"
    quantize_int8(fused, files["fused int8, output projections fp32"], QUANTIZED_OPS, "/output/dense/MatMul")
    files["fused int8, attention only"] = tmp / "fused.int8.attention.onnx"
    quantize_int8(fused, files["fused int8, attention only"], ("Attention",))
    # static needs the plain graph: on the fused one, shape inference cannot type the com.microsoft ops'
    # outputs and only the weights get quantized (fp32 compute)
    files["plain static QDQ (calibrated)"] = tmp / "plain.qdq.onnx"
    train_texts = read_split(DATA, "train", 28).texts[:512]
    static_qdq(plain, files["plain static QDQ (calibrated)"], tokenizer, train_texts)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="build every variant from it (else: shipped vs baseline)")
    parser.add_argument(
        "--model-dir", type=Path, default=default_model_dir(), help="the card whose thresholds score F1"
    )
    parser.add_argument("--baseline-rev", default="4368a19", help="commit whose shipped int8 file is the baseline")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "model_graphs.json")
    args = parser.parse_args()

    card = load_card(args.model_dir)
    tokenizer = TextTokenizer.for_card(card, args.model_dir)
    tmp = Path(tempfile.mkdtemp(prefix="samo-graphs-"))
    shutil.copyfile(args.model_dir / card.tokenizer_file, tmp / card.tokenizer_file)  # scored from tmp
    files = build_variants(args.checkpoint, tmp, args.baseline_rev, tokenizer)

    texts = read_split(DATA, "test", len(card.labels)).texts
    batches = {bs: capacity_batches(tokenizer, texts[: args.texts], bs) for bs in BATCHES}
    settings = RunnerSettings(
        device="cpu",
        policy="batched",
        sessions=1,
        intra_op_threads=args.threads,
        length_bucketing=False,
        max_sub_batch=64,
    )
    runners = {name: OrtModelRunner(path, card.activation, settings) for name, path in files.items()}
    rates: dict[str, dict[int, list[float]]] = {name: {bs: [] for bs in BATCHES} for name in files}
    names = list(files)
    for name in names:  # warm-up
        for bs in BATCHES:
            full_pass_rate(runners[name], batches[bs][:4])
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for bs in BATCHES:
                rates[name][bs].append(full_pass_rate(runners[name], batches[bs]))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    test = read_split(DATA, "test", len(card.labels))
    # The baseline is another training run: its quality is its own card's, not comparable row by row.
    scores = {
        name: score_texts(
            path.parent, card.model_copy(update={"onnx_file": path.name}), test.texts, threads=args.threads
        )
        for name, path in files.items()
        if "fused fp32" in files and name not in ("baseline", "shipped")
    }
    baseline_quality = _card_metrics(args.baseline_rev)
    base_rates = {bs: float(np.median(rates["baseline"][bs])) for bs in BATCHES}
    base_capacity = max(base_rates[bs] for bs in CAPACITY_BATCHES)
    report: dict[str, Any] = {"texts": args.texts, "rounds": args.rounds, "threads": args.threads, "variants": {}}
    header = "| graph | b1 | b8 | b32 | b64 | capacity | × baseline | test macro-F1 | top-1 agree vs fp32 |"
    lines = [header, "| --- " * 9 + "|"]
    for name in names:
        med = {bs: float(np.median(rates[name][bs])) for bs in BATCHES}
        cap = max(med[bs] for bs in CAPACITY_BATCHES)
        if name not in scores:  # without a checkpoint there is no fp32 to compare with: the card's figures
            quality = baseline_quality if name == "baseline" else _card_metrics(None)
            f1, agree = quality["test_macro_f1"], quality["top_label_agreement"]
        else:
            f1 = classification_report(scores[name], test.targets, np.asarray(card.thresholds), card.labels)["macro_f1"]
            agree = top_label_agreement(scores[name], scores["fused fp32"])
        row = {"texts_per_s": med, "capacity": cap, "vs_baseline": cap / base_capacity,
               "macro_f1": f1, "agreement_vs_fp32": agree}  # fmt: skip
        report["variants"][name] = row
        cells = " | ".join(f"{med[bs]:.0f}" for bs in BATCHES)
        lines.append(f"| {name} | {cells} | {cap:.0f} | {cap / base_capacity:.2f}× | "
                     f"{f1:.4f} | {agree:.2%} |")  # fmt: skip
    print("\n".join(lines))
    print(f"(baseline: the int8 file shipped at {args.baseline_rev}, an earlier training run of the same recipe; "
          "its F1 and agreement are its own card's, against its own fp32; so are the shipped file's without "
          "--checkpoint)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _card_metrics(rev: str | None) -> dict[str, Any]:
    """The test metrics of the shipped card at git ``rev`` (None: the working tree's)."""
    path = SHIPPED.replace("model.int8.onnx", "card.json")
    text = (
        (ROOT / path).read_text(encoding="utf-8")
        if rev is None
        else subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    test = ModelCard.model_validate_json(text).metrics.get("test", {})
    return {
        "test_macro_f1": test.get("macro_f1"),
        "top_label_agreement": test.get("vs_fp32", {}).get("top_label_agreement"),
    }


if __name__ == "__main__":
    main()
