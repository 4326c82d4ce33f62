"""A server as a subprocess (``samo-serve run``, a peer, a plain uvicorn): start, wait until ready, stop.

The e2e tests and every bench start servers this way. Each runs in its own process group, so a
stop can reach whatever it started; output goes to a log file whose tail explains a failed start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ROOT", "ServerProcess", "descendants", "samo_serve_command"]

ROOT = Path(__file__).resolve().parent.parent


def samo_serve_command(port: int, metrics_port: int, *args: str) -> list[str]:
    """``samo-serve run`` on a port of its own, with its own Prometheus port: two can run side by side."""
    return [sys.executable, "-m", "samo_serve.ops.cli", "run", "--port", str(port), "--metrics-port", str(metrics_port),
            *args]  # fmt: skip


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # the command name is in parentheses and may hold spaces: ppid is the 2nd field after it
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class ServerProcess:
    def __init__(
        self, cmd: list[str], url: str, log_path: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
    ) -> None:
        self.url = url
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 600, path: str = "/readyz") -> None:
        """Until ``path`` answers 200.

        Raises:
            RuntimeError: the server exited first (with its log's tail).
            TimeoutError: not ready in time (with its log's tail).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.url}: server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{path}", timeout=5).status_code == 200:
                    return
            time.sleep(1)
        raise TimeoutError(f"{self.url}: not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def stop(self, timeout_s: float = 120, kill_group: bool = True) -> int:
        """SIGTERM, then SIGKILL to the group after ``timeout_s``; the exit code.

        ``kill_group`` also kills what the server left running in its group after a clean exit (LitServe's
        workers do); the e2e tests turn it off to check that samo-serve leaves nothing behind itself.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if kill_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return int(self.proc.returncode)

    def tail(self, n: int = 60) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
