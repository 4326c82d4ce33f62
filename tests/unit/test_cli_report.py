"""``samo-serve report`` reads at 80 columns and in a pipe: no header or value cut to ``…``."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import httpx
import pytest
from rich.console import Console

from samo_serve.observability.recommendations import RecommendationSettings
from samo_serve.observability.telemetry import build_view
from samo_serve.observability.window_stats import WindowStats
from samo_serve.ops.cli import main
from samo_serve.ops.report import render_report, stdout_console

NOW = 1_800_000_000.0
HEADERS = ("window", "1m", "5m", "1h", "answered by", "texts", "deployment", "running", "other states")
MEASURES = ("requests", "throughput, rps", "latency p50, ms", "latency p95, ms", "latency p99, ms", "errors",
            "cache hits", "batch size", "batch fill")  # fmt: skip


@pytest.fixture(scope="module")
def stats() -> dict[str, Any]:
    """A busy service's /stats: five-digit counts, every cache level, three deployments, a recommendation."""
    windows = WindowStats(lambda: NOW)
    for i in range(15_000):
        windows.record_request(503 if i % 50 == 0 else 200, 0.012 + (i % 100) / 1000)
    windows.record_levels(["miss"] * 900 + ["l1"] * 5_000 + ["l2"] * 1_200 + ["l3"] * 30)
    for i in range(300):
        windows.record_batch(20 + i % 12, 32)
    deployments = {
        name: {"status": "UPDATING", "replica_states": {"RUNNING": n, "STARTING": 1, "PENDING_ALLOCATION": 2}}
        for name, n in (("Ingress", 2), ("EmotionModel", 12), ("Tokenizer", 3))
    }
    gauges = {"replica-1": {"rss_mb": 1321.0}, "replica-2": {"rss_mb": 900.0}}
    view = build_view(windows, gauges, RecommendationSettings(), 2000, now=NOW, deployments=deployments)
    assert view["recommendations"], "the document should carry a recommendation"
    # through JSON, as the command gets it
    document: dict[str, Any] = json.loads(json.dumps(view))
    return document


def assert_readable(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width, text
    for label in (*HEADERS, *MEASURES, "15,000", "EmotionModel", "STARTING 1, PENDING_ALLOCATION 2", "1,321 MB"):
        assert label in text, (label, text)


def test_report_at_80_columns_piped(stats: dict[str, Any]) -> None:
    out = StringIO()
    render_report(stats, Console(file=out, width=80, force_terminal=False))
    assert_readable(out.getvalue())


def test_piped_output_is_80_columns_unless_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert stdout_console().width == 80  # pytest's stdout is no terminal
    monkeypatch.setenv("COLUMNS", "132")
    assert stdout_console().width == 132


def test_report_command_piped(
    stats: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    asked: list[str] = []

    def get(url: str, **kwargs: Any) -> httpx.Response:
        asked.append(url)
        return httpx.Response(200, json=stats)

    monkeypatch.setattr(httpx, "get", get)
    assert main(["report", "--url", "http://10.0.0.5:8000/"]) == 0
    assert asked == ["http://10.0.0.5:8000/stats"]
    assert_readable(capsys.readouterr().out)
    assert main(["report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == stats
