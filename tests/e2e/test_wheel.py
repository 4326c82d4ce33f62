"""The wheel is the product: built from this tree, installed in a fresh venv, it serves the shipped model.

Everything runs from a temporary folder outside the checkout, with the checkout off ``sys.path``, so
nothing can come from the source tree: the model, the configs and ``deployments`` must be in the wheel,
and ``testkit`` must not be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from samo_serve.ops.ports import free_port
from testkit.server_process import ROOT, ServerProcess

MODEL = "samo_serve/models/goemotions-minilm"
# what the service needs at run time besides its Python modules
REQUIRED = {
    f"{MODEL}/card.json",
    f"{MODEL}/tokenizer.json",
    f"{MODEL}/model.int8.onnx",
    "samo_serve/configs/serve.yaml",
    "samo_serve/configs/serve-gpu.yaml",
    "samo_serve/http/static/dashboard.html",
    "samo_serve/py.typed",
    "deployments/app.py",
}
UNSHIPPED_VARIANTS = ("model.fp32.onnx", "model.fp16.onnx")  # exported locally, never shipped
TEXT = "Thank you so much, I love it!"


def _source_copy(dest: Path) -> Path:
    """The tree as git sees it (tracked and untracked, minus ignored): no stale build/ or egg-info.

    The unshipped fp32/fp16 variants are put beside the int8 model, as `samo-serve model export` leaves
    them on a developer's machine, so the package-data rules must keep them out.
    """
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        src, dst = ROOT / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet in git
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    for variant in UNSHIPPED_VARIANTS:
        (dest / MODEL / variant).write_bytes(b"not shipped")
    return dest


def _clean_env(venv_dir: Path) -> dict[str, str]:
    """This environment, with the venv first on PATH and nothing pointing back at the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    env["PYTHONPATH"] = ""  # empty, not absent: ServerProcess lays this over os.environ
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _source_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(out), str(src)], check=True, cwd=out)
    (built,) = out.glob("samo_serve-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with only the wheel and its dependencies."""
    venv_dir = tmp_path_factory.mktemp("wheelvenv")
    venv.create(venv_dir, with_pip=True, system_site_packages=False)
    started = time.monotonic()
    # --no-compile: byte-compiling Ray's thousands of modules is ~30% of the install's CPU time
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    env = _clean_env(venv_dir)
    subprocess.run([*pip, "install", "-q", "--no-compile", str(wheel)], check=True, cwd=venv_dir, env=env)
    print(f"\nwheel install into a fresh venv: {time.monotonic() - started:.0f} s")
    return venv_dir


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert names >= REQUIRED, f"missing from the wheel: {sorted(REQUIRED - names)}"
    assert not [n for n in names if n.endswith(UNSHIPPED_VARIANTS)], "fp32/fp16 variants must not ship"
    packages = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert packages == {"samo_serve", "deployments"}, "testkit/, tests/, bench/ stay out of the wheel"
    assert not [n for n in names if "testkit" in n or "/tests/" in n]


def test_installed_wheel_imports_from_site_packages(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, samo_serve, deployments.app\n"
        "from samo_serve.settings import default_model_dir\n"
        "print(json.dumps({'samo_serve': samo_serve.__file__, 'deployments': deployments.app.__file__,\n"
        "  'build_app': callable(deployments.app.build_app), 'model': str(default_model_dir()),\n"
        "  'testkit': importlib.util.find_spec('testkit') is not None}))"
    )
    out = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe],
        cwd=tmp_path, env=_clean_env(installed), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = json.loads(out)
    site = str(installed)
    assert found["samo_serve"].startswith(site), found
    assert found["deployments"].startswith(site), found
    assert found["model"].startswith(site), found
    assert found["build_app"] is True
    assert found["testkit"] is False, "testkit (test harnesses) must not be importable from the wheel"


def test_installed_wheel_serves(installed: Path, tmp_path: Path) -> None:
    env = _clean_env(installed)
    info = subprocess.run(
        [str(installed / "bin" / "samo-serve"), "model", "info"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    card = json.loads(info)
    assert card["name"] == "goemotions-minilm"
    assert len(card["labels"]) == 28

    port, metrics_port = free_port(), free_port()
    env["SAMO_DATA_DIR"] = str(tmp_path / "data")
    cmd = [str(installed / "bin" / "samo-serve"), "run", "--port", str(port), "--metrics-port", str(metrics_port)]
    srv = ServerProcess(cmd, f"http://127.0.0.1:{port}", tmp_path / "samo-serve.log", env, cwd=tmp_path)
    try:
        srv.wait_ready(600)
        r = httpx.post(f"{srv.url}/predict", json={"text": TEXT}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == card["version"]
        # the model's two labels for it, whichever leads (a near tie: a model choice, not the wheel's)
        assert {e["label"] for e in body["emotions"]} >= {"gratitude", "love"}
        assert body["emotions"][0] == body["primary"]
        assert {e["label"] for e in body["emotions"]} <= set(card["labels"])
    finally:
        code = srv.stop(kill_group=False)
    assert code == 0, srv.tail()
    # SIGTERM stops the whole local Ray this server started: nothing of this venv keeps running
    deadline = time.monotonic() + 30
    while (left := _processes_of(installed)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"processes left after SIGTERM: {left}\n{srv.tail()}"


def _processes_of(venv_dir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(venv_dir)], capture_output=True, text=True).stdout
    return out.splitlines()
