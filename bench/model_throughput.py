"""Raw ONNX Runtime throughput of the exported model: fp32 vs int8 at batch 1, 32, 64.

    python bench/model_throughput.py [--texts 2048] [--threads 0] [--seconds 3]

Runs on GoEmotions test texts (../shared/data/goemotions; else the load tester's built-in sample),
tokenization excluded (token ids are prepared first), one process, the same ORT settings for every
precision: ``samo-serve model bench``'s measurement (samo_serve.modeling.model_bench), speed only.
Prints texts/s and the int8/fp32 ratio. Only int8 ships; a precision whose file is absent (fp32 comes
from `samo-serve model export`) is skipped with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import bench_texts  # noqa: E402

from samo_serve.modeling.model_bench import BATCH_SIZES, bench_model  # noqa: E402
from samo_serve.settings import default_model_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2048, help="test texts to time (batches are cut from them)")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = all cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="at least this long per precision and batch size")
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    args = parser.parse_args()
    if args.texts < max(BATCH_SIZES):
        parser.error(f"--texts must be at least {max(BATCH_SIZES)} (the largest batch)")

    texts = bench_texts(splits=("test",))[: args.texts]
    report = bench_model(args.model_dir, None, texts, min_seconds=args.seconds, threads=args.threads)
    for precision, why in report["missing"].items():
        print(f"{precision:>5}: skipped, {why}", flush=True)
    rates = {p: {bs: row["batch"][bs]["texts_per_s"] for bs in BATCH_SIZES} for p, row in report["variants"].items()}
    for precision, by_batch in rates.items():
        for bs, rate in by_batch.items():
            print(f"{precision:>5} batch {bs:>3}: {rate:8.1f} texts/s", flush=True)
    if "fp32" in rates and "int8" in rates:
        ratios = (f"batch {bs}: {rates['int8'][bs] / rates['fp32'][bs]:.2f}x" for bs in BATCH_SIZES)
        print("\nint8/fp32 speed-up: " + ", ".join(ratios))
    else:
        print("\nint8/fp32 speed-up: not measured (needs both files)")


if __name__ == "__main__":
    main()
