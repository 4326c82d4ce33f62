"""Served vs raw: single-text uncached /predict at c=32 against the model's own raw capacity, same texts, same cores.

    python bench/serve_vs_raw.py [--rounds 3] [--duration 10] [--no-plain] [--out runs/serve_vs_raw.json]

Raw capacity (samo_serve.modeling.model_bench, issue 16): the served model file in this process, 2 ORT
threads, full passes over the first ``--texts`` bench texts at batch 1 in arrival order and length-sorted
batches of 8 and 32, tokenization done beforehand; the best of the three. Also printed, not part of it:
the same model on micro-batches of 16 in arrival order, length-bucketed as the runner serves them (what
a server at c=32 gets). Raw is measured with nothing else running, before the servers start and again
after they stop (the ratio uses the mean of the two, and both are printed: the machine drifts).

Served: `samo-serve run` (Ray Serve) and the one-process server (`samo-serve run --single-process`: the same
app and pipeline, no Ray), both up, L1 off (every request a new GoEmotions text, so every one is
classified), wrk at c=32, rounds alternating between the servers. Prints each round, the median rps
per server and its ratio to raw.

The Python ceiling (also up, in the same rounds; ``--no-ceiling`` leaves it out): the one-process
server with L1 on, loaded with 256 texts it has already answered, so every request is an L1 hit: the
same HTTP, guard, validation, log row and metrics per request, no model. What a request costs the
service without the model bounds what any model speed can be served at on these cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, alternate, bench_texts, generator, save_report, write_bodies  # noqa: E402

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.modeling.model_bench import CAPACITY_BATCHES, capacity_batches, full_pass_rate  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.settings import RunnerSettings, default_model_dir  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

CEILING = "one process, L1 hits"


def raw_capacity(texts: list[str], threads: int, passes: int = 2) -> dict[str, float]:
    """texts/s per capacity batch size (best of ``passes`` full passes) and the capacity (the best size)."""
    model_dir = default_model_dir()
    card = load_card(model_dir)
    tokenizer = TextTokenizer.for_card(card, model_dir)
    settings = RunnerSettings(
        device="cpu", policy="batched", sessions=1, intra_op_threads=threads, length_bucketing=False, max_sub_batch=64
    )
    runner = OrtModelRunner.for_card(card, model_dir, settings)
    rates: dict[str, float] = {}
    for bs in CAPACITY_BATCHES:
        batches = capacity_batches(tokenizer, texts, bs)
        full_pass_rate(runner, batches[:8])  # warm-up
        rates[f"batch{bs}"] = round(max(full_pass_rate(runner, batches) for _ in range(passes)), 1)
    rates["capacity"] = max(rates.values())
    # Not part of the capacity: the batches a server at c=32 actually gets (the ~16 texts in flight, in
    # arrival order, length-bucketed by the runner as served): how much of the gap is batch shape alone.
    served = OrtModelRunner.for_card(card, model_dir, settings.model_copy(update={"length_bucketing": True}))
    arrival = [tokenizer.encode_batch(texts[i : i + 16]) for i in range(0, len(texts), 16)]
    rates["arrival16_bucketed"] = round(max(full_pass_rate(served, arrival) for _ in range(passes)), 1)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round per server")
    parser.add_argument("--texts", type=int, default=2048, help="texts per raw full pass")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (the servers' default)")
    parser.add_argument("--no-plain", action="store_true", help="serve only `samo-serve run` (Ray)")
    parser.add_argument("--no-ceiling", action="store_true", help="leave out the L1-hit one-process server")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "serve_vs_raw.json")
    args = parser.parse_args()

    texts = bench_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-"))
    bodies = write_bodies(tmp / "single.jsonl", texts)
    print(f"raw capacity before ({args.texts} texts, {args.threads} threads)...", flush=True)
    raw_before = raw_capacity(texts[: args.texts], args.threads)
    print(f"  {raw_before}", flush=True)

    env = {"SAMO_CACHE__L1_ENABLED": "false"}
    servers = {"samo-serve (Ray)": samo_serve_command(free_port(), free_port())}
    if not args.no_plain:
        servers["one process"] = samo_serve_command(free_port(), free_port(), "--single-process")
    own_bodies = dict.fromkeys(servers, bodies)
    envs = dict.fromkeys(servers, env)
    if not args.no_ceiling:
        servers[CEILING] = samo_serve_command(free_port(), free_port(), "--single-process")
        own_bodies[CEILING] = write_bodies(tmp / "repeated.jsonl", texts[:256])
        envs[CEILING] = {}  # L1 on: after the warm-up every request is a hit
    procs: dict[str, Proc] = {}
    try:
        for name, cmd in servers.items():
            port = int(cmd[cmd.index("--port") + 1])
            env_i = {**envs[name], "SAMO_DATA_DIR": str(tmp / f"data-{len(procs)}")}
            procs[name] = Proc(cmd, f"http://127.0.0.1:{port}", env_i, tmp / f"server-{len(procs)}.log")
        for proc in procs.values():
            proc.wait_ready()
        urls = {n: p.url for n, p in procs.items()}
        results = alternate(urls, own_bodies, args.rounds, args.duration, 32, warm_up_s=3)  # warm-up fills the L1
    finally:
        for proc in procs.values():
            proc.stop()

    print("raw capacity after...", flush=True)
    raw_after = raw_capacity(texts[: args.texts], args.threads)
    print(f"  {raw_after}", flush=True)
    raw = (raw_before["capacity"] + raw_after["capacity"]) / 2
    ratios: dict[str, object] = {
        "raw capacity texts/s (before, after)": [raw_before["capacity"], raw_after["capacity"]]
    }
    for name, rows in results.items():
        median = statistics.median(r.rps for r in rows)
        ratios[f"{name} c=32 median rps"] = round(median, 1)
        ratios[f"{name} / raw (>= 0.8)"] = round(median / raw, 3)
        ratios[f"{name} errors"] = sum(r.errors for r in rows)
    report: dict[str, object] = {
        "cpus": os.cpu_count(),
        "closed_loop_generator": generator(),
        "raw_before": raw_before,
        "raw_after": raw_after,
        "rounds": {name: [r.row() for r in rows] for name, rows in results.items()},
        "ratios": ratios,
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
