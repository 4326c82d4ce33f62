"""GPU memory caps and discovery, with a fake ``nvidia-smi`` on PATH (no GPU needed)."""

from __future__ import annotations

import math
import stat
from pathlib import Path

import pytest

from samo_serve.core.gpu import device_memory_bytes, gpu_mem_limit, is_gpu_visible, process_memory_bytes

GIB = 2**30


@pytest.mark.parametrize(
    ("fraction", "total", "expected"),
    [
        (0.25, 80 * GIB, 20 * GIB),
        (1.0, 80 * GIB, 80 * GIB),
        (0.5, 3, 1),
        (1e-9, 80 * GIB, int(80 * GIB * 1e-9)),
    ],
    ids=["quarter-of-80g", "whole", "rounds-down", "tiny"],
)
def test_gpu_mem_limit(fraction: float, total: int, expected: int) -> None:
    assert gpu_mem_limit(fraction, total) == expected


@pytest.mark.parametrize(
    ("fraction", "total"),
    [
        (0.0, 80 * GIB),
        (-0.25, 80 * GIB),
        (1.01, 80 * GIB),
        (2.0, 80 * GIB),
        (math.nan, 80 * GIB),
        (math.inf, 80 * GIB),
        (0.5, 0),
        (0.5, -1),
    ],
    ids=["zero", "negative", "over-one", "two", "nan", "inf", "zero-total", "negative-total"],
)
def test_gpu_mem_limit_refuses(fraction: float, total: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        gpu_mem_limit(fraction, total)


def _fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script_body: str) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + script_body + "\n", encoding="utf-8")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_no_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_memory_bytes() is None
    assert is_gpu_visible() is False


@pytest.mark.parametrize(
    ("visible", "expected_mib"),
    [(None, 81559), ("0", 81559), ("1", 40960), ("1,0", 40960), ("7", 40960), ("GPU-1234-uuid", 81559)],
    ids=["unset", "first", "second", "list", "index-past-end", "uuid"],
)
def test_device_memory_from_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, visible: str | None, expected_mib: int
) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, 'echo "81559"\necho "40960"')
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert device_memory_bytes() == expected_mib * 1024 * 1024


@pytest.mark.parametrize(
    "script", ["exit 9", "echo ''", "exec /nonexistent"], ids=["fails", "no-output", "cannot-exec"]
)
def test_broken_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, script)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_memory_bytes() is None
    assert is_gpu_visible() is False


@pytest.mark.parametrize("visible", ["", " ", "-1", "NoDevFiles"], ids=["empty", "blank", "minus-one", "nodevfiles"])
def test_hidden_gpu_is_not_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, visible: str) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, 'echo "81559"')
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert is_gpu_visible() is False


def test_visible_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, 'echo "81559"')
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert is_gpu_visible() is True


def test_process_memory_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(
        tmp_path,
        monkeypatch,
        'case "$1" in --query-compute-apps=*) printf "101, 512\\n202, 1024\\n101, 256\\n[N/A], [N/A]\\n";; esac',
    )
    assert process_memory_bytes() == {101: 768 * 2**20, 202: 1024 * 2**20}


def test_process_memory_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert process_memory_bytes() == {}
