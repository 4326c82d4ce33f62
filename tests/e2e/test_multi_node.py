"""Multi-node Ray on this machine: a head and a worker node (two ``ray start`` processes), samo-serve
deployed onto the cluster with ``samo-serve run --address``, model replicas on both nodes, and the
worker node SIGKILLed under load: requests keep succeeding while its replica is rescheduled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from samo_serve.loadtest.corpus import builtin_corpus
from samo_serve.ops.launcher import DEFAULT_CONFIG, RAY_ENV_DEFAULTS
from samo_serve.ops.serve_config import load_serve_config, override_deployment, write_serve_config
from testkit.drills import at, drive
from testkit.local_cluster import LocalRayCluster
from testkit.replica_watch import wait_for_states

from .conftest import run_server

server = contextlib.contextmanager(run_server)
REQUESTS = 1000


async def _until(check: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(1)


async def test_worker_node_killed_under_load(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Logical CPUs sized so that Serve spreads the two model replicas over both nodes (1 CPU each) and
    # the head keeps room for the replacement: head 3 = Ingress 0.25 + StatsHub 0.05 + model 1 + 1 spare.
    cluster = LocalRayCluster(tmp_path / "ray", head_cpus=3, env=RAY_ENV_DEFAULTS)
    try:
        worker = cluster.add_worker(num_cpus=1)
        cluster.wait_for_nodes(2)
        config = override_deployment(
            load_serve_config(DEFAULT_CONFIG), "EmotionModel", num_replicas=2, ray_actor_options={"num_cpus": 1}
        )
        path = write_serve_config(config, tmp_path / "serve.yaml")
        args = ("--config", str(path), "--address", cluster.address)
        with server(tmp_path_factory, env={"RAY_AUTH_MODE": "token"}, args=args) as srv:
            await _until(lambda: cluster.head.replica_pids("EmotionModel") and worker.replica_pids("EmotionModel"), 120)
            placed = {"head": cluster.head.replica_pids("EmotionModel"), "worker": worker.replica_pids("EmotionModel")}
            statuses = await drive(
                srv.url, builtin_corpus(), REQUESTS, 16, on_progress=at({0.3: worker.kill}, REQUESTS), unique=True
            )
            success = statuses[200] / REQUESTS
            with capsys.disabled():  # the success rate, in every run's output
                print(f"\nEmotionModel replica pids before the kill: {placed}")
                print(f"worker node killed at 30%: {REQUESTS} sent, {statuses[200]} succeeded ({success:.1%})")
            assert success >= 0.99, statuses
            # The lost replica is rescheduled on the node left: two running again, both on the head.
            await wait_for_states(srv.url, lambda s: s.get("EmotionModel", {}) == {"RUNNING": 2}, timeout_s=120)
            assert len(cluster.head.replica_pids("EmotionModel")) == 2
    finally:
        cluster.stop()
