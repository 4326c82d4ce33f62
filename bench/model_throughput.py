"""Raw ONNX Runtime throughput of the exported model: fp32 vs int8 at batch 1, 32, 64.

    python bench/model_throughput.py [--texts 2048] [--threads 0]

Runs on GoEmotions test texts (../shared/data/goemotions), tokenization excluded (token ids are
prepared first), one process, the same ORT settings for both precisions. Prints texts/s and the
int8/fp32 ratio. fp32 comes from `samo-serve model export` (it is not shipped in git).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import goemotions_texts  # noqa: E402

from samo_serve.core.model_card import load_card, with_variant  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.modeling.model_bench import texts_per_second  # noqa: E402
from samo_serve.settings import RunnerSettings, default_model_dir  # noqa: E402

BATCH_SIZES = (1, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = all cores)")
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    args = parser.parse_args()

    card = load_card(args.model_dir)
    texts = goemotions_texts(splits=("test",))[: args.texts]
    tok = TextTokenizer.for_card(card, args.model_dir)
    settings = RunnerSettings(device="cpu", intra_op_threads=args.threads)
    rates: dict[str, dict[int, float]] = {}
    for precision in ("fp32", "int8"):
        variant = with_variant(card, precision, args.model_dir)
        runner = OrtModelRunner.for_card(variant, args.model_dir, settings)
        rates[precision] = {}
        for bs in BATCH_SIZES:
            batches = [tok.encode_batch(texts[i : i + bs]) for i in range(0, len(texts) - bs + 1, bs)]
            timed = batches[: max(1, 512 // bs)] if bs == 1 else batches
            rates[precision][bs], _ = texts_per_second(runner, timed, min_seconds=3.0)
            print(f"{precision:>5} batch {bs:>3}: {rates[precision][bs]:8.1f} texts/s", flush=True)
    print(
        "\nint8/fp32 speed-up: "
        + ", ".join(f"batch {bs}: {rates['int8'][bs] / rates['fp32'][bs]:.2f}x" for bs in BATCH_SIZES)
    )


if __name__ == "__main__":
    main()
