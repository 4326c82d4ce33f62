"""What a connection may hold before the app sees a request: a deadline for headers, a cap on their
bytes, a cap on connections (issue 30 #5, #8, #9).

uvicorn closes a keep-alive connection that idles after a response, but nothing else before the app:
a connection that never sends a request stays open for good (~20,100 of them took the ingress's last
file descriptor, and ``/healthz`` with it), headers that trickle in are waited for for ever, and
unfinished headers are buffered whatever their size (300 unfinished 1 MiB headers: +304 MB). The app's
own checks (431 past ``limits.max_header_*``, 408 for a stalled body) run only once headers are complete.

:func:`guarded_protocol` is uvicorn's httptools protocol with three more rules, each answered with the
service's JSON error and ``Connection: close``:

- **408 HEADER_TIMEOUT**: a connection's first request line and headers must be complete within
  ``limits.header_timeout_s`` of the connection opening; a later request's, within one to two times that
  of its first byte. Between requests, the server's keep-alive timeout applies, as before.
- **431 HEADERS_TOO_LARGE**: more than ``limits.max_header_bytes`` + 16 KiB (the request line and each
  header's framing) arrived and the headers are still not complete.
- **503 TOO_MANY_CONNECTIONS**: the process holds ``limits.max_connections`` already (``Retry-After: 1``).

Both servers use it: ``--single-process`` passes it to uvicorn; Ray's direct ingress gets it in each
Ingress replica (``samo_serve.ops.launcher.harden_direct_ingress``). One timer per connection, which
ticks every ``header_timeout_s``; per request, three flags set by the parser's callbacks and a check of
each chunk received (a timer per request was ~3% of an L1 hit's samples:
``samo_serve.http.routes_predict.WATCH_AFTER_S``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from samo_serve.errors import HeadersTooLarge, HeaderTimeout, SamoError, TooManyConnections
from samo_serve.http.responses import dumps
from samo_serve.settings import LimitSettings

__all__ = ["HEADER_FRAMING_BYTES", "guarded_protocol", "raw_error"]

#: on-the-wire allowance over ``max_header_bytes`` (names and values only) for the request line and
#: each header's ``: `` and CRLF
HEADER_FRAMING_BYTES = 16_384


def raw_error(error: SamoError) -> bytes:
    """``error`` as a whole HTTP/1.1 response that closes the connection: for answers before any ASGI
    request exists (no request id: none was assigned)."""
    body = dumps(error.to_dict(""))
    head = [
        f"HTTP/1.1 {error.http_status} {_REASONS[error.http_status]}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name.lower()}: {value}" for name, value in error.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def guarded_protocol(limits: LimitSettings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with ``limits``' connection rules (the module docstring)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        header_timeout_s = limits.header_timeout_s
        max_connections = limits.max_connections
        max_header_wire_bytes = limits.max_header_bytes + HEADER_FRAMING_BYTES
        _timer: asyncio.TimerHandle | None = None
        # the parser's place: messages begun on this connection, inside one, its headers complete
        _begun = 0
        _in_message = False
        _headers_done = False
        _header_bytes = 0
        #: the message (by _begun) whose headers the last tick saw awaited
        _awaited_at_tick = -1

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > self.max_connections:
                self._refuse(TooManyConnections("too many connections; retry shortly", headers={"Retry-After": "1"}))
                return
            self._timer = self.loop.call_later(self.header_timeout_s, self._tick)

        def _awaiting_headers(self) -> bool:
            """Nothing sent yet, or a request begun whose headers are not complete. (Between requests the
            server's keep-alive timeout applies; a body, even one the app answered early, is not headers.)"""
            return self._begun == 0 or (self._in_message and not self._headers_done)

        def data_received(self, data: bytes) -> None:
            awaiting = self._awaiting_headers()
            super().data_received(data)
            # only a chunk that began and ended while headers were awaited is all request line and headers
            if awaiting and self._awaiting_headers():
                self._header_bytes += len(data)
                if self._header_bytes > self.max_header_wire_bytes and not self.transport.is_closing():
                    self._refuse(HeadersTooLarge(f"headers over {self.max_header_wire_bytes} bytes"))

        def on_message_begin(self) -> None:
            self._begun += 1
            self._in_message, self._headers_done, self._header_bytes = True, False, 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def _tick(self) -> None:
            """Every ``header_timeout_s`` per connection; nothing per request. The first request's headers
            are due one deadline after the connection opened; a later request's, when they are still
            awaited at two ticks in a row."""
            self._timer = None
            if self.transport.is_closing():
                return
            if self._awaiting_headers() and (self._begun == 0 or self._begun == self._awaited_at_tick):
                message = f"the request headers did not arrive within {self.header_timeout_s:g} s"
                self._refuse(HeaderTimeout(message))
                return
            self._awaited_at_tick = self._begun if self._awaiting_headers() else -1
            self._timer = self.loop.call_later(self.header_timeout_s, self._tick)

        def _refuse(self, error: SamoError) -> None:
            if self.cycle is None or self.cycle.response_complete:  # else a response is being written: just close
                self.transport.write(raw_error(error))
            self.transport.close()

    return GuardedHttpToolsProtocol
