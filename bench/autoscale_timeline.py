"""Autoscaling, shown: EmotionModel replicas over time while load comes and goes (a measurement, not a test).

    python bench/autoscale_timeline.py [--load-s 40] [--idle-s 60] [--target 1] [--in-flight 2]

Starts ``samo-serve run`` with configs/serve.yaml plus short autoscaling delays for EmotionModel
(samo_serve.ops.serve_config.FAST_AUTOSCALING: ``--target`` ongoing micro-batches per replica, metrics every
1 s over 5 s), sends ``--load-s`` seconds of load at ``--concurrency``, then waits ``--idle-s`` seconds,
and prints once a second the replica states per deployment that /stats reads from Serve's status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc  # noqa: E402

from samo_serve.loadtest.corpus import builtin_corpus  # noqa: E402
from samo_serve.ops.launcher import DEFAULT_CONFIG  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.ops.serve_config import (  # noqa: E402
    FAST_AUTOSCALING,
    load_serve_config,
    override_deployment,
    write_serve_config,
)
from testkit.replica_watch import replica_timeline  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402


def config_with_fast_autoscaling(path: Path, target: float, in_flight: int) -> Path:
    config = load_serve_config(DEFAULT_CONFIG)
    config = override_deployment(
        config, "EmotionModel", autoscaling_config={**FAST_AUTOSCALING, "target_ongoing_requests": target}
    )
    config = override_deployment(config, "Ingress", user_config={"batching": {"ingress_max_in_flight": in_flight}})
    write_serve_config(config, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load-s", type=float, default=40.0)
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--target", type=float, default=FAST_AUTOSCALING["target_ongoing_requests"])
    parser.add_argument("--in-flight", type=int, default=2, help="Ingress micro-batches in flight to the model")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="samo-autoscale-"))
    config = config_with_fast_autoscaling(tmp / "serve.yaml", args.target, args.in_flight)
    port = free_port()
    cmd = samo_serve_command(port, free_port(), "--config", str(config))
    srv = Proc(cmd, f"http://127.0.0.1:{port}", {"SAMO_DATA_DIR": str(tmp / "data")}, tmp / "samo.log")
    try:
        srv.wait_ready()
        print(f"load at c={args.concurrency} for {args.load_s:.0f} s, then idle for {args.idle_s:.0f} s", flush=True)
        timeline = asyncio.run(
            replica_timeline(
                srv.url, builtin_corpus(), args.load_s, args.idle_s, args.concurrency,
                on_sample=lambda s: print(f"  t={s.t:6.1f}s  {'load' if s.loaded else 'idle'}  {s.states}", flush=True),
            )
        )  # fmt: skip
    finally:
        srv.stop()
    counts = timeline.running("EmotionModel")
    print(f"\n{timeline.render('EmotionModel')}")
    print(
        f"EmotionModel replicas: start {counts[0] if counts else '?'}, peak under load "
        f"{timeline.peak_under_load('EmotionModel')}, after the load {timeline.settled_after_load('EmotionModel')}; "
        f"responses {dict(timeline.statuses)}"
    )


if __name__ == "__main__":
    main()
