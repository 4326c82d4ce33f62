"""The GPU config on a real NVIDIA GPU: CUDA with fp16, 4 replicas on one GPU, load, memory per process.

    scripts/gpu_check.sh [--duration 20] [--out runs/gpu-check]      # wraps this file

Needs ``models/goemotions-minilm/model.fp16.onnx`` (``samo-serve model export``; not in git) and
onnxruntime-gpu with CUDA 12 libraries. Steps, each printed and collected in ``summary.json``:

1. an ORT session over the fp16 file with the GPU config's runner settings: its provider must be
   ``CUDAExecutionProvider`` (the runner falls back to the CPU silently otherwise);
2. ``samo-serve run --config configs/serve-gpu.yaml`` with EmotionModel fixed at 4 replicas
   (``num_gpus: 0.25`` each): 4 must run on the one GPU;
3. the load tester at c=``--levels``: throughput and p95;
4. ``nvidia-smi``: each model replica's GPU memory against its cap, 0.25 x device memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc  # noqa: E402

from samo_serve.core.gpu import device_memory_bytes, gpu_mem_limit, process_memory_bytes  # noqa: E402
from samo_serve.core.model_card import load_card, with_variant  # noqa: E402
from samo_serve.core.model_runner import OrtModelRunner  # noqa: E402
from samo_serve.loadtest.runner import run_loadtest  # noqa: E402
from samo_serve.ops.launcher import DEFAULT_CONFIG  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.ops.serve_config import (  # noqa: E402
    deployment,
    load_serve_config,
    override_args,
    override_deployment,
    write_serve_config,
)
from samo_serve.settings import Settings, default_model_dir  # noqa: E402
from testkit.drills import replica_pids  # noqa: E402
from testkit.replica_watch import wait_for_states  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402

GPU_CONFIG = DEFAULT_CONFIG.parent / "serve-gpu.yaml"
REPLICAS = 4


def provider_check(config: dict[str, Any]) -> dict[str, Any]:
    runner_settings = Settings(**config["applications"][0]["args"]).runner
    model_dir = default_model_dir()
    card = with_variant(load_card(model_dir), runner_settings.precision, model_dir)
    runner = OrtModelRunner.for_card(card, model_dir, runner_settings)
    return {"precision": runner_settings.precision, "file": card.onnx_file, "provider": runner.provider}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per load level")
    parser.add_argument("--out", default="runs/gpu-check")
    parser.add_argument(
        "--cpu-rehearsal",
        action="store_true",
        help="no GPU: int8 on a Ray that declares 1 logical GPU, to rehearse every step but CUDA and memory",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"rehearsal": args.cpu_rehearsal}
    total = device_memory_bytes()
    if total is None and not args.cpu_rehearsal:
        print("no NVIDIA GPU visible (nvidia-smi): this check needs one (or --cpu-rehearsal)", file=sys.stderr)
        return 2
    if args.cpu_rehearsal:
        total = total or 80 * 2**30  # a stand-in for the cap arithmetic
    assert total is not None
    summary["device_memory_mib"] = total // 2**20

    config = load_serve_config(GPU_CONFIG)
    if args.cpu_rehearsal:  # int8 (no fp16 file needed), and CPUs small enough for 4 replicas on 2 cores
        config = override_args(config, runner={"precision": "int8"})
        config = override_deployment(config, "EmotionModel", ray_actor_options={"num_cpus": 0.05})
    try:
        summary["session"] = provider_check(config)
    except FileNotFoundError as exc:  # the fp16 file is not shipped
        print(f"skipped: {exc}", file=sys.stderr)
        return 2
    print(f"1. ORT session: {summary['session']}", flush=True)

    config = override_deployment(config, "EmotionModel", num_replicas=REPLICAS)
    fraction = float(deployment(config, "EmotionModel")["ray_actor_options"]["num_gpus"])
    tmp = Path(tempfile.mkdtemp(prefix="samo-gpu-check-"))
    path = write_serve_config(config, tmp / "serve-gpu.yaml")
    port = free_port()
    cmd = samo_serve_command(
        port, free_port(), "--config", str(path), *(["--num-gpus", "1"] if args.cpu_rehearsal else [])
    )
    srv = Proc(cmd, f"http://127.0.0.1:{port}", {"SAMO_DATA_DIR": str(tmp / "data")}, out / "samo-serve.log")
    try:
        srv.wait_ready()
        states = asyncio.run(
            wait_for_states(srv.url, lambda s: s.get("EmotionModel", {}).get("RUNNING") == REPLICAS, timeout_s=300)
        )
        summary["replicas"] = states.get("EmotionModel")
        print(f"2. EmotionModel at num_gpus {fraction}: {summary['replicas']}", flush=True)

        levels = [int(c) for c in args.levels.split(",")]
        run = run_loadtest(srv.url, levels, duration_s=args.duration, unique=True, out=out / "loadtest")
        summary["load"] = [
            {"concurrency": lv["concurrency"], "rps": lv["throughput_rps"], "p95_ms": lv["latency_ms"]["p95"],
             "success_rate": lv["success_rate"]}
            for lv in run["levels"]
        ]  # fmt: skip
        print(f"3. load: {summary['load']}", flush=True)

        cap = gpu_mem_limit(fraction, total)
        used = process_memory_bytes()
        # this server's replicas, not another samo-serve's on the machine
        replicas = {pid: used.get(pid, 0) for pid in replica_pids("EmotionModel", under=srv.proc.pid)}
        summary["gpu_memory"] = {
            "cap_mib": cap // 2**20,
            "replicas_mib": {str(pid): b // 2**20 for pid, b in replicas.items()},
            "all_under_cap": bool(replicas) and all(0 < b <= cap for b in replicas.values()),
        }
        print(f"4. GPU memory per replica: {summary['gpu_memory']}", flush=True)
    finally:
        srv.stop()
    ok = (
        summary.get("replicas", {}).get("RUNNING") == REPLICAS
        and all(lv["success_rate"] >= 0.99 for lv in summary.get("load", []))
        and (
            args.cpu_rehearsal
            or (
                summary["session"]["provider"] == "CUDAExecutionProvider"
                and summary.get("gpu_memory", {}).get("all_under_cap", False)
            )
        )
    )
    summary["ok"] = ok
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"{'OK' if ok else 'FAILED'}: {out / 'summary.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
