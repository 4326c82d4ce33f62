"""GPU discovery and per-replica GPU memory caps, without torch or CUDA bindings."""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["device_memory_bytes", "gpu_mem_limit", "is_gpu_visible", "process_memory_bytes"]


def is_gpu_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (Ray sets CUDA_VISIBLE_DEVICES per replica)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return False
    return device_memory_bytes() is not None


def _nvidia_smi(query: str) -> list[str] | None:
    """Lines of ``nvidia-smi --query-…=FIELDS --format=csv,noheader,nounits``; None without a working one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def process_memory_bytes() -> dict[int, int]:
    """GPU memory each process holds (pid -> bytes), from nvidia-smi; empty without a GPU."""
    used: dict[int, int] = {}
    for line in _nvidia_smi("--query-compute-apps=pid,used_memory") or []:
        pid, _, mib = line.partition(",")
        if pid.strip().isdigit() and mib.strip().replace(".", "", 1).isdigit():
            used[int(pid)] = used.get(int(pid), 0) + int(float(mib)) * 1024 * 1024
    return used


def device_memory_bytes() -> int | None:
    """Total memory of the first visible GPU, from nvidia-smi; None when there is none."""
    lines = _nvidia_smi("--query-gpu=memory.total")
    if not lines:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    index = int(visible.split(",")[0]) if visible.split(",")[0].strip().isdigit() else 0
    return int(float(lines[min(index, len(lines) - 1)])) * 1024 * 1024


def gpu_mem_limit(fraction: float, total_bytes: int) -> int:
    """ORT's ``gpu_mem_limit`` for a replica holding ``fraction`` of a GPU (e.g. num_gpus: 0.25).

    Raises:
        ValueError: fraction outside (0, 1] or a non-positive total.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"GPU fraction must be in (0, 1], got {fraction}")
    if total_bytes <= 0:
        raise ValueError(f"device memory must be positive, got {total_bytes}")
    return int(total_bytes * fraction)
