"""One real `samo-serve run`, as a user runs it: what it listens on, and a Ctrl-C that stops it quietly.

Its own server (not the session one): the last test stops it and reads everything it printed.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from samo_serve.ops.ports import check_port_free, free_port
from testkit.server_process import descendants

from .conftest import Server

# /proc/net/tcp states
LISTEN, TIME_WAIT = "0A", "06"


def _address(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words, each in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip


def _sockets(state: str) -> list[tuple[int, str, int]]:
    """Sockets in ``state``: (inode, address, port); a TIME-WAIT one belongs to no process (inode 0)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state:
                hex_ip, hex_port = fields[1].split(":")
                found.append((int(fields[9]), str(_address(hex_ip)), int(hex_port, 16)))
    return found


def listening(pids: set[int]) -> dict[tuple[str, int], set[tuple[int, str]]]:
    """Every (address, port) the processes ``pids`` listen on, with those processes: (pid, name)."""
    sockets = {inode: (address, port) for inode, address, port in _sockets(LISTEN)}
    found: dict[tuple[str, int], set[tuple[int, str]]] = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # gone meanwhile
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and (inode := int(target[8:-1])) in sockets:
                found.setdefault(sockets[inode], set()).add((pid, name))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("ports")
    srv = Server(free_port(), folder / "samo-serve.log", {"SAMO_DATA_DIR": str(folder / "data")})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop(kill_group=True)  # a no-op after the Ctrl-C test; reaps everything if it failed


def test_every_port_of_the_service_is_loopback(served: Server) -> None:
    ports = listening({served.proc.pid, *descendants(served.proc.pid)})
    http_port = int(served.url.rsplit(":", 1)[1])
    assert ("127.0.0.1", http_port) in ports, ports
    assert ("127.0.0.1", served.metrics_port) in ports, ports
    # Ray's own too (GCS, raylet, workers' gRPC, dashboard agent, its metrics servers: the node's address is
    # loopback), except what Ray 2.60 hard-codes to [::]: each Serve replica's inter-deployment gRPC server
    # (behind Ray's token auth; docs/OPERATIONS.md, "Ports"), one per replica process.
    beyond = {addr: owners for addr, owners in ports.items() if not ipaddress.ip_address(addr[0]).is_loopback}
    replica_grpc = [pid for addr, owners in beyond.items() for pid, name in owners if name.startswith("ray::ServeRep")]
    assert all(addr[0] == "::" for addr in beyond), beyond
    assert sum(len(owners) for owners in beyond.values()) == len(replica_grpc) == len(set(replica_grpc)), beyond


@dataclass
class Stopped:
    code: int
    output: str
    metrics_port: int
    metrics_time_wait: bool


@pytest.fixture(scope="module")
def stopped(served: Server) -> Stopped:
    """Scrape /metrics as curl does, then Ctrl-C.

    Reading until the exporter hangs up (``Connection: close``) makes it close first, which leaves the
    TIME-WAIT end of the connection on the metrics port for a minute after samo-serve exits.
    """
    with socket.create_connection(("127.0.0.1", served.metrics_port), timeout=30) as scrape:
        scrape.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = b"".join(iter(lambda: scrape.recv(65536), b""))
    assert response.split(b"\r\n", 1)[0].endswith(b" 200 OK"), response[:200]
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group, Ray's processes included
    os.killpg(served.proc.pid, signal.SIGINT)
    try:
        code = served.proc.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"samo-serve did not stop within 120 s of SIGINT:\n{served.tail()}")
    time_wait = served.metrics_port in {port for _, _, port in _sockets(TIME_WAIT)}
    return Stopped(code, served.log_path.read_text(errors="replace"), served.metrics_port, time_wait)


def test_ctrl_c_stops_cleanly_and_quietly(stopped: Stopped) -> None:
    assert stopped.code == 0, stopped.output
    assert "samo-serve stopping (SIGINT)" in stopped.output
    assert stopped.output.rstrip().endswith("samo-serve stopped"), stopped.output
    for alarming in ("failed", "traceback", "error", "warning", "token authentication"):
        assert alarming not in stopped.output.lower(), stopped.output


def test_a_quick_restart_finds_its_ports_free(stopped: Stopped) -> None:
    assert stopped.metrics_time_wait, "no TIME-WAIT connection on the metrics port: nothing to test"
    check_port_free("127.0.0.1", stopped.metrics_port, what="--metrics-port")
