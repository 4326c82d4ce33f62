"""One real `samo-serve run` (local Ray + Serve over HTTP) per test session, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_processes() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


class Server:
    def __init__(
        self, port: int, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir: Path | None = None
        self.metrics_port = free_port()  # Ray's Prometheus endpoint for this server
        self.log_path = log_path
        self._log = log_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "samo_serve.cli",
                "run",
                "--port",
                str(port),
                "--metrics-port",
                str(self.metrics_port),
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"samo-serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"samo-serve not ready after {START_TIMEOUT_S} s:\n{self.tail()}")

    def stop(self, timeout_s: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def tail(self, n: int = 60) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def run_server(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Start `samo-serve run`, yield it once ready, stop it with SIGTERM and check it left nothing behind."""
    before = ray_processes()
    folder = tmp_path_factory.mktemp("serve")
    # The embedded request log (SQLite) and spill files of this server, not the user's data dir.
    env = {"SAMO_DATA_DIR": str(folder / "data"), **(env or {})}
    srv = Server(free_port(), folder / "samo-serve.log", env, args)
    srv.data_dir = Path(env["SAMO_DATA_DIR"])
    try:
        srv.wait_ready()
        yield srv
    finally:
        code = srv.stop()
    # SIGTERM must stop cleanly: exit 0 and no Ray processes left behind.
    assert code == 0, srv.tail()
    deadline = time.monotonic() + 30
    while ray_processes() - before and time.monotonic() < deadline:
        time.sleep(1)
    assert not ray_processes() - before, "Ray processes left after SIGTERM"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from run_server(tmp_path_factory)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
