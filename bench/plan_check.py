"""Is ``samo-serve plan`` right? Measure one size, plan a target from it, serve the plan, measure that.

    python bench/plan_check.py --target-rps 60 --p95-ms 500 [--duration 8] [--out runs/plan-check]

1. ``samo-serve run`` with EmotionModel fixed at ``--measure-replicas`` (default 1) replica(s); a closed-loop
   sweep (``--levels``) with the load tester: per-replica capacity at p95 <= target.
2. ``samo_serve.ops.planner.make_plan`` for ``--target-rps``: the planned EmotionModel/Ingress sizes and
   the predicted capacity (replicas x per-replica capacity).
3. ``samo-serve run`` with the planned sizes (fixed), the same sweep: the measured capacity there.
4. Open loop at ``--target-rps`` (Poisson arrivals) on the planned size: is the target served, at p95 <= target?
5. Prints predicted vs measured capacity (rps at p95 <= target) and their ratio; the plan is right
   when they agree within 20 %, and when the open-loop run serves the target within the p95.
   Every text is unique, so the model (not a cache) answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc  # noqa: E402

from samo_serve.loadtest.runner import run_loadtest  # noqa: E402
from samo_serve.ops.launcher import DEFAULT_CONFIG  # noqa: E402
from samo_serve.ops.planner import apply_plan, best_level, make_plan  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.ops.serve_config import load_serve_config, override_deployment, write_serve_config  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402


def measure(
    config: dict[str, Any], label: str, tmp: Path, args: argparse.Namespace, rate: float | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The closed-loop sweep on ``config``; then, with ``rate``, an open-loop run at that arrival rate.

    Every text is the built-in sample's, tagged and numbered (``unique``): none is a cache hit.
    """
    path = write_serve_config(config, tmp / f"{label}.yaml")
    port = free_port()
    cmd = samo_serve_command(port, free_port(), "--config", str(path))
    srv = Proc(cmd, f"http://127.0.0.1:{port}", {"SAMO_DATA_DIR": str(tmp / label)}, tmp / f"{label}.log")
    try:
        srv.wait_ready()
        out = Path(args.out) / label if args.out else None
        levels = [int(c) for c in args.levels.split(",")]
        print(f"\n== {label}: sweep c={levels}, {args.duration:g} s each", flush=True)
        sweep = run_loadtest(srv.url, levels, duration_s=args.duration, unique=True, p95_target_ms=args.p95_ms,
                             out=out)  # fmt: skip
        if rate is None:
            return sweep, None
        print(f"\n== {label}: open loop at the target, {rate:g} req/s for {args.open_s:g} s", flush=True)
        held = run_loadtest(srv.url, [256], rate=[rate], duration_s=args.open_s, unique=True,
                            p95_target_ms=args.p95_ms, out=out / "open" if out else None)  # fmt: skip
        return sweep, held["levels"][0]
    finally:
        srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-rps", type=float, required=True)
    parser.add_argument("--p95-ms", type=float, default=500.0)
    parser.add_argument("--headroom", type=float, default=0.8)
    parser.add_argument("--measure-replicas", type=int, default=1)
    parser.add_argument("--cpus", type=float, default=None, help="CPUs the plan may use (default: this machine's)")
    parser.add_argument("--levels", default="4,8,16,24,32")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per sweep level")
    parser.add_argument("--open-s", type=float, default=30.0, help="seconds of open-loop load at the target")
    parser.add_argument("--out", default=None, help="keep both load-test reports here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="samo-plan-check-"))
    base = load_serve_config(DEFAULT_CONFIG)

    measured, _ = measure(override_deployment(base, "EmotionModel", num_replicas=args.measure_replicas),
                          "measured", tmp, args)  # fmt: skip
    # The plan is for this machine: the CPUs the measurement ran on are all the plan has.
    cpus = os.cpu_count() if args.cpus is None else args.cpus
    plan = make_plan(measured, args.target_rps, args.p95_ms, args.headroom, available_cpus=cpus)
    print(f"\nplan: {json.dumps(plan.as_dict())}", flush=True)
    verified, held = measure(apply_plan(base, plan, fixed=True), "planned", tmp, args, args.target_rps)
    assert held is not None
    best = best_level(verified, args.p95_ms)
    got = best["throughput_rps"] if best else 0.0
    ratio = got / plan.predicted_rps if plan.predicted_rps else 0.0
    print(
        f"\nmeasured at {plan.measured_at['replicas']}: {plan.per_replica_rps:.1f} rps per model replica "
        f"(p95 <= {args.p95_ms:g} ms)\n"
        f"plan for {args.target_rps:g} rps on {cpus:g} CPUs: {plan.model_replicas} EmotionModel, "
        f"{plan.ingress_replicas} Ingress{' (CPU-limited)' if plan.cpu_limited else ''}; "
        f"predicted capacity {plan.predicted_rps:.1f} rps\n"
        f"verification at the planned size: {got:.1f} rps at p95 <= {args.p95_ms:g} ms; "
        f"measured / predicted = {ratio:.2f} ({'within' if abs(ratio - 1) <= 0.2 else 'OUTSIDE'} 20 %); "
        f"target {args.target_rps:g} rps {'held' if got >= args.target_rps else 'NOT held'}\n"
        f"open loop at the target {args.target_rps:g} req/s: {held['throughput_rps']} rps served "
        f"({held['throughput_rps'] / args.target_rps:.2f} of the target), p95 {held['latency_ms']['p95']} ms "
        f"({'within' if held['latency_ms']['p95'] <= args.p95_ms else 'OVER'} {args.p95_ms:g}), "
        f"success {held['success_rate']:.1%}"
    )


if __name__ == "__main__":
    main()
