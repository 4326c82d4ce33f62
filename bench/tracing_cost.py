"""What tracing costs uncached throughput: tracing off (A) against on (B) at 1 % and at 100 % sampling.

    python bench/tracing_cost.py [--rounds 4] [--duration 8] [--single-process]

For each sampling ratio, ``bench/ab_versions.py`` serves this checkout twice at once (``samo-serve run``,
or ``--single-process``), A with the shipped settings (tracing off) and B with ``SAMO_TRACING__ENABLED``,
``SAMO_TRACING__SAMPLE_RATIO`` and ``SAMO_TRACING__OTLP_ENDPOINT`` pointing at a real OTLP/HTTP receiver
started here (testkit.otlp_receiver, decoding every export), and alternates closed-loop rounds between
them: a new text per request, L1 off. Prints B/A of requests/s per ratio, the spans the receiver got,
and whether the issue's targets hold (1 %: >= 0.97, 100 %: >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # testkit/

from testkit.otlp_receiver import OtlpReceiver  # noqa: E402

TARGETS = {"0.01": 0.97, "1.0": 0.85}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--single-process", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE.parent / "runs" / "tracing_cost.json")
    args = parser.parse_args()
    out: dict[str, object] = {}
    with OtlpReceiver() as receiver:
        for ratio in TARGETS:
            before = len(receiver.spans)
            report = Path(tempfile.mkdtemp(prefix="samo-trace-ab-")) / "ab.json"
            env = {"ENABLED": "true", "SAMPLE_RATIO": ratio, "OTLP_ENDPOINT": receiver.url}
            cmd = [sys.executable, str(HERE / "ab_versions.py"), "--rounds", str(args.rounds)]
            cmd += ["--duration", str(args.duration), "--concurrency", str(args.concurrency), "--out", str(report)]
            cmd += [f"--b-env=SAMO_TRACING__{k}={v}" for k, v in env.items()]
            cmd += ["--single-process"] if args.single_process else []
            subprocess.run(cmd, check=True)
            ratios = json.loads(report.read_text())["ratios"]
            roots = sum(1 for s in receiver.spans[before:] if s.name.startswith("POST "))
            out[f"sample_ratio {ratio}"] = {
                **ratios,
                "spans received": len(receiver.spans) - before,
                "requests traced": roots,
                "target B/A": TARGETS[ratio],
                "met": ratios["B/A median"] is not None and ratios["B/A median"] >= TARGETS[ratio],
            }
            print(json.dumps({ratio: out[f"sample_ratio {ratio}"]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
