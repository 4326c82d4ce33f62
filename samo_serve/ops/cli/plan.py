"""``samo-serve plan``: replicas and GPUs for a target load, from a load test's measured per-replica capacity."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samo_serve.ops.cli.common import DEFAULT_URL, add_api_key, config_path, get, read_serve_config
from samo_serve.ops.cli.errors import CliError, user_file
from samo_serve.settings import PLAN_HEADROOM

if TYPE_CHECKING:
    from samo_serve.ops.cli.common import Subparsers
    from samo_serve.ops.planner import Plan

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    pl = sub.add_parser("plan", help="replicas and GPUs for a target load, from measured per-replica capacity")
    pl.add_argument("--target-rps", type=float, required=True, help="the peak load to plan for, requests/s")
    pl.add_argument("--p95-ms", type=float, required=True, help="the p95 latency to hold at that load")
    pl.add_argument("--from", dest="results", default=None, help="a load test's results.json (default: measure)")
    pl.add_argument("--url", default=DEFAULT_URL, help="what to measure when there is no --from")
    pl.add_argument("--requests", type=int, default=300, help="requests per stress level when measuring")
    pl.add_argument("--measure-out", default=None, help="keep the measurement (report + results.json) here")
    add_api_key(pl)
    pl.add_argument(
        "--config", default=None, help="the Serve config the plan resizes (default: the shipped serve.yaml)"
    )
    pl.add_argument("--headroom", type=float, default=PLAN_HEADROOM, help="planned utilization of measured capacity")
    pl.add_argument(
        "--measured-cpus", type=float, default=None,
        help="CPUs the measured service ran on (default: results.json's host_cpus, set for a local service)",
    )  # fmt: skip
    pl.add_argument("--cpus", type=float, default=None, help="CPUs available to the plan (default: unbounded)")
    pl.add_argument("--fixed", action="store_true", help="fixed num_replicas instead of autoscaling up to them")
    pl.add_argument("--out", default=None, help="write the resized Serve config here")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)


def _results(args: argparse.Namespace) -> dict[str, Any]:
    """The load test to plan from: ``--from``'s results.json, or a stress ramp against ``--url`` now."""
    if args.results:
        path = Path(args.results)
        remedy = "pass --from with the results.json that samo-serve loadtest --out DIR wrote"
        with user_file(path, "load-test results", remedy):
            results = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(results, dict) or not isinstance(results.get("levels"), list):
            raise CliError(f"{path} is not a load test's results.json (it has no levels)", remedy)
        return results
    from samo_serve.loadtest.runner import run_loadtest

    get(args.url, "/healthz")
    print(f"no --from: measuring {args.url} with a stress ramp (p95 target {args.p95_ms:g} ms)", file=sys.stderr)
    measured: dict[str, Any] = run_loadtest(
        args.url, [1], requests=args.requests, api_key=args.api_key, stress=True, p95_target_ms=args.p95_ms,
        out=Path(args.measure_out) if args.measure_out else None,
    )  # fmt: skip
    return measured


def _summary(plan: Plan, cpus: float | None) -> str:
    m = plan.measured_at
    bound = "" if plan.saturated else " (a lower bound: no measured level broke the target)"
    return (
        f"measured: {m['throughput_rps']} rps at p95 {m['p95_ms']} ms with {m['replicas']} "
        f"-> {plan.per_replica_rps:.1f} rps per model replica{bound}\n"
        f"plan for {plan.target_rps:g} rps at p95 <= {plan.p95_ms:g} ms, {plan.headroom:.0%} utilization: "
        f"{plan.model_replicas} EmotionModel, {plan.ingress_replicas} Ingress replica(s), {plan.gpus:g} GPU(s)"
        + (f", {plan.cpus:g} CPUs ({plan.cpus_per_replica:g} per model replica as measured)" if plan.cpus else "")
        + f"; predicted capacity {plan.predicted_rps:.0f} rps"
        + (
            f"\n[!] {cpus:g} CPUs fit only {plan.model_replicas} replica(s)"
            if plan.cpu_limited and cpus is not None
            else ""
        )
        + ("" if plan.meets_target else f"\n[!] the target {plan.target_rps:g} rps is NOT met by this plan")
        + "\n"
    )


def _plan(args: argparse.Namespace) -> int:
    import yaml

    from samo_serve.ops.planner import PlanError, apply_plan, gpus_per_replica, make_plan
    from samo_serve.ops.serve_config import DEFAULT_CONFIG, deployment, write_serve_config

    config = read_serve_config(config_path(args.config, DEFAULT_CONFIG))  # before measuring: fail fast
    results = _results(args)
    try:
        plan = make_plan(
            results, args.target_rps, args.p95_ms, args.headroom, gpus_per_replica(config),
            measured_cpus=args.measured_cpus, available_cpus=args.cpus,
        )  # fmt: skip
    except PlanError as exc:
        raise CliError(str(exc)) from exc
    planned = apply_plan(config, plan, fixed=args.fixed)
    if args.json:
        print(json.dumps(plan.as_dict(), indent=2))
    else:
        print(_summary(plan, args.cpus))
        blocks = [deployment(planned, name) for name in ("Ingress", "EmotionModel")]
        print("# paste into the deployments: section of your Serve config")
        print(yaml.safe_dump(blocks, sort_keys=False), end="")
    if args.out:
        out = Path(args.out)
        header = f"samo-serve plan --target-rps {args.target_rps:g} --p95-ms {args.p95_ms:g}: {plan.as_dict()}"
        with user_file(out, "output file", "pass --out with a path in a folder you can write"):
            write_serve_config(planned, out, header=header)
        print(f"written {args.out} (samo-serve run --config {args.out})", file=sys.stderr)
    return 0
