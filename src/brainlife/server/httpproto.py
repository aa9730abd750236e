"""The HTTP/1.1 protocol `bl serve` hands uvicorn: its httptools protocol with the request line
and the header section bounded.

Both are parsed before any ASGI middleware runs, and uvicorn's httptools protocol appends URL
and header fragments without bound (a 100 MB request line is held in full), then answers a parse
error with a plain-text 400. Here parsing stops at `MAX_REQUEST_LINE_BYTES` / `MAX_HEADER_BYTES`
and the answer is JSON like every other error: 414 for the URL, 431 for the headers, 400 for the
rest. URLs within the parser's bound but over `Settings.max_url_bytes` are refused (414) by
`limits.RequestLimits`.

It also offers large plain-HTTP bodies to be read from the socket in a worker thread
(`socketbody`: the upload route's fast path; `_SocketBody` below is the loop's side of it).

A module of its own, imported only by `bl serve`: uvicorn is then imported only by the server
process, and the class is found by name when uvicorn starts worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from brainlife.server import socketbody
from brainlife.server.limits import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES, url_too_long

_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes of a request's head (request line and headers) as they arrive: the
    parser holds a header value whole before it hands it over, so counting finished headers
    would not bound memory."""

    _refusal: tuple[int, str] | None = None
    _in_head = False
    _head_bytes = 0
    _body_seen = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._refusal = None
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_seen = 0
        super().on_headers_complete()
        length = _plain_length(self.headers)
        if (
            length is not None
            and length >= socketbody.MIN_BYTES
            and self.cycle is not None
            and self.cycle.scope is self.scope
            and self.transport.get_extra_info("sslcontext") is None
            and self.transport.get_extra_info("socket") is not None
        ):
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[socketbody.EXTENSION] = _SocketBody(self, self.cycle, length)

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_LINE_BYTES + MAX_HEADER_BYTES:
                self._refusal = (
                    431,
                    "The request's headers are too large: this server accepts at most "
                    f"{MAX_HEADER_BYTES} bytes of headers.",
                )
                self.send_400_response("")
                return
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_REQUEST_LINE_BYTES:
            self._refusal = (414, url_too_long(len(self.url), MAX_REQUEST_LINE_BYTES))
            raise ValueError("URL too long")  # stops the parser; send_400_response follows

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            status, message = 400, f"{msg} It is not HTTP/1.1 that this server can parse."
        else:
            status, message = self._refusal
        body = json.dumps({"message": message}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


def _plain_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length when it is given by one plain `Content-Length` (no chunking)."""
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or any(name == b"transfer-encoding" for name, _ in headers):
        return None
    value = lengths[0].strip()
    return int(value) if value.isdigit() and len(value) <= 20 else None


class _HeldFlow:
    """The flow control of a request whose body was read from the socket: reading stays
    paused for good (the parser is behind the socket; the connection closes after the answer);
    writing is the connection's."""

    read_paused = True

    def __init__(self, flow: Any) -> None:
        self._flow = flow

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._flow, name)


_readers = 0
_pool: ThreadPoolExecutor | None = None


class _SocketBody:
    """`socketbody.SocketBody` for one request of a `BoundedHttpToolsProtocol`."""

    def __init__(self, protocol: BoundedHttpToolsProtocol, cycle: Any, length: int) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self._length = length
        self._taken = False

    def _takeable(self) -> bool:
        cycle = self._cycle
        return (
            not self._taken
            and _readers < socketbody.MAX_READERS
            and self._protocol.cycle is cycle  # no later request parsed on this connection
            and cycle.more_body  # the body is not all parsed already
            and not cycle.disconnected
            and not cycle.response_started
            and not self._protocol.transport.is_closing()
        )

    async def read_into(self, sink: socketbody.Sink) -> bool:
        global _readers, _pool
        if not self._takeable():
            return False
        self._taken = True
        protocol, cycle = self._protocol, self._cycle
        protocol.flow.pause_reading()  # uvloop reads no more: every byte it read was parsed
        first = bytes(cycle.body)
        left = self._length - protocol._body_seen
        cycle.body = bytearray()
        cycle.flow = _HeldFlow(cycle.flow)
        cycle.keep_alive = False
        cycle.more_body = False
        cycle.message_event.set()  # a later `receive` answers "no more body" at once
        if cycle.waiting_for_100_continue:
            cycle.waiting_for_100_continue = False
            protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        fd = protocol.transport.get_extra_info("socket").fileno()
        stop = threading.Event()

        def read() -> int:
            if first:  # what the parser had read with the headers
                sink(memoryview(first))
            if left <= 0:
                return len(first)
            return len(first) + socketbody.read_socket(
                fd, left, sink, stop, socketbody.IDLE_TIMEOUT
            )

        if _pool is None:
            _pool = ThreadPoolExecutor(socketbody.MAX_READERS, thread_name_prefix="bl-body")
        future = asyncio.get_running_loop().run_in_executor(_pool, read)
        _readers += 1
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()  # never leave a thread writing a file its request is closing
            with contextlib.suppress(BaseException):
                await future
            raise
        finally:
            _readers -= 1
        return True
