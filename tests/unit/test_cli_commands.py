"""The command line keeps its commands and flags, and its defaults work from any directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from samo_serve.ops.cli import _parser, main
from samo_serve.ops.serve_config import deployment, load_serve_config

ROOT = Path(__file__).resolve().parents[2]

#: every command and its options, as documented (README, docs/OPERATIONS.md): additions are fine, changes are not
COMMANDS = {
    "run": {"--config", "--port", "--host", "--ready-timeout", "--classic-proxy", "--metrics-port", "--num-cpus",
            "--num-gpus", "--address"},
    "model info": {"--model-dir"},
    "model eval": {"--model-dir", "--data", "--split", "--json"},
    "model train": {"--data", "--out", "--epochs", "--lr", "--batch-size", "--max-length", "--seed", "--threads",
                    "--limit", "--max-steps", "--stop-after-step", "--evals-per-epoch"},
    "model export": {"--checkpoint", "--out", "--name", "--data"},
    "model bench": {"--model-dir", "--data", "--texts", "--seconds", "--threads", "--json"},
    "loadtest": {"--url", "--concurrency", "--rate", "--requests", "--duration", "--corpus", "--repeat-ratio",
                 "--batch", "--api-key", "--stress", "--p95-target-ms", "--out"},
    "plan": {"--target-rps", "--p95-ms", "--from", "--url", "--requests", "--measure-out", "--api-key", "--config",
             "--headroom", "--measured-cpus", "--cpus", "--fixed", "--out", "--json"},
    "k8s render": {"--config", "--image", "--out"},
    "report": {"--url", "--api-key", "--json"},
    "keys create": {"--name", "--tier", "--file"},
    "keys list": {"--file", "--json"},
    "keys revoke": {"id", "--file"},
}  # fmt: skip


def commands(parser: argparse.ArgumentParser, path: str = "") -> dict[str, set[str]]:
    """Each leaf command's options (positionals by name), walking the subparsers."""
    found: dict[str, set[str]] = {}
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subparsers:
        for name, child in action.choices.items():
            found.update(commands(child, f"{path} {name}".strip()))
    if not subparsers:
        found[path] = {s for a in parser._actions for s in (a.option_strings or [a.dest]) if s not in ("-h", "--help")}
    return found


def test_every_command_keeps_its_flags() -> None:
    found = commands(_parser())
    assert set(COMMANDS) <= set(found), set(COMMANDS) - set(found)
    for command, flags in COMMANDS.items():
        assert flags <= found[command], (command, flags - found[command])


def test_loadtest_levels_are_checked_when_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["loadtest", "--concurrency", "1,eight"])
    assert exit_.value.code == 2
    assert "expected numbers separated by commas" in capsys.readouterr().err
    args = _parser().parse_args(["loadtest", "--rate", "50,100"])
    assert (args.concurrency, args.rate) == ([1, 8, 32, 64], [50.0, 100.0])


def test_k8s_render_from_another_directory_is_the_checked_in_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checked_in = (ROOT / "k8s" / "rayservice.yaml").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["k8s", "render"]) == 0
    assert capsys.readouterr().out == checked_in
    assert main(["k8s", "render", "--out", "rayservice.yaml"]) == 0
    assert (tmp_path / "rayservice.yaml").read_text(encoding="utf-8") == checked_in


def test_plan_from_another_directory_resizes_the_shipped_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    level = {"concurrency": 8, "batch": 1, "throughput_rps": 40.0, "success_rate": 1.0, "latency_ms": {"p95": 200.0},
             "replicas": {"Ingress": 1, "EmotionModel": 1}}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"levels": [level]}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--target-rps", "100", "--p95-ms", "300", "--from", "results.json", "--out", "p.yaml"]) == 0
    assert "4 EmotionModel" in capsys.readouterr().out
    assert deployment(load_serve_config(tmp_path / "p.yaml"), "EmotionModel")["autoscaling_config"]["max_replicas"] == 4


def test_drift_report_prints_each_tenant_and_what_moved(capsys: pytest.CaptureFixture[str]) -> None:
    from samo_serve.ops.cli.drift import _print

    entry = {"texts": 300, "judged": True, "drifted": True, "mix_js": 0.42, "confidence_psi": 0.57,
             "moved": [{"label": "anger", "share": 0.45, "reference": 0.03}]}  # fmt: skip
    tenants = {"acme": {"m-ffa517df561e": entry}, "beta": {"m-ffa517df561e": {"texts": 5, "judged": False}}}
    limits = {"mix_js": 0.1, "confidence_psi": 0.25}
    _print({"start": "2026-12-07T00:00:00Z", "end": "2026-12-08T00:00:00Z", "thresholds": limits, "tenants": tenants})
    out = capsys.readouterr().out
    for shown in ("acme", "drifted", "anger", "not judged", "ffa517df561e"):
        assert shown in out, out
