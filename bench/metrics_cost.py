"""What the metrics cost: uncached throughput with metrics on vs off, in one run.

    python bench/metrics_cost.py [--duration 12] [--out runs/metrics_cost.json]

``samo-serve run`` is started four times, off, on, on, off (``SAMO_OBSERVABILITY__METRICS_ENABLED``),
and measured with wrk at c=32, every request a new GoEmotions text (uncached). /stats windows are kept
in both (they are how the service answers /stats); "off" drops the Prometheus metrics. Target: on / off
>= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from cache_and_log import show, start_server  # noqa: E402
from loadgen import Result, goemotions_texts, run_wrk, write_bodies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "metrics_cost.json")
    args = parser.parse_args()
    texts = goemotions_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-metrics-"))
    bodies = write_bodies(tmp / "single.jsonl", texts)
    results: dict[str, list[Result]] = {"off": [], "on": []}
    offset = 0
    for i, variant in enumerate(("off", "on", "on", "off")):
        print(f"samo-serve with metrics {variant.upper()} (round {i + 1}/4)...", flush=True)
        env = {"SAMO_OBSERVABILITY__METRICS_ENABLED": str(variant == "on").lower(), "SAMO_DATA_DIR": str(tmp)}
        srv = start_server(env, tmp / f"samo-{i}.log")
        try:
            run_wrk(srv.url, bodies, 8, 3, "warm-up", offset=offset)
            offset += 5000
            r = run_wrk(srv.url, bodies, 32, args.duration, f"metrics {variant}", offset=offset)
            offset += r.requests + 1000
            results[variant].append(r)
            show(r)
        finally:
            srv.stop()
    mean = {k: sum(r.rps for r in v) / len(v) for k, v in results.items()}
    ratio = round(mean["on"] / mean["off"], 3)
    print(f"\nM1 uncached rps c=32, metrics on / off (>= 0.95): {ratio}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"cpus": os.cpu_count(), "runs": {k: [r.row() for r in v] for k, v in results.items()}, "ratio": ratio}
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
