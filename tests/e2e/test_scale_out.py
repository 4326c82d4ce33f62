"""Scale-out through real Ray Serve over HTTP: autoscaling under load and back, and fractional-GPU packing
(4 model replicas at num_gpus 0.25 on one logical GPU, a 5th pending)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from samo_serve.loadtest.corpus import builtin_corpus
from samo_serve.ops.launcher import DEFAULT_CONFIG
from samo_serve.ops.serve_config import (
    FAST_AUTOSCALING,
    load_serve_config,
    override_args,
    override_deployment,
    write_serve_config,
)
from testkit.replica_watch import replica_timeline, wait_for_states

from .conftest import run_server

GPU_CONFIG = DEFAULT_CONFIG.parent / "serve-gpu.yaml"
server = contextlib.contextmanager(run_server)


async def test_model_autoscales_up_under_load_and_back(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    config = override_deployment(load_serve_config(DEFAULT_CONFIG), "EmotionModel", autoscaling_config=FAST_AUTOSCALING)
    path = write_serve_config(config, tmp_path / "serve.yaml")
    with server(tmp_path_factory, args=("--config", str(path))) as srv:
        timeline = await replica_timeline(srv.url, builtin_corpus(), load_s=30, idle_s=35)
    with capsys.disabled():  # shown in every run's output, not only on failure
        print(f"\nEmotionModel replica timeline (Serve status via /stats):\n{timeline.render('EmotionModel')}")
    assert timeline.running("EmotionModel")[:1] == [1], timeline.render("EmotionModel")
    assert timeline.peak_under_load("EmotionModel") >= 2, timeline.render("EmotionModel")
    assert timeline.settled_after_load("EmotionModel") == 1, timeline.render("EmotionModel")
    assert set(timeline.statuses) == {200}, timeline.statuses


async def test_four_replicas_share_one_logical_gpu_and_a_fifth_waits(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # The GPU config as shipped (num_gpus 0.25, gpu_fraction 0.25, device cuda) asking for 5 replicas on
    # a Ray that declares one GPU. CPUs are made small so that only the GPU share can be what is short.
    # int8: the fp16 file is not in git, and without a real GPU the runner falls back to the CPU.
    config = load_serve_config(GPU_CONFIG)
    config = override_args(config, runner={"precision": "int8"})
    config = override_deployment(config, "EmotionModel", num_replicas=5, ray_actor_options={"num_cpus": 0.05})
    path = write_serve_config(config, tmp_path / "serve-gpu.yaml")

    def four_running_one_waiting(states: dict[str, dict[str, int]]) -> bool:
        model = states.get("EmotionModel", {})
        return model.get("RUNNING") == 4 and sum(n for s, n in model.items() if s != "RUNNING") == 1

    with server(tmp_path_factory, args=("--config", str(path), "--num-gpus", "1")) as srv:
        # Held for 35 s: past Serve's 30 s "cannot be scheduled" warning, and no 5th ever starts.
        states = await wait_for_states(srv.url, four_running_one_waiting, timeout_s=240, hold_s=35)
        stats = httpx.get(f"{srv.url}/stats", timeout=30).json()
        served = httpx.post(f"{srv.url}/predict", json={"text": "I am so happy for you"}, timeout=60)
    model = stats["deployments"]["EmotionModel"]
    with capsys.disabled():
        print(f"\nEmotionModel on 1 logical GPU: {states['EmotionModel']}; Serve says: {model['message']}")
    assert states["EmotionModel"] == {"RUNNING": 4, "STARTING": 1}
    assert "GPU" in model["message"], model["message"]  # Serve names the resource the 5th waits for
    assert served.status_code == 200, served.text
    assert served.json()["emotions"], served.text
