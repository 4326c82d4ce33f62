"""One real `samo-serve run` (local Ray + Serve over HTTP) per test session, stopped with SIGTERM."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from samo_serve.ops.ports import free_port
from testkit.local_services import PostgresServer, RedisServer, missing_binaries
from testkit.server_process import ServerProcess, samo_serve_command

START_TIMEOUT_S = 600


def ray_processes() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


class Server(ServerProcess):
    """``samo-serve run`` on free ports; ``data_dir`` is its request log's folder."""

    def __init__(
        self, port: int, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.metrics_port = free_port()  # Ray's Prometheus endpoint for this server
        self.data_dir: Path | None = None
        super().__init__(samo_serve_command(port, self.metrics_port, *args), f"http://127.0.0.1:{port}", log_path, env)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S, path: str = "/readyz") -> None:
        super().wait_ready(timeout_s, path)

    def stop(self, timeout_s: float = 120, kill_group: bool = False) -> int:
        # kill_group off: what samo-serve leaves behind must show up in run_server's check, not be reaped here
        return super().stop(timeout_s, kill_group)


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


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[RedisServer, PostgresServer]]:
    """Private Redis and PostgreSQL servers on free ports, one pair per test module (some kill them)."""
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: scripts/test.sh installs redis-server and postgresql")
    redis, postgres = RedisServer().start(), PostgresServer().start()
    yield redis, postgres
    redis.stop()
    postgres.remove()
