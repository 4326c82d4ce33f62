"""Connection rules before the app (samo_serve.http.connections): a real uvicorn server on loopback.

Each test would fail with uvicorn's own protocol (``PLAIN``): a connection that never sends, or whose
headers never end, is held open for good, and unfinished headers are buffered whatever their size.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from samo_serve.http.connections import HEADER_FRAMING_BYTES, guarded_protocol
from samo_serve.ops.ports import free_port
from samo_serve.settings import LimitSettings

LIMITS = LimitSettings(header_timeout_s=0.5, max_connections=16, max_header_bytes=4096)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/early":  # answers before reading its body, as a 413 on Content-Length does
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"read": size}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


async def serve(protocol: type[HttpToolsProtocol]) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True
        await task


@pytest.fixture
async def guarded() -> AsyncIterator[int]:
    async for port in serve(guarded_protocol(LIMITS)):
        yield port


@pytest.fixture
async def plain() -> AsyncIterator[int]:
    async for port in serve(HttpToolsProtocol):
        yield port


async def answer(reader: asyncio.StreamReader, within_s: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response, then the connection must be closed (EOF)."""
    raw = await asyncio.wait_for(reader.read(), within_s)  # to EOF: the server closed the connection
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_a_connection_that_never_sends_is_answered_408_and_closed(guarded: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    status, headers, body = await answer(reader)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "HEADER_TIMEOUT"
    writer.close()


async def test_with_uvicorns_own_protocol_it_stays_open(plain: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plain)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(), 4 * LIMITS.header_timeout_s)
    writer.close()


async def test_headers_that_trickle_in_past_the_deadline_are_refused(guarded: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for i in range(4):  # a header every 0.1 s until just before the deadline: none of them moves it
        await asyncio.sleep(0.1)
        writer.write(f"X-Slow-{i}: 1\r\n".encode())
    status, _, body = await answer(reader)
    assert (status, json.loads(body)["error"]["code"]) == (408, "HEADER_TIMEOUT")
    writer.close()


async def test_unfinished_headers_past_the_cap_are_refused_431(guarded: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (LIMITS.max_header_bytes + HEADER_FRAMING_BYTES + 1))
    status, _, body = await answer(reader)
    assert (status, json.loads(body)["error"]["code"]) == (431, "HEADERS_TOO_LARGE")
    writer.close()


async def test_connections_past_the_cap_are_answered_503(guarded: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", guarded) for _ in range(LIMITS.max_connections)]
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    status, headers, body = await answer(reader, within_s=LIMITS.header_timeout_s / 2)
    assert (status, json.loads(body)["error"]["code"]) == (503, "TOO_MANY_CONNECTIONS")
    assert headers["retry-after"] == "1"
    for _, w in [*held, (reader, writer)]:
        w.close()


async def test_a_kept_alive_client_with_a_large_body_is_served(guarded: int) -> None:
    """Body bytes never count as header bytes, and each request on the connection gets its own deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    body = b"x" * 1_000_000
    for _ in range(2):
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        assert json.loads(await reader.readexactly(length)) == {"read": len(body)}
        await asyncio.sleep(2 * LIMITS.header_timeout_s)  # idle between requests: keep-alive's rule, not ours
    writer.close()


async def test_a_later_request_whose_headers_stall_is_refused_after_its_own_deadline(guarded: int) -> None:
    """The connection's timer ticks every header_timeout_s: a later request whose headers are still awaited
    at two ticks in a row is answered 408, at least one deadline after its first byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    while await reader.readline() != b"\r\n":
        pass
    await reader.readexactly(len(b'{"read": 0}'))
    await asyncio.sleep(0.3 * LIMITS.header_timeout_s)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ... and no end of headers
    began = asyncio.get_running_loop().time()
    status, _, body = await answer(reader)
    assert (status, json.loads(body)["error"]["code"]) == (408, "HEADER_TIMEOUT")
    assert asyncio.get_running_loop().time() - began >= 0.9 * LIMITS.header_timeout_s  # its own deadline
    writer.close()


async def test_a_body_answered_before_it_was_read_is_not_taken_for_headers(guarded: int) -> None:
    """A 413 on Content-Length comes before the body: the 1 MB that follows is body, not unfinished headers
    (a first version answered it 431 and closed, and the client lost its 413 to the reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
    body = b"x" * 1_000_000
    writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 413")
    await asyncio.sleep(0.3)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection still serves
    while (line := await asyncio.wait_for(reader.readline(), 10)) and not line.startswith(b"HTTP/1.1 "):
        pass
    assert line.startswith(b"HTTP/1.1 200"), line
    writer.close()
