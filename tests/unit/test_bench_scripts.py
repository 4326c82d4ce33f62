"""Every bench script imports and parses its arguments on a fresh checkout (``--help``), and the bench
helpers fall back as documented when the shared GoEmotions data is not there.

The scripts run in one child interpreter (they import onnxruntime, FastAPI, and some Ray), each as
``__main__`` with ``--help``, which argparse answers before any server starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))

_HELP_ALL = r"""
import contextlib, io, json, runpy, sys
results = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        results[path] = "--help did not exit"
    except SystemExit as exc:
        ok = exc.code in (0, None) and "usage:" in out.getvalue()
        results[path] = "ok" if ok else f"exit {exc.code!r}: {out.getvalue()[-500:]}"
    except BaseException as exc:
        results[path] = f"{type(exc).__name__}: {exc}"
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def help_results() -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _HELP_ALL, *map(str, SCRIPTS)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULTS ")), None)
    assert line is not None, done.stderr[-3000:]
    results: dict[str, str] = json.loads(line[len("RESULTS ") :])
    return results


def test_scripts_are_found() -> None:
    assert {p.name for p in SCRIPTS} >= {"loadgen.py", "model_throughput.py", "serve_vs_plain.py", "fault_suite.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_imports_and_parses_its_arguments(script: Path, help_results: dict[str, str]) -> None:
    if script.name == "loadgen.py":  # the helpers, not a script: importing it is the check
        assert help_results[str(script)] in ("ok", "--help did not exit")
        return
    assert help_results[str(script)] == "ok"


@pytest.fixture
def loadgen(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import loadgen

    return loadgen


def test_bench_texts_without_the_data_are_numbered_builtin_texts(
    loadgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(loadgen, "DATA", tmp_path / "absent")
    texts = loadgen.bench_texts()
    assert len(texts) == len(set(texts)) == loadgen.FALLBACK_TEXTS
    assert "GoEmotions not found" in capsys.readouterr().out


def test_bench_texts_read_goemotions_through_the_one_reader(
    loadgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for split in ("test", "dev", "train"):
        (tmp_path / f"{split}.tsv").write_text(f'"{split}, quoted"\t0\tid\nsame\t1\tid\n', encoding="utf-8")
    monkeypatch.setattr(loadgen, "DATA", tmp_path)
    assert loadgen.bench_texts() == ["test, quoted", "same", "dev, quoted", "train, quoted"]
    assert loadgen.bench_texts(("test",)) == ["test, quoted", "same"]


def test_closed_loop_without_wrk_sends_the_bodies_through_the_engine(
    loadgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def engine_level(url: str, texts: list[str], label: str, **kw: Any) -> str:
        calls.append({"texts": texts, **kw})
        return label

    monkeypatch.setattr(loadgen, "generator", lambda: "python")
    monkeypatch.setattr(loadgen, "engine_level", engine_level)
    singles = loadgen.write_bodies(tmp_path / "s.jsonl", ["a", "b", "c"])
    batches = loadgen.write_bodies(tmp_path / "b.jsonl", ["a", "b", "c", "d"], per_request=2)
    assert loadgen.closed_loop("http://x", singles, 4, 1.0, "one", offset=1) == "one"
    loadgen.closed_loop("http://x", batches, 2, 1.0, "two", path="/predict/batch", offset=1, texts_per_request=2)
    assert calls == [
        {"texts": ["b", "c", "a"], "concurrency": 4, "duration_s": 1.0, "batch": 1},
        {"texts": ["c", "d", "a", "b"], "concurrency": 2, "duration_s": 1.0, "batch": 2},
    ]
