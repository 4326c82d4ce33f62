"""The model's execution policy: which way of running it serves arrival-order texts fastest on these cores.

    python bench/model_policy.py [--texts 1024] [--rounds 3]

Every row is the product's runner (``OrtModelRunner``) with ``RunnerSettings`` as a user sets them, over
the same GoEmotions texts in the order they come (tokenized beforehand), full passes, the best of
``--rounds``. Two callers at once where a server has two (the micro-batcher keeps two batches in
flight), one otherwise:

- ``per_text`` x N sessions (the default on CPU: each text alone, unpadded, N single-threaded sessions);
- ``batched``, one session of 2 threads: arrival-order micro-batches of 16 (what a server at c=32 forms)
  and of 1; and two sessions of 1 thread on micro-batches of 8 and 16;
- for reference only (no server sees texts it has not received): length-sorted batches of 32.

Prints texts/s per row and the best arrival-order policy; ``serve_vs_raw.py`` prints it beside the
served rate. Also checks what the policy is for: the same text scores the same bits alone and in a batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from loadgen import bench_texts, save_report  # noqa: E402

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.settings import RunnerSettings, default_model_dir  # noqa: E402

SORTED_REFERENCE = "batched 1x2 threads, length-sorted 32 (reference)"


def _pass(runner: OrtModelRunner, batches: list[Any], callers: int) -> float:
    texts = sum(len(b) for b in batches)
    started = time.perf_counter()
    if callers == 1:
        for b in batches:
            runner.predict(b)
    else:
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(runner.predict, batches))
    return texts / (time.perf_counter() - started)


def policy_rates(texts: list[str], rounds: int = 3) -> dict[str, float]:
    """texts/s of each policy on ``texts`` in arrival order (best of ``rounds`` full passes)."""
    model_dir = default_model_dir()
    card = load_card(model_dir)
    tokenizer = TextTokenizer.for_card(card, model_dir)

    def runner(**kw: Any) -> OrtModelRunner:
        return OrtModelRunner.for_card(card, model_dir, RunnerSettings(device="cpu", **kw))

    def chunks(size: int, items: list[str] = texts) -> list[Any]:
        return [tokenizer.encode_batch(items[i : i + size]) for i in range(0, len(items), size)]

    by_length = sorted(texts, key=lambda t: len(tokenizer.encode_batch([t]).ids))
    rows: dict[str, tuple[OrtModelRunner, list[Any], int]] = {
        "per_text x1 session": (runner(policy="per_text", sessions=1), chunks(16), 2),
        "per_text x2 sessions": (runner(policy="per_text", sessions=2), chunks(16), 2),
        "batched 1x2 threads, arrival 16": (runner(policy="batched", sessions=1, intra_op_threads=2), chunks(16), 2),
        "batched 1x2 threads, batch 1": (runner(policy="batched", sessions=1, intra_op_threads=2), chunks(1), 1),
        "batched 2x1 thread, arrival 8": (runner(policy="batched", sessions=2), chunks(8), 2),
        "batched 2x1 thread, arrival 16": (runner(policy="batched", sessions=2), chunks(16), 2),
        SORTED_REFERENCE: (runner(policy="batched", sessions=1, intra_op_threads=2), chunks(32, by_length), 1),
    }
    rates: dict[str, float] = {}
    for name, (r, batches, callers) in rows.items():
        _pass(r, batches[:4], callers)  # warm-up
        rates[name] = round(max(_pass(r, batches, callers) for _ in range(rounds)), 1)
        print(f"  {name:<52} {rates[name]:8.1f} texts/s", flush=True)
    return rates


def best_arrival(rates: dict[str, float]) -> tuple[str, float]:
    name = max((n for n in rates if n != SORTED_REFERENCE), key=rates.__getitem__)
    return name, rates[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE.parent / "runs" / "model_policy.json")
    args = parser.parse_args()
    texts = bench_texts()[: args.texts]
    rates = policy_rates(texts, args.rounds)
    name, rate = best_arrival(rates)
    model_dir = default_model_dir()
    card = load_card(model_dir)
    tokenizer = TextTokenizer.for_card(card, model_dir)
    default = OrtModelRunner.for_card(card, model_dir, RunnerSettings(device="cpu"))
    sample = texts[:64]
    alone = np.stack([default.predict(tokenizer.encode_batch([t]))[0] for t in sample])
    together = default.predict(tokenizer.encode_batch(sample))
    report: dict[str, object] = {
        "texts/s per policy": rates,
        "best arrival-order policy": f"{name}: {rate} texts/s",
        f"default ({default.policy}, {default.sessions} sessions) / best": round(
            rates[f"per_text x{default.sessions} session{'s' if default.sessions > 1 else ''}"] / rate, 3
        )
        if default.sessions in (1, 2)
        else None,
        "default: a text alone == in a batch of 64 (bitwise)": bool(np.array_equal(alone, together)),
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
