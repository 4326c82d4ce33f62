"""A SIGKILLed direct-ingress server's successor can bind its port (issue 30 #4).

Ray 2.60's replica binds its direct-ingress port without SO_REUSEADDR; the killed server's connections
sit in TIME_WAIT for a minute, and Linux refuses the successor's bind until they are gone (Serve then
blocks the port for good). Each server here runs Ray's own ``start_asgi_http_server`` as the replica
calls it, in a process of its own, with or without ``harden_direct_ingress``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from samo_serve.ops.ports import free_port

SERVER = """
import asyncio, sys
from ray.serve._private import replica
from ray.serve.config import HTTPOptions
from samo_serve.ops.launcher import harden_direct_ingress
from samo_serve.settings import LimitSettings
if sys.argv[2] == "patched":
    assert harden_direct_ingress(LimitSettings())

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    loop = asyncio.get_running_loop()
    try:  # as the replica calls it (replica.py, _maybe_start_direct_ingress_servers)
        task, server = await replica.start_asgi_http_server(
            app, HTTPOptions(host="127.0.0.1", port=int(sys.argv[1])), event_loop=loop, enable_so_reuseport=False
        )
    except RuntimeError as exc:
        print("bind failed:", exc.__cause__, flush=True)
        return
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    print("serving", flush=True)
    await task

asyncio.run(main())
"""


def start(port: int, mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def kill_with_a_connection_open(port: int, mode: str) -> None:
    """A server that answered a keep-alive request, SIGKILLed: its side of the connection is left in TIME_WAIT."""
    proc, line = start(port, mode)
    assert line == "serving"
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"\r\n\r\nok"):  # headers and body may come in two reads
            answer += client.recv(1024)
        assert answer.startswith(b"HTTP/1.1 200")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        client.settimeout(5)
        assert client.recv(1024) == b""  # the kernel closed the server's side first
    time.sleep(0.2)


@pytest.mark.parametrize(("mode", "outcome"), [("patched", "serving"), ("as Ray ships it", "bind failed")])
def test_a_killed_servers_port_can_be_bound_again(mode: str, outcome: str) -> None:
    port = free_port()
    kill_with_a_connection_open(port, mode)
    proc, line = start(port, mode)
    try:
        assert line.startswith(outcome), line
    finally:
        proc.kill()
        proc.wait()


def test_a_live_listener_still_owns_its_port() -> None:
    """SO_REUSEADDR, not SO_REUSEPORT: a second server on a port that is being served is refused."""
    port = free_port()
    first, line = start(port, "patched")
    try:
        assert line == "serving"
        second, line = start(port, "patched")
        second.wait(timeout=30)
        assert line.startswith("bind failed"), line
    finally:
        first.kill()
        first.wait()
