"""Upload bodies read straight from the socket in a worker thread (`bl serve` on plain HTTP).

Why: uvicorn hands a body to the application through the event loop, a 64-256 KiB piece at a
time (the parser's callback appends it to a buffer, reading pauses past 64 KiB, the request's
task wakes, the piece is copied out again, reading resumes). On this 2-core machine that loop
costs about 1.6 s of CPU per GiB before a byte is written or hashed, four times a `recv_into`
loop's 0.4 s; on a loaded machine CPU time is what bounds an upload (bench/RESULTS.md,
"Uploads"). So the upload route may take a large body from the socket itself: one thread call
for the whole body, `recv_into` a reused buffer, the sink (the staged file's write and sha256)
called once a megabyte.

The protocol (`httpproto.BoundedHttpToolsProtocol`) offers this as the ASGI scope extension
`EXTENSION` for a request with one `Content-Length` over `MIN_BYTES` and no
`Transfer-Encoding`, on a connection without TLS; anything else (and in-process tests, other
servers) reads through `receive` as before. Exactly `Content-Length` bytes are read, never
more, so the body's bound is the one the route checked (Content-Range), and the connection is
closed after the answer (its parser never saw those bytes). A client silent for
`IDLE_TIMEOUT` seconds, or gone, ends the read: what arrived is kept, as on the loop path. At
most `MAX_READERS` bodies are read in threads at once per process (their own threads: a
crowd of slow uploads never starves the worker threads every other route runs in); the next
ones take the loop path.

No uvicorn import here: routes use `socket_body`, only `httpproto` (imported by `bl serve`)
implements it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

#: the ASGI scope extension (`scope["extensions"][EXTENSION]`) offering a `SocketBody`
EXTENSION = "brainlife.socket_body"
#: bodies smaller than this stay on the loop path (and their connection kept alive)
MIN_BYTES = 1024 * 1024
#: bytes gathered before one call of the sink (one write, one sha256 update)
BATCH = 1024 * 1024
#: seconds without a byte after which a body read in a thread stops (what came is kept)
IDLE_TIMEOUT = 60.0
#: bodies read in threads at once, per process
MAX_READERS = 8
#: how often (seconds) a waiting read looks whether the request was cancelled
_POLL = 0.5

Sink = Callable[[memoryview], None]


class SocketBody(Protocol):
    async def read_into(self, sink: Sink) -> bool:
        """Hand the whole body to `sink` in order, from a worker thread; False (nothing read)
        when the body cannot be taken from the socket now: read it through `receive`."""
        ...


def socket_body(scope: Mapping[str, Any]) -> SocketBody | None:
    """The request's `SocketBody`, if its server offers one."""
    body: SocketBody | None = (scope.get("extensions") or {}).get(EXTENSION)
    return body


def read_socket(
    fd: int, length: int, sink: Sink, stop: threading.Event, idle_timeout: float
) -> int:
    """Read exactly `length` bytes (fewer if the peer closes, resets or stays silent for
    `idle_timeout` seconds, or `stop` is set) from socket `fd`, passing them to `sink` in order
    a `BATCH` at a time; returns how many were read. Runs in a worker thread, on a duplicate of
    the event loop's descriptor: the loop's socket stays open and non-blocking (a socket with a
    timeout is non-blocking underneath, and polls). `sink` runs in a second thread on one
    buffer while the next is received (two buffers: memory stays two batches), so receiving
    overlaps writing and hashing; its error stops the read and is raised here."""
    sock = socket.socket(fileno=os.dup(fd))
    buffers = [memoryview(bytearray(min(BATCH, length))) for _ in range(2)]
    consuming: Future[None] | None = None
    left = length
    try:
        sock.settimeout(min(_POLL, idle_timeout))
        idle = 0.0
        ended = False
        turn = 0
        while left and not ended and not stop.is_set():
            view = buffers[turn]
            filled = 0
            while filled < len(view) and left:
                try:
                    n = sock.recv_into(view[filled : filled + min(len(view) - filled, left)])
                except TimeoutError:
                    idle += sock.gettimeout() or 0.0
                    if idle >= idle_timeout or stop.is_set():
                        ended = True
                        break
                    continue
                except OSError:  # reset by the peer
                    ended = True
                    break
                if not n:
                    ended = True
                    break
                idle = 0.0
                filled += n
                left -= n
            if consuming is not None:
                consuming.result()  # in order; a full disk stops the read
            consuming = _sinks().submit(sink, view[:filled]) if filled else None
            turn ^= 1
        if consuming is not None:
            consuming.result()
        return length - left
    finally:
        if consuming is not None:  # never return while a sink runs on our buffer
            with contextlib.suppress(BaseException):
                consuming.result()
        sock.close()


_sink_pool: ThreadPoolExecutor | None = None
_sink_pool_lock = threading.Lock()


def _sinks() -> ThreadPoolExecutor:
    global _sink_pool
    with _sink_pool_lock:
        if _sink_pool is None:
            _sink_pool = ThreadPoolExecutor(MAX_READERS, thread_name_prefix="bl-body-sink")
        return _sink_pool
