"""A multi-node Ray cluster on one machine: a head and worker nodes, each its own ``ray start --block``.

Each node is a real raylet with its own processes, so killing one is what losing a machine looks like
to Ray and Serve: its replicas die with it and are rescheduled on the nodes left. Used by the
multi-node e2e test and ``bench/multi_node_kill.py``. Every port is a free one (6379 is Redis's here,
and 52365 the default agent port of any other Ray on the machine), and the nodes' environment lets
their workers import ``samo_serve`` and ``deployments`` from this checkout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from samo_serve.ops.ports import free_port
from testkit.drills import replica_pids
from testkit.server_process import descendants

__all__ = ["LocalRayCluster", "RayNode"]

ROOT = Path(__file__).resolve().parent.parent

#: Node death is noticed in about 3 s instead of Ray's default ~15-30 s (health checks every 1 s).
FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class RayNode:
    """One ``ray start --block`` process and everything it started (raylet, workers, replicas)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self._log = log_path.open("w")
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        self.proc = subprocess.Popen(
            [ray, "start", "--block", "--disable-usage-stats", *args],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: kill() takes the whole node
        )
        self.log_path = log_path

    def processes(self) -> set[int]:
        return descendants(self.proc.pid) | {self.proc.pid}

    def replica_pids(self, deployment: str, app: str = "samo") -> list[int]:
        """This node's replica processes of a deployment."""
        return replica_pids(deployment, app, under=self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the node and all it started, at once: a machine lost, not a graceful drain."""
        _kill_all(self.processes())
        self.proc.wait(30)

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM (``ray start --block`` then stops its processes); SIGKILL what is left after the timeout."""
        pids = self.processes()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.5)
        _kill_all(pids)
        if self.proc.poll() is None:
            self.proc.wait(10)
        self._log.close()

    def tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


class LocalRayCluster:
    """A head node (``num_cpus`` logical CPUs) plus workers added with :meth:`add_worker`.

    Args:
        folder: for the nodes' logs.
        head_cpus: logical CPUs of the head (it also runs the Serve controller and HTTP proxy).
        env: extra environment for every node (the Ray settings samo-serve run would use, say).
    """

    def __init__(self, folder: Path, head_cpus: int = 1, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.gcs_port = free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        # Ray 2.60 `ray start --head` turns token auth on; every node and driver must then send the token
        # (~/.ray/auth_token, which the head writes), and they only do so with RAY_AUTH_MODE=token.
        self.env = {**os.environ, **FAST_FAILURE_DETECTION, "RAY_AUTH_MODE": "token", **(env or {}),
                    "PYTHONPATH": pythonpath}  # fmt: skip
        self.env.pop("RAY_ADDRESS", None)
        self.workers: list[RayNode] = []
        self.head = RayNode(
            "head",
            ["--head", "--port", str(self.gcs_port), "--node-ip-address", "127.0.0.1", "--num-cpus", str(head_cpus),
             "--include-dashboard", "false", "--ray-client-server-port", str(free_port()), *self._node_ports()],
            self.env, folder / "head.log",
        )  # fmt: skip

    def _node_ports(self) -> list[str]:
        return [
            "--dashboard-agent-listen-port", str(free_port()),
            "--metrics-export-port", str(free_port()),
            "--node-manager-port", str(free_port()),
            "--object-manager-port", str(free_port()),
        ]  # fmt: skip

    def add_worker(self, num_cpus: int = 1) -> RayNode:
        node = RayNode(
            f"worker-{len(self.workers) + 1}",
            ["--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
             *self._node_ports()],
            self.env, self.folder / f"worker-{len(self.workers) + 1}.log",
        )  # fmt: skip
        self.workers.append(node)
        return node

    def wait_for_nodes(self, n: int, timeout_s: float = 120) -> None:
        """Until ``n`` nodes are alive (``ray status`` against this cluster's GCS)."""
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        deadline = time.monotonic() + timeout_s
        out = ""
        while time.monotonic() < deadline:
            for node in (self.head, *self.workers):
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray node {node.name} exited with {node.proc.returncode}:\n{node.tail()}")
            done = subprocess.run(
                [ray, "status", "--address", self.address], capture_output=True, text=True, env=self.env, timeout=60
            )
            out = done.stdout
            active = out.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out else ""
            if active.count("node_") >= n:
                return
            time.sleep(1)
        raise TimeoutError(f"{n} Ray nodes not up in {timeout_s:.0f} s:\n{out}")

    def stop(self) -> None:
        for node in (*self.workers, self.head):
            if node.proc.poll() is None or node.processes() - {node.proc.pid}:
                node.stop()
        # `ray start --head` points /tmp/ray/ray_current_cluster at this cluster; once it is gone, a plain
        # ray.init() or `ray status` on this machine would wait for it forever.
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        with contextlib.suppress(OSError):
            if current.read_text().strip().endswith(f":{self.gcs_port}"):
                current.unlink()
