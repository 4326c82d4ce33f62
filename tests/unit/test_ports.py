"""samo_serve.ops.ports: the checks ``samo-serve run`` makes before starting anything."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from samo_serve.ops.ports import PortConflict, check_distinct, check_port_free, free_port, ray_fixed_ports


def _time_wait_on(port: int) -> bool:
    """Whether a TIME-WAIT connection (state 06 in /proc/net/tcp) has ``port`` as its local port."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "06" and int(local.split(":")[1], 16) == port:
            return True
    return False


@pytest.fixture
def port_left_in_time_wait() -> int:
    """A port whose server closed a connection first (as Prometheus' exporter does after each scrape) and
    then stopped: only a TIME-WAIT connection is left on it, for a minute."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and Prometheus' exporter do
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.close()  # the server closes first: the TIME-WAIT end is on its port
            assert client.recv(1) == b""
    deadline = time.monotonic() + 5
    while not _time_wait_on(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _time_wait_on(port), "no TIME-WAIT connection: the scenario was not set up"
    return port


def test_a_port_with_only_a_time_wait_connection_is_free(port_left_in_time_wait: int) -> None:
    # A bind without SO_REUSEADDR is refused here (the old check's mistake) ...
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind(("127.0.0.1", port_left_in_time_wait))
    # ... but the servers samo-serve starts bind with it, so the port is free for them: a quick restart works.
    check_port_free("127.0.0.1", port_left_in_time_wait)


@pytest.mark.parametrize("listen_on", ["127.0.0.1", "0.0.0.0"])
def test_a_listening_port_is_taken(listen_on: str) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server that holds it would
        taken.bind((listen_on, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port} is already in use .* --metrics-port"):
            check_port_free("127.0.0.1", port, what="--metrics-port")


def test_distinct_ports_pass_and_a_shared_one_names_both_choosers() -> None:
    check_distinct({"--port": 8000, "--metrics-port": 8080})
    with pytest.raises(PortConflict, match=r"^--port and --metrics-port are both port 8080; give each its own$"):
        check_distinct({"--port": 8080, "--metrics-port": 8080})


def test_rays_fixed_ports_follow_its_env_overrides() -> None:
    ports = ray_fixed_ports({"DASHBOARD_METRIC_PORT": "9999"})
    assert ports["Ray's dashboard metrics (DASHBOARD_METRIC_PORT)"] == 9999
    assert ports["Ray's autoscaler metrics (AUTOSCALER_METRIC_PORT)"] == 44217


def test_rays_fixed_ports_are_the_installed_rays() -> None:
    """ports.py copies three numbers out of Ray (importing it would cost seconds before a one-line error)."""
    pytest.importorskip("ray")
    from ray._private.ray_constants import DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    assert sorted(ray_fixed_ports({}).values()) == sorted(
        [AUTOSCALER_METRIC_PORT, DASHBOARD_METRIC_PORT, DEFAULT_DASHBOARD_AGENT_LISTEN_PORT]
    )


def test_free_port_skips_the_ports_to_avoid(monkeypatch: pytest.MonkeyPatch) -> None:
    handed_out = iter([8080, 8080, 41000])  # what the OS offers in turn

    class FakeSocket(socket.socket):
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", next(handed_out))

    monkeypatch.setattr(socket, "socket", FakeSocket)
    assert free_port(avoid={8080}) == 41000
