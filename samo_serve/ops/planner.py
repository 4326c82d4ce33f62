"""``samo-serve plan``: replicas and GPUs for a target load, from a load test's measured capacity.

The load tester's results.json has, per level, throughput, p95, success rate and the replicas that
served it. The capacity of one model replica is the most throughput any level reached with p95 within
the target and ≥ 99 % success, divided by the model replicas running then. The plan is that capacity
scaled linearly, with headroom, which holds where each replica brings the CPUs (or GPU share) it had
when measured; given the CPUs available, the plan stops at the replicas they fit, because more replicas
on the same cores only contend (docs/OPERATIONS.md, "Capacity planning").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from samo_serve.loadtest.summary import SUCCESS_TARGET
from samo_serve.ops.serve_config import deployment, override_deployment
from samo_serve.settings import INGRESS_TARGET_ONGOING_REQUESTS, PLAN_HEADROOM

__all__ = ["INGRESS", "MODEL", "Plan", "PlanError", "apply_plan", "best_level", "gpus_per_replica", "make_plan"]

MODEL = "EmotionModel"
INGRESS = "Ingress"


class PlanError(ValueError):
    """The measurements cannot support a plan (say why, and what would)."""


@dataclass(frozen=True, slots=True)
class Plan:
    target_rps: float
    p95_ms: float
    headroom: float
    per_replica_rps: float  # one model replica's measured capacity at p95 <= target
    measured_at: dict[str, Any]  # the level it came from: concurrency, rps, p95, replicas
    saturated: bool  # False: no measured level broke the target, so capacity is a lower bound
    model_replicas: int
    ingress_replicas: int
    gpus: float  # model replicas x num_gpus per replica (0 on CPU)
    predicted_rps: float  # capacity of the planned size at p95 <= target
    cpus_per_replica: float | None = None  # the machine's CPUs per model replica when measured
    cpus: float | None = None  # CPUs the planned size needs at that share
    cpu_limited: bool = False  # the available CPUs fit fewer replicas than the target needs

    @property
    def meets_target(self) -> bool:
        return self.predicted_rps >= self.target_rps

    def autoscaling(self, target_ongoing_requests: float) -> dict[str, Any]:
        """The model's autoscaling block: up to the planned size at peak, one replica when idle."""
        return {
            "min_replicas": 1,
            "initial_replicas": self.model_replicas,
            "max_replicas": self.model_replicas,
            "target_ongoing_requests": target_ongoing_requests,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_rps": self.target_rps,
            "p95_ms": self.p95_ms,
            "headroom": self.headroom,
            "per_replica_rps": round(self.per_replica_rps, 2),
            "measured_at": self.measured_at,
            "saturated": self.saturated,
            "replicas": {INGRESS: self.ingress_replicas, MODEL: self.model_replicas},
            "gpus": self.gpus,
            "cpus": self.cpus,
            "cpu_limited": self.cpu_limited,
            "predicted_rps": round(self.predicted_rps, 2),
            "meets_target": self.meets_target,
        }


def _ok(level: dict[str, Any], p95_ms: float) -> bool:
    p95 = (level.get("latency_ms") or {}).get("p95")
    return p95 is not None and p95 <= p95_ms and level.get("success_rate", 0.0) >= SUCCESS_TARGET


def best_level(results: dict[str, Any], p95_ms: float) -> dict[str, Any] | None:
    """The single-text level with the most throughput at p95 <= ``p95_ms`` and >= 99 % success."""
    good = [lv for lv in results.get("levels", []) if lv.get("batch", 1) == 1 and _ok(lv, p95_ms)]
    return max(good, key=lambda lv: lv["throughput_rps"], default=None)


