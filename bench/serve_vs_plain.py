"""What the Ray Serve split costs: raw ORT vs one uvicorn process vs samo-serve, same model and texts.

    python bench/serve_vs_plain.py [--duration 8] [--out runs/serve_vs_plain.json]

Closed loops with wrk (apt-get install -y wrk; without it, the load tester's engine, said so); the 80%
run is an open loop from the load tester's engine. Texts: GoEmotions in ../shared/data/goemotions (else
the built-in sample, numbered). Every request carries a different text and the L1 cache is off in both
servers (SAMO_CACHE__L1_ENABLED=false), so every request is classified. Prints rps and p50/p95/p99 per
concurrency and the ratios P1-P3.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, Result, bench_texts, closed_loop, engine_level, generator, save_report, write_bodies  # noqa: E402

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.core.tokenizer import TextTokenizer  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.settings import RunnerSettings, default_model_dir  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

CONCURRENCY = (1, 8, 32, 64)


def raw_ort(texts: list[str], threads: int) -> dict[str, float]:
    """Tokenize + ORT in this process: batch-1 latency and batch-64 throughput (texts/s)."""
    model_dir = default_model_dir()
    card = load_card(model_dir)
    tok = TextTokenizer.for_card(card, model_dir)
    runner = OrtModelRunner.for_card(
        card, model_dir, RunnerSettings(device="cpu", policy="batched", sessions=1, intra_op_threads=threads)
    )
    for t in texts[:50]:
        runner.predict(tok.encode_batch([t]))
    singles = []
    for t in texts[:400]:
        started = time.perf_counter()
        runner.predict(tok.encode_batch([t]))
        singles.append(time.perf_counter() - started)
    batch_texts = texts[: 64 * 60]
    started = time.perf_counter()
    for i in range(0, len(batch_texts), 64):
        runner.predict(tok.encode_batch(batch_texts[i : i + 64]))
    elapsed = time.perf_counter() - started
    return {
        "batch1_p50_ms": round(float(np.median(singles)) * 1000, 3),
        "batch1_texts_per_s": round(len(singles) / sum(singles), 1),
        "batch64_texts_per_s": round(len(batch_texts) / elapsed, 1),
    }


def ray_rss_mb() -> float:
    """Total RSS of every Ray / samo-serve process on the machine (the whole running app)."""
    total_kb = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        markers = ("ray::", "raylet", "gcs_server", "samo_serve.ops.cli", "ray/_private", "ray/dashboard")
        if any(k in cmd for k in markers):
            total_kb += next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    return round(total_kb / 1024, 1)


def sweep(url: str, bodies: Path, label: str, duration: float, offset: int) -> tuple[list[Result], int]:
    closed_loop(url, bodies, 8, 3, "warmup", offset=offset)  # warm caches, JIT-free paths, connections
    offset += 10_000
    results = []
    for c in CONCURRENCY:
        r = closed_loop(url, bodies, c, duration if c > 1 else max(4.0, duration / 2), label, offset=offset)
        offset += r.requests
        results.append(r)
        print(
            f"  {label:<12} c={c:<3} {r.rps:>8.1f} rps  p50 {r.p50_ms:7.1f}  p95 {r.p95_ms:7.1f}  "
            f"p99 {r.p99_ms:7.1f} ms  errors {r.errors}",
            flush=True,
        )
    return results, offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per concurrency level")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads in the plain server")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "serve_vs_plain.json")
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()

    texts = bench_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-"))
    singles = write_bodies(tmp / "single.jsonl", texts)
    batches = write_bodies(tmp / "batch64.jsonl", texts, per_request=64)
    env = {"SAMO_CACHE__L1_ENABLED": "false"}

    print(f"raw ORT in-process ({len(texts)} unique texts)...", flush=True)
    raw = raw_ort(texts, threads=0)
    print(f"  {raw}", flush=True)

    report: dict[str, object] = {"raw_ort": raw, "cpus": os.cpu_count(), "closed_loop_generator": generator()}
    offset = 0
    plain: list[Result] = []
    if not args.skip_plain:
        print("samo-serve run --single-process (one process, no Ray)...", flush=True)
        port = free_port()
        cmd = samo_serve_command(port, free_port(), "--single-process")
        plain_env = {**env, "SAMO_RUNNER__INTRA_OP_THREADS": str(args.threads), "SAMO_DATA_DIR": str(tmp / "plain")}
        srv = Proc(cmd, f"http://127.0.0.1:{port}", plain_env, tmp / "plain.log")
        try:
            srv.wait_ready()
            plain, offset = sweep(srv.url, singles, "plain", args.duration, offset)
        finally:
            srv.stop()
        report["plain"] = [r.row() for r in plain]

    print("samo-serve run (Ray Serve)...", flush=True)
    port = free_port()
    srv = Proc(samo_serve_command(port, free_port()), f"http://127.0.0.1:{port}", env, tmp / "samo.log")
    try:
        srv.wait_ready()
        samo, offset = sweep(srv.url, singles, "samo-serve", args.duration, offset)
        batch = closed_loop(
            srv.url,
            batches,
            4,
            args.duration,
            "samo batch64",
            path="/predict/batch",
            offset=offset // 64,
            texts_per_request=64,
        )
        print(
            f"  /predict/batch x64 c=4: {batch.texts_per_s:.0f} texts/s  p95 {batch.p95_ms:.1f} ms  "
            f"errors {batch.errors}",
            flush=True,
        )
        # The 80% run uses a Python client that shares the 2 cores with the server; its peak is measured
        # with the same client (closed loop, c=32) so that "80% of peak" means 80% of what it can drive.
        peak_run = engine_level(
            srv.url, texts, "samo peak (python client)", concurrency=32, duration_s=args.duration, offset=offset + 2000
        )
        peak = peak_run.rps
        print(f"  peak with the open-loop client's own closed loop, c=32: {peak:.0f} rps", flush=True)
        at80 = engine_level(
            srv.url, texts, "samo 80% open-loop", rate=0.8 * peak, duration_s=max(10.0, args.duration),
            offset=offset + 20000,
        )  # fmt: skip
        print(
            f"  open loop at {0.8 * peak:.0f} rps: p50 {at80.p50_ms:.1f}  p95 {at80.p95_ms:.1f}  "
            f"p99 {at80.p99_ms:.1f} ms  errors {at80.errors}",
            flush=True,
        )
        rss = ray_rss_mb()
    finally:
        srv.stop()
    report.update(
        samo=[r.row() for r in samo],
        batch64=batch.row(),
        python_client_peak=peak_run.row(),
        open_loop_80=at80.row(),
        samo_rss_mb=rss,
    )

    c32 = {r.label: r for r in plain + samo if r.concurrency == 32}
    c1 = next(r for r in samo if r.concurrency == 1)
    ratios = {
        "P1 rps c=32 samo/plain (>= 0.6)": round(c32["samo-serve"].rps / c32["plain"].rps, 3) if plain else None,
        "P2 batch64 texts/s samo/raw (>= 0.8)": round(batch.texts_per_s / raw["batch64_texts_per_s"], 3),
        "P3 c=1 p50 - raw batch-1 (<= 5 ms)": round(c1.p50_ms - raw["batch1_p50_ms"], 2),
        "80% load p50/p95/p99 ms (< 100/500/1000), errors": [
            round(at80.p50_ms, 1),
            round(at80.p95_ms, 1),
            round(at80.p99_ms, 1),
            at80.errors,
        ],
        "samo-serve total RSS MB": rss,
    }
    report["ratios"] = ratios
    save_report(report, args.out)


if __name__ == "__main__":
    main()
