"""`samo-serve loadtest` against a real samo-serve (Ray Serve over HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from samo_serve.loadtest.runner import run_loadtest
from testkit.server_process import ROOT

from .conftest import Server


def test_sweep_writes_report_plots_and_results(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "lt"
    cmd = [sys.executable, "-m", "samo_serve.ops.cli", "loadtest", "--url", server.url, "--concurrency", "1,4",
           "--requests", "60", "--repeat-ratio", "0.5", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert [lv["concurrency"] for lv in results["levels"]] == [1, 4]
    assert all(lv["statuses"] == {"200": 60} for lv in results["levels"])
    assert all(len(lat) == 60 for lat in results["latencies_ms"])
    for png in ("throughput.png", "p95.png", "success.png", "latency_histogram.png"):
        assert (out / png).stat().st_size > 5_000
    assert "| c=4 |" in (out / "report.md").read_text()


def test_batch_and_open_loop(server: Server) -> None:
    run = run_loadtest(server.url, [8], rate=[20.0], requests=40, batch=4)
    (level,) = run["levels"]
    assert level["mode"] == "open"
    assert level["statuses"] == {"200": 40}
    assert level["texts_per_s"] == pytest.approx(level["throughput_rps"] * 4, abs=0.05)


def test_stress_finds_a_degradation_point(server: Server) -> None:
    # A p95 target this machine cannot hold at high concurrency: the ramp must stop and say where.
    run = run_loadtest(server.url, [1], requests=40, stress=True, p95_target_ms=60)
    stress = run["stress"]
    assert stress["degradation_at"] is not None
    assert run["levels"][-1]["concurrency"] == stress["degradation_at"]
    assert len(run["levels"]) < 10  # it stopped