def make_plan(
    results: dict[str, Any],
    target_rps: float,
    p95_ms: float,
    headroom: float = PLAN_HEADROOM,
    gpus_per_replica: float = 0.0,
    measured_cpus: float | None = None,
    available_cpus: float | None = None,
) -> Plan:
    """The plan for ``target_rps`` at ``p95_ms`` from a load-test run document (results.json).

    ``measured_cpus`` (default: the results' ``host_cpus``, recorded when the service was on the load
    tester's machine) is what the measured deployment ran on: each model replica's capacity came with
    that share of CPUs, Ingress and tokenizing included. ``available_cpus`` caps the plan at the
    replicas that share fits; more replicas on the same CPUs add contention, not capacity.

    Raises:
        PlanError: a bad target, no level within the p95 target, or no replica counts in the results.
    """
    if target_rps <= 0 or p95_ms <= 0:
        raise PlanError("--target-rps and --p95-ms must be positive")
    if not 0 < headroom <= 1:
        raise PlanError(f"headroom must be in (0, 1], got {headroom}")
    levels = [lv for lv in results.get("levels", []) if lv.get("batch", 1) == 1]
    if not levels:
        raise PlanError("the results hold no single-text levels (run the load tester without --batch)")
    best = best_level(results, p95_ms)
    if best is None:
        best_p95 = min((lv["latency_ms"]["p95"] for lv in levels if lv["latency_ms"]["p95"] is not None), default=None)
        raise PlanError(
            f"no measured level had p95 <= {p95_ms:g} ms with >= {SUCCESS_TARGET:.0%} success (lowest p95: "
            f"{best_p95} ms): more replicas do not lower the latency of one request; a GPU or a looser target does"
        )
    replicas = best.get("replicas") or {}
    if not replicas.get(MODEL):
        raise PlanError(
            f"the results do not say how many {MODEL} replicas served them (results.json from an older "
            "samo-serve, or /stats unreachable): re-run `samo-serve loadtest --out DIR`"
        )
    measured_model = int(replicas[MODEL])
    measured_ingress = int(replicas.get(INGRESS, 1))
    per_replica = best["throughput_rps"] / measured_model
    model_replicas = max(1, math.ceil(target_rps / (per_replica * headroom)))
    measured_cpus = measured_cpus if measured_cpus is not None else results.get("host_cpus")
    cpus_per_replica = float(measured_cpus) / measured_model if measured_cpus else None
    cpu_limited = False
    if available_cpus is not None:
        if cpus_per_replica is None:
            raise PlanError("--cpus needs to know what the measurement ran on: pass --measured-cpus")
        fit = max(1, math.floor(available_cpus / cpus_per_replica + 1e-9))
        cpu_limited = model_replicas > fit
        model_replicas = min(model_replicas, fit)
    ingress_replicas = max(1, math.ceil(model_replicas * measured_ingress / measured_model))
    return Plan(
        target_rps=target_rps,
        p95_ms=p95_ms,
        headroom=headroom,
        per_replica_rps=per_replica,
        measured_at={
            "concurrency": best.get("concurrency"),
            "rate": best.get("rate"),
            "throughput_rps": best["throughput_rps"],
            "p95_ms": best["latency_ms"]["p95"],
            "replicas": replicas,
        },
        saturated=not all(_ok(lv, p95_ms) for lv in levels),
        model_replicas=model_replicas,
        ingress_replicas=ingress_replicas,
        gpus=math.ceil(model_replicas * gpus_per_replica * 100) / 100,
        predicted_rps=model_replicas * per_replica,
        cpus_per_replica=round(cpus_per_replica, 2) if cpus_per_replica else None,
        cpus=round(model_replicas * cpus_per_replica, 2) if cpus_per_replica else None,
        cpu_limited=cpu_limited,
    )


def gpus_per_replica(config: dict[str, Any]) -> float:
    return float((deployment(config, MODEL).get("ray_actor_options") or {}).get("num_gpus", 0.0))


def apply_plan(config: dict[str, Any], plan: Plan, fixed: bool = False) -> dict[str, Any]:
    """``config`` with the plan's sizes: autoscaling up to them, or ``fixed`` replica counts.

    Each deployment keeps its own autoscaling fields (targets, delays). An Ingress the config does not
    autoscale is autoscaled too when the plan wants more than one (target ``INGRESS_TARGET_ONGOING_REQUESTS``).
    """
    model = deployment(config, MODEL)
    target = float((model.get("autoscaling_config") or {}).get("target_ongoing_requests", 2))
    if fixed:
        config = override_deployment(config, MODEL, num_replicas=plan.model_replicas)
    else:
        config = override_deployment(config, MODEL, autoscaling_config=plan.autoscaling(target))
    ingress = deployment(config, INGRESS).get("autoscaling_config")
    if fixed or (ingress is None and plan.ingress_replicas == 1):
        return override_deployment(config, INGRESS, num_replicas=plan.ingress_replicas)
    scaling = {"target_ongoing_requests": INGRESS_TARGET_ONGOING_REQUESTS, **(ingress or {})}
    scaling["max_replicas"] = plan.ingress_replicas
    scaling["min_replicas"] = min(scaling.get("min_replicas", 1), plan.ingress_replicas)
    return override_deployment(config, INGRESS, autoscaling_config=scaling)
