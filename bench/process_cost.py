"""What each process of a running samo-serve costs: CPU (% of one core) and memory, idle and under load.

    python bench/process_cost.py [--idle 30] [--load 20] [--single-process]

Starts `samo-serve run` (or `--single-process`), lets it settle, then samples every process it started
(from /proc: user + system CPU time, RSS) over ``--idle`` seconds with no traffic, and again over
``--load`` seconds of wrk at c=32 with a new GoEmotions text per request (L1 off). Prints one row per
process (Ray's process titles: ``ray::ServeController``, ``ray::ServeReplica:...``, raylet, gcs_server,
the dashboard agent, ...) and the totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, bench_texts, closed_loop, save_report, write_bodies  # noqa: E402

from samo_serve.ops.ports import free_port  # noqa: E402
from testkit.server_process import descendants, samo_serve_command  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    if cmd.startswith("ray::"):
        return cmd.split()[0]
    for known in ("raylet", "gcs_server", "dashboard/agent.py", "runtime_env/agent", "log_monitor", "monitor.py"):
        if known in cmd:
            return known.split("/")[0] if known.startswith("dashboard") else known
    if "samo_serve.ops.cli" in cmd:
        return "samo-serve run (driver)"
    script = next((Path(arg).name for arg in cmd.split() if arg.endswith(".py")), None)
    return script or Path(cmd.split()[0]).name


def snapshot(root: int) -> dict[int, tuple[str, float, int]]:
    """pid -> (name, CPU seconds so far, RSS KiB) for ``root`` and everything below it."""
    out = {}
    for pid in {root, *descendants(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        rss = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
        out[pid] = (_name(pid), cpu, rss)
    return out


def cost(root: int, seconds: float) -> dict[str, dict[str, float]]:
    """% of one core and RSS MB per process name over ``seconds``."""
    before = snapshot(root)
    started = time.monotonic()
    time.sleep(seconds)
    after = snapshot(root)
    elapsed = time.monotonic() - started
    rows: dict[str, dict[str, float]] = defaultdict(lambda: {"cpu_pct": 0.0, "rss_mb": 0.0, "processes": 0})
    for pid, (name, cpu, rss) in after.items():
        row = rows[name]
        row["cpu_pct"] += 100 * (cpu - before.get(pid, (name, 0.0, 0))[1]) / elapsed
        row["rss_mb"] += rss / 1024
        row["processes"] += 1
    return {
        k: {m: round(v, 1) for m, v in row.items()} for k, row in sorted(rows.items(), key=lambda kv: -kv[1]["cpu_pct"])
    }


def show(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    for name, row in rows.items():
        print(f"  {name:<44} {row['cpu_pct']:6.1f} % of a core  {row['rss_mb']:8.1f} MB  ({row['processes']:.0f})")
    total_cpu = sum(r["cpu_pct"] for r in rows.values())
    total_rss = sum(r["rss_mb"] for r in rows.values())
    print(f"  {'total':<44} {total_cpu:6.1f} % of a core  {total_rss:8.1f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds sampled with no traffic")
    parser.add_argument("--load", type=float, default=20.0, help="seconds sampled under c=32 (0: skip)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after /readyz before sampling")
    parser.add_argument("--single-process", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE.parent / "runs" / "process_cost.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="samo-cost-"))
    bodies = write_bodies(tmp / "single.jsonl", bench_texts())
    port = free_port()
    cmd = samo_serve_command(port, free_port(), *(["--single-process"] if args.single_process else []))
    env = {"SAMO_CACHE__L1_ENABLED": "false", "SAMO_DATA_DIR": str(tmp / "data")}
    srv = Proc(cmd, f"http://127.0.0.1:{port}", env, tmp / "server.log")
    report: dict[str, object] = {"single_process": args.single_process}
    try:
        srv.wait_ready()
        closed_loop(srv.url, bodies, 32, 3, "warm-up")
        time.sleep(args.settle)
        report["idle"] = idle = cost(srv.proc.pid, args.idle)
        show(f"idle, {args.idle:.0f} s", idle)
        if args.load > 0:
            result: dict[str, object] = {}
            load = threading.Thread(
                target=lambda: result.update(r=closed_loop(srv.url, bodies, 32, args.load + 4, "c=32", offset=5000))
            )
            load.start()
            time.sleep(2)  # sample inside the load, not its ramp
            report["load"] = busy = cost(srv.proc.pid, args.load)
            load.join()
            rps = result["r"].rps  # type: ignore[attr-defined]
            report["load_rps"] = rps
            show(f"c=32, {args.load:.0f} s ({rps:.0f} rps)", busy)
    finally:
        srv.stop()
    save_report(report, args.out)


if __name__ == "__main__":
    main()
