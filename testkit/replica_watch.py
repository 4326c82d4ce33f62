"""Replica counts over time, read from a running samo-serve's ``/stats`` (which reads Serve's status).

The autoscaling e2e test, ``bench/autoscale_timeline.py`` and the GPU-packing check use it: load for a
while, keep watching while idle, and keep one row per second of each deployment's replica states.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from samo_serve.loadtest.stats import fetch_stats
from testkit.drills import drive

__all__ = ["Sample", "Timeline", "replica_timeline", "wait_for_states"]


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the timeline started
    loaded: bool  # load was being sent at this moment
    states: dict[str, dict[str, int]]  # deployment -> replica state -> count

    def running(self, deployment: str) -> int:
        return self.states.get(deployment, {}).get("RUNNING", 0)


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # of the load's responses

    def running(self, deployment: str) -> list[int]:
        return [s.running(deployment) for s in self.samples]

    def peak_under_load(self, deployment: str) -> int:
        return max((s.running(deployment) for s in self.samples if s.loaded), default=0)

    def settled_after_load(self, deployment: str) -> int | None:
        """Running replicas at the end of the idle phase (None when nothing was sampled then)."""
        idle = [s for s in self.samples if not s.loaded]
        return idle[-1].running(deployment) if idle else None

    def render(self, deployment: str) -> str:
        """One line per change: ``t=  12.0s  load  EmotionModel 2 running``."""
        lines, last = [], None
        for s in self.samples:
            state = s.states.get(deployment, {})
            if state != last:
                described = ", ".join(f"{n} {k}" for k, n in sorted(state.items())) or "unknown"
                lines.append(f"t={s.t:6.1f}s  {'load' if s.loaded else 'idle'}  {deployment}: {described}")
                last = state
        return "\n".join(lines)


def _states(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    deployments = stats.get("deployments") or {}
    if deployments:
        return {name: dict(d.get("replica_states") or {}) for name, d in deployments.items()}
    return {name: {"RUNNING": n} for name, n in (stats.get("replicas") or {}).items()}


async def replica_timeline(
    url: str,
    texts: list[str],
    load_s: float,
    idle_s: float,
    concurrency: int = 16,
    interval_s: float = 1.0,
    on_sample: Callable[[Sample], None] | None = None,
) -> Timeline:
    """Send ``load_s`` seconds of closed-loop load, then watch ``idle_s`` seconds more; sample each second.

    Every text of the load is unique: repeats would be cache hits that never reach the model.
    """
    timeline = Timeline()
    started = time.monotonic()
    load_ends = started + load_s
    end = load_ends + idle_s

    async def load() -> None:
        timeline.statuses = await drive(url, texts, 10**9, concurrency, until=load_ends, unique=True)

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while (now := time.monotonic()) < end:
                stats = await fetch_stats(client)
                if stats is not None:
                    sample = Sample(round(now - started, 1), now < load_ends, _states(stats))
                    timeline.samples.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                await asyncio.sleep(interval_s)

    await asyncio.gather(load(), watch())
    return timeline


async def wait_for_states(
    url: str,
    check: Callable[[dict[str, dict[str, int]]], bool],
    timeout_s: float,
    hold_s: float = 0.0,
    interval_s: float = 1.0,
) -> dict[str, dict[str, int]]:
    """Poll /stats until ``check(states)`` has held for ``hold_s`` seconds; the last states.

    Raises:
        TimeoutError: with the last states seen.
    """
    deadline = time.monotonic() + timeout_s
    held_since: float | None = None
    states: dict[str, dict[str, int]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            stats = await fetch_stats(client)
            if stats is not None:
                states = _states(stats)
                if check(states):
                    held_since = held_since or time.monotonic()
                    if time.monotonic() - held_since >= hold_s:
                        return states
                else:
                    held_since = None
            await asyncio.sleep(interval_s)
    raise TimeoutError(f"replica states not reached in {timeout_s:.0f} s; last seen: {states}")
