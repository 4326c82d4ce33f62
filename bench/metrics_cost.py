"""What the metrics cost: uncached throughput with metrics on vs off, in one run.

    python bench/metrics_cost.py [--duration 8] [--rounds 6] [--out runs/metrics_cost.json]

Two ``samo-serve run`` servers run side by side, one with ``SAMO_OBSERVABILITY__METRICS_ENABLED=false``,
and are measured alternately (off, on, off, on, ...; an idle server costs next to nothing), with wrk at
c=32 and a new GoEmotions text per request (uncached). Alternating short rounds while both are up keeps a
noisy shared machine's drift out of the ratio. /stats windows are kept in both (they are how the service
answers /stats); "off" drops the Prometheus metrics. Target: on / off >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from cache_and_log import show, start_server  # noqa: E402
from loadgen import Result, bench_texts, closed_loop, generator, save_report, write_bodies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per variant")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "metrics_cost.json")
    args = parser.parse_args()
    texts = bench_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-metrics-"))
    bodies = write_bodies(tmp / "single.jsonl", texts)
    results: dict[str, list[Result]] = {"off": [], "on": []}
    servers = {}
    for variant in ("off", "on"):
        print(f"starting samo-serve with metrics {variant.upper()} ...", flush=True)
        env = {"SAMO_OBSERVABILITY__METRICS_ENABLED": str(variant == "on").lower(), "SAMO_DATA_DIR": str(tmp)}
        servers[variant] = start_server(env, tmp / f"samo-{variant}.log")
    offset = 0
    try:
        for srv in servers.values():
            closed_loop(srv.url, bodies, 8, 3, "warm-up", offset=offset)
            offset += 5000
        for round_ in range(args.rounds):
            for variant in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                r = closed_loop(servers[variant].url, bodies, 32, args.duration, f"metrics {variant}", offset=offset)
                offset += r.requests + 1000
                results[variant].append(r)
                show(r)
    finally:
        for srv in servers.values():
            srv.stop()
    mean = {k: sum(r.rps for r in v) / len(v) for k, v in results.items()}
    ratio = round(mean["on"] / mean["off"], 3)
    report = {
        "cpus": os.cpu_count(),
        "closed_loop_generator": generator(),
        "runs": {k: [r.row() for r in v] for k, v in results.items()},
        "ratios": {"M1 uncached rps c=32, metrics on / off (>= 0.95)": ratio},
    }
    save_report(report, args.out)


if __name__ == "__main__":
    main()
