"""Mistakes a user can fix end in one line on stderr, ``samo-serve: <what is wrong>; <what to do>``, and a
non-zero exit; bugs keep their traceback, and ``-v`` shows it for the mistakes too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.ops import launcher
from samo_serve.ops.cli import main
from samo_serve.ops.cli.errors import CliError
from samo_serve.settings import default_model_dir


def one_line(capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """The single stderr line of a failed command, checked for its shape and ``expected`` parts."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("samo-serve: "), err
    assert "; " in lines[0], err  # what is wrong; what to do
    assert "Traceback" not in err
    for part in expected:
        assert part in lines[0], (part, err)
    return lines[0]


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``samo-serve run`` records what it would serve instead of starting Ray."""
    served: list[dict[str, Any]] = []

    def serve_forever(config: dict[str, Any], **kwargs: Any) -> int:
        served.append(config)
        return 0

    monkeypatch.setattr(launcher, "serve_forever", serve_forever)
    return served


# ------------------------------------------------------------------------------------------ model


def test_model_info_in_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", "--model-dir", str(tmp_path / "nope")]) == 1
    one_line(capsys, f"model folder {tmp_path / 'nope'} does not exist", "--model-dir")


def test_model_info_with_the_onnx_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(default_model_dir() / "card.json", tmp_path / "card.json")
    assert main(["model", "info", "--model-dir", str(tmp_path)]) == 1
    one_line(capsys, "model.int8.onnx", "is missing", "samo-serve model export")


def test_model_info_with_a_broken_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "card.json").write_text("{not json", encoding="utf-8")
    assert main(["model", "info", "--model-dir", str(tmp_path)]) == 1
    one_line(capsys, f"model folder {tmp_path} is not usable")


def test_model_eval_without_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "eval", "--data", str(tmp_path), "--split", "dev"]) == 1
    one_line(capsys, f"{tmp_path / 'dev.tsv'} does not exist", "pass --data")


def test_model_train_without_the_train_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "samo_serve.modeling.training.train", raising=False)
    assert main(["model", "train", "--data", str(tmp_path)]) == 1
    one_line(capsys, "model train needs torch", "samo-serve[train]")


def test_model_train_with_a_teacher_that_is_no_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason="needs the train extra")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("", encoding="utf-8")
    assert main(["model", "train", "--data", str(data), "--teacher", "no-such-model", "--layers", "4"]) == 1
    one_line(capsys, "model folder no-such-model does not exist", "pass --teacher")  # before any data is read


def test_model_train_from_a_checkpoint_that_is_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason="needs the train extra")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("", encoding="utf-8")
    assert main(["model", "train", "--data", str(data), "--init-checkpoint", str(tmp_path), "--quant-aware"]) == 1
    one_line(capsys, f"checkpoint {tmp_path} does not exist or is not one", "pass --init-checkpoint")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "classifier.json").write_text("{}", encoding="utf-8")
    assert main(["model", "train", "--data", str(data), "--init-checkpoint", str(ckpt), "--layers", "2"]) == 1
    one_line(capsys, "a checkpoint (init_checkpoint) keeps its own depth", "samo-serve model train --help")


# -------------------------------------------------------------------------------------------- run


def test_run_with_a_missing_config(
    no_serving: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "serve.yaml")]) == 1
    one_line(capsys, f"Serve config {tmp_path / 'serve.yaml'} does not exist", "pass --config")
    assert not no_serving


@pytest.mark.parametrize(
    ("text", "expected"),
    [("applications: [\n  - name: x\n  bad", "is not valid YAML"), ("- just\n- a list\n", "is not a Serve config")],
)
def test_run_with_a_config_that_is_no_serve_config(
    no_serving: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    (tmp_path / "serve.yaml").write_text(text, encoding="utf-8")
    assert main(["run", "--config", str(tmp_path / "serve.yaml")]) == 1
    one_line(capsys, expected)
    assert not no_serving


def test_run_with_an_invalid_setting(
    no_serving: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAMO_TOKENIZE_IN", "elsewhere")
    assert main(["run"]) == 1
    one_line(capsys, "invalid setting tokenize_in = 'elsewhere'", "SAMO_TOKENIZE_IN")
    assert not no_serving


def test_run_with_a_missing_model(
    no_serving: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SAMO_MODEL_DIR", str(tmp_path / "model"))
    assert main(["run"]) == 1
    one_line(capsys, f"model folder {tmp_path / 'model'}", "does not exist", "SAMO_MODEL_DIR")
    assert not no_serving


def test_run_serves_the_shipped_config_from_any_cwd(
    no_serving: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--port", "8123"]) == 0
    (config,) = no_serving
    assert config["http_options"]["port"] == 8123
    assert config["applications"][0]["import_path"] == "deployments.app:build_app"


# ------------------------------------------------------------------------------------- plan, k8s


def test_plan_from_missing_or_broken_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["plan", "--target-rps", "100", "--p95-ms", "300", "--from"]
    assert main([*base, str(tmp_path / "results.json")]) == 1
    one_line(capsys, f"load-test results {tmp_path / 'results.json'} does not exist", "samo-serve loadtest --out")
    (tmp_path / "results.json").write_text('{"levels": [', encoding="utf-8")
    assert main([*base, str(tmp_path / "results.json")]) == 1
    one_line(capsys, "is not valid JSON")


def test_k8s_render_with_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["k8s", "render", "--config", str(tmp_path / "gpu.yaml")]) == 1
    one_line(capsys, "does not exist", "pass --config")


# ------------------------------------------------------------------------------------------- keys


def test_keys_with_a_broken_keys_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"name": "no id"}]}', encoding="utf-8")
    assert main(["keys", "list", "--file", str(path)]) == 1
    one_line(capsys, f"keys file {path} is not usable", "--file")
    assert main(["keys", "list", "--file", str(tmp_path)]) == 1  # a folder
    one_line(capsys, f"keys file {tmp_path} is a folder")


def test_keys_with_an_invalid_setting(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SAMO_LIMITS__MAX_BATCH_TEXTS", "many")
    assert main(["keys", "list"]) == 1
    one_line(capsys, "invalid setting limits.max_batch_texts", "SAMO_LIMITS__MAX_BATCH_TEXTS")


# ----------------------------------------------------------------------------------- report, loadtest


def _answer(monkeypatch: pytest.MonkeyPatch, response: httpx.Response) -> None:
    monkeypatch.setattr(httpx, "get", lambda url, **kwargs: response)


def test_report_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--url", "http://127.0.0.1:9"]) == 2  # the discard port: nothing listens
    one_line(capsys, "cannot reach http://127.0.0.1:9", "samo-serve run", "--url")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(401, json={"error": {"code": "unauthorized"}}), "--api-key"),
        (httpx.Response(404, text="<html><h1>Not Found</h1></html>"), "/stats answered 404; pass --url"),
        (httpx.Response(503, json={"error": {"code": "unavailable", "message": "not ready"}}), "503 (not ready)"),
        (httpx.Response(200, text="<html>a router</html>"), "did not answer samo-serve's /stats"),
        (httpx.Response(200, json={"status": "ok"}), "did not answer samo-serve's /stats"),
    ],
)
def test_report_when_the_url_is_not_samo_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], response: httpx.Response, expected: str
) -> None:
    _answer(monkeypatch, response)
    assert main(["report"]) == 2
    one_line(capsys, expected)


def test_loadtest_when_nothing_answers_or_the_corpus_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", "--url", "http://127.0.0.1:9", "--requests", "5"]) == 2
    one_line(capsys, "cannot reach http://127.0.0.1:9")
    assert main(["loadtest", "--corpus", str(tmp_path / "texts.jsonl"), "--requests", "5"]) == 1
    one_line(capsys, f"corpus {tmp_path / 'texts.jsonl'} does not exist", "pass --corpus")


# ------------------------------------------------------------------------------------ the boundary


def test_verbose_keeps_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="does not exist"):
        main(["-v", "model", "info", "--model-dir", str(tmp_path / "nope")])


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("samo_serve.core.model_card.load_card", broken)
    with pytest.raises(ZeroDivisionError):
        main(["model", "info"])


def test_the_installed_command_prints_one_line(tmp_path: Path) -> None:
    """The whole way, as a user runs it: exit status 1, one line, no traceback."""
    missing = tmp_path / "nope"
    done = subprocess.run(
        [sys.executable, "-m", "samo_serve.ops.cli", "model", "info", "--model-dir", str(missing)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"samo-serve: model folder {missing} does not exist; pass --model-dir with a folder holding card.json "
        "and its ONNX file (samo-serve model export writes one) or a shipped model's name"
    ]
    assert json.loads(subprocess.check_output([sys.executable, "-m", "samo_serve.ops.cli", "model", "info"]))
    by_name = [sys.executable, "-m", "samo_serve.ops.cli", "model", "info", "--model-dir", "goemotions-minilm-l6"]
    assert json.loads(subprocess.check_output(by_name, cwd=tmp_path))["name"] == "goemotions-minilm-l6"
