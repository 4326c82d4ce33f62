"""Private Redis and PostgreSQL servers on free loopback ports, for tests, benches and fault drills.

Each lives in its own temporary folder and can be stopped, killed and started again on the same port
with its data kept (PostgreSQL), which is what the fault tests do to them. They never touch a machine's
shared services. Needs the Debian packages ``redis-server`` and ``postgresql`` (scripts/test.sh
installs them where absent).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from samo_serve.ops.ports import free_port

__all__ = ["PostgresServer", "RedisServer", "missing_binaries"]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def missing_binaries() -> list[str]:
    wanted = {"redis-server": shutil.which("redis-server"), "initdb": _pg_bin("initdb"), "pg_ctl": _pg_bin("pg_ctl")}
    return [name for name, path in wanted.items() if path is None]


def _wait_port(port: int, timeout_s: float, up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            is_up = s.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still {'closed' if up else 'open'} after {timeout_s} s")


class RedisServer:
    """``redis-server`` with no persistence on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        """SIGKILL: Redis dies the way a crashed or unplugged one does."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            _wait_port(self.port, 10, up=False)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb) with trust auth, database ``samo``, on a free port.

    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="samo-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/samo"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # the Debian package creates this user
            shutil.chown(self.dir, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout_s: float = 120) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=timeout_s)

    def start(self) -> PostgresServer:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
        if not self.data.exists():
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        _wait_port(self.port, 30)
        if not (self.dir / "created").exists():
            createdb = _pg_bin("createdb") or "createdb"
            self._run(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "samo")
            (self.dir / "created").touch()
        return self

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: like a crash (connections cut, no checkpoint); ``fast``: a clean shutdown."""
        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl is not None and (self.data / "postmaster.pid").exists():
            self._run(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")
            _wait_port(self.port, 30, up=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
