"""One large file from a presigned URL in pieces, over several connections at once (issue #11).

One HTTP stream from an object store goes at the store's pace for one request (radosgw reads
its stripes one after another), and on a busy machine one connection gets one share of the
CPU: four ranged GETs of the same object arrive sooner than one GET of it (a 1 GiB object on
the 2-core VM: 7 s instead of 8-13 s with curl, docs/decisions.md). So a file of at least
:data:`SEGMENTED_MIN` bytes whose size and sha256 are known, once our server has redirected it
to a presigned URL, is fetched as :data:`PIECE`-byte pieces (``Range: bytes=a-b``) by
:data:`STREAMS` connections, each piece written in place (``pwrite``) into the one part file
``<file>.bl-part``. Pieces are taken in file order, so the completed prefix follows close
behind the pieces in flight: a thread hashes it in order (reading it back from the page cache;
hashlib releases the GIL), and the sha256 is ready a piece after the last byte.

What a kill leaves is described by the same sidecar as always, ``<file>.bl-part.json``: with
``ranges`` (``[[start, end], ...]``, the byte ranges known written), updated after each piece
and only after its bytes are in the part. A rerun fetches only the holes; the prefix it finds
is hashed first, as a plain part's is. A part with ``ranges`` that is continued by one stream
(a smaller file, a store that ignores ``Range``) is first cut to its prefix, so a plain
part's rule (its length is its prefix) holds again. Whatever the pieces, the size and sha256
are checked at the end (``files.fetch_file``): a corrupt byte sends the file again from zero.

Each connection continues its own cut-off piece from where it stopped, at most ``attempts``
times (``RetryPolicy``), pausing through the run-wide liveness clock; an expired presigned URL
(the store answers 400 or 403) is replaced by a fresh one asked of our server, once for all
connections.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brainlife.client._exceptions import (
    ApiError,
    Cancelled,
    ChecksumMismatch,
    GaveUp,
    PermissionDenied,
    ServerUnavailable,
)
from brainlife.client._http import CHUNK_SIZE, HttpClient, RetryPolicy, content_range
from brainlife.client.transfer.writes import disk_full_on_write, write_size

__all__ = [
    "PIECE",
    "SEGMENTED_MIN",
    "STREAMS",
    "NoRanges",
    "Segmented",
    "prefix_of",
    "streams_for",
    "worth_it",
]

#: files this large (and larger) are fetched in pieces; a smaller one is done before extra
#: connections pay for themselves
SEGMENTED_MIN = 64 << 20
#: bytes per ranged GET (and the grain of what a kill keeps)
PIECE = 16 << 20
#: connections per file from a store reached over the network
STREAMS = 4
#: the environment variable that overrides :func:`streams_for` (an integer; 1: one stream)
STREAMS_VARIABLE = "BL_DOWNLOAD_STREAMS"
#: the most connections per file the variable may ask for (each is a thread and a socket)
MAX_STREAMS = 16
#: bytes hashed per read of the part
_HASH_READ = 4 << 20

#: one segmented file at a time per process (its connections come on top of the pool's own)
_SLOT = threading.Lock()
_grown: set[tuple[int, int]] = set()

Ranges = list[list[int]]


class NoRanges(Exception):
    """The store (or our server) does not serve this file in pieces: fetch it in one stream."""


def worth_it(size: int | None, sha256: str | None) -> bool:
    """Whether a file is fetched in pieces: a known size of at least :data:`SEGMENTED_MIN`
    and a known sha256 (which pins what the pieces add up to), where the system writes and
    reads at an offset (``pwrite``, ``preadv``: not on Windows)."""
    return (
        size is not None
        and size >= SEGMENTED_MIN
        and sha256 is not None
        and hasattr(os, "pwrite")
        and hasattr(os, "preadv")
    )


def streams_for(url: str) -> int:
    """Connections for one large file from the presigned ``url``: ``BL_DOWNLOAD_STREAMS`` when
    set to a whole number (1: never in pieces; at most :data:`MAX_STREAMS`), else
    :data:`STREAMS` for a store reached over the network and 1 for a store on this machine (a
    loopback address or ``localhost``).

    Several connections hide the network's latency and a store's per-request pace (what a
    remote S3 gives one GET); a store on this machine has neither to hide, and its CPU is the
    client's: there more streams only add work (ranged requests, reading the part back to hash
    it) to cores they share. Measured on the 2-core VM with radosgw on loopback, idle: one
    stream 2.65-2.87 s for 1 GiB, four 2.91-3.05 s, curl 2.23-2.44 s (docs/decisions.md)."""
    given = os.environ.get(STREAMS_VARIABLE, "").strip()
    if given.isdigit() and int(given) >= 1:
        return min(int(given), MAX_STREAMS)
    import ipaddress
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return STREAMS
    if host == "localhost" or host.endswith(".localhost"):
        return 1
    try:
        return 1 if ipaddress.ip_address(host).is_loopback else STREAMS
    except ValueError:  # a name: resolving it here would cost a lookup per file
        return STREAMS


def valid_ranges(value: Any, size: int | None) -> Ranges | None:
    """The sidecar's ``ranges`` merged, or None when absent or not well formed (the part is
    then not trusted at all)."""
    if not isinstance(value, list) or size is None:
        return None
    out: Ranges = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        ):
            return None
        a, b = item
        if not 0 <= a < b <= size:
            return None
        out.append([a, b])
    return _merged(out)


def prefix_of(ranges: Ranges) -> int:
    """Bytes from the start that ``ranges`` cover without a gap."""
    return ranges[0][1] if ranges and ranges[0][0] == 0 else 0


def _merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _holes(ranges: Ranges, size: int) -> list[tuple[int, int]]:
    """The pieces still to fetch: the gaps of ``ranges`` in ``[0, size)``, cut at most
    :data:`PIECE` bytes each, in file order."""
    out: list[tuple[int, int]] = []
    pos = 0
    for a, b in [*ranges, [size, size]]:
        while pos < a:
            end = min(a, pos + PIECE)
            out.append((pos, end))
            pos = end
        pos = max(pos, b)
    return out


def _pwrite_all(fd: int, data: memoryview, offset: int, size: int) -> None:
    pos, end = 0, len(data)
    while pos < end:
        pos += os.pwrite(fd, data[pos : pos + size], offset + pos)


def _grow_pool(http: HttpClient, streams: int) -> None:
    """Room in the pool for our extra connections (so none is discarded with a warning)."""
    if (id(http), streams) in _grown:
        return
    kw = getattr(http.pool, "connection_pool_kw", None)
    if isinstance(kw, dict):
        http.ensure_pool_size(int(kw.get("maxsize", 1)) + streams)
    _grown.add((id(http), streams))


class Segmented:
    """One file in pieces (see the module docstring). ``ranges`` are the bytes an earlier run
    left (from the sidecar), ``digest`` covers the first ``hashed`` of them; ``url`` is the
    presigned URL and ``refresh(stale_url)`` gives a fresh one; ``save(ranges)`` writes the
    sidecar; ``received(n)`` hears every body byte."""

    def __init__(
        self,
        http: HttpClient,
        part: Path,
        size: int,
        ranges: Ranges,
        digest: Any,
        hashed: int,
        url: str,
        refresh: Callable[[str], str],
        save: Callable[[Ranges], None],
        received: Callable[[int], None],
        policy: RetryPolicy,
        streams: int = STREAMS,
    ) -> None:
        self.http, self.part, self.size, self.policy = http, part, size, policy
        self.streams = streams
        self.digest, self.hashed = digest, hashed
        self.url, self.refresh, self.save, self._received = url, refresh, save, received
        self.ranges = _merged([list(r) for r in ranges])
        self.todo = deque(_holes(self.ranges, size))
        #: body bytes received in this run
        self.transferred = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._hash_error: BaseException | None = None

    # -- the run --------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None) -> None:
        """Fetch every hole and hash the whole file into ``digest``; raise what stopped it
        (the pieces completed so far stay recorded)."""
        from brainlife.client.transfer.workers import run_parallel

        with disk_full_on_write(self.part, self.size):
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.todo and os.fstat(fd).st_size > self.size:
                os.ftruncate(fd, self.size)
            streams = min(self.streams, len(self.todo))
            if streams > 1:
                _grow_pool(self.http, streams)
            hasher = threading.Thread(target=self._hash, args=(fd,), name="bl-sha256", daemon=True)
            hasher.start()
            failure: BaseException | None = None
            try:
                work = [lambda: self._stream(fd, cancel) for _ in range(streams)]
                failure = run_parallel(work, jobs=max(1, streams), cancel=self._stop)
            finally:
                with self._changed:
                    if failure is not None or prefix_of(self.ranges) < self.size:
                        self._stop.set()  # the hash stops at what is complete
                    self._changed.notify_all()
                hasher.join()
            if failure is not None:
                raise failure
            if cancel is not None and cancel.is_set():
                raise Cancelled("Interrupted.")
            if self._hash_error is not None:
                raise self._hash_error
            if self.hashed != self.size:  # a stream stopped without an error: not expected
                raise ServerUnavailable("The download stopped before its end.")
        finally:
            os.close(fd)

    def _next(self) -> tuple[int, int] | None:
        with self._lock:
            return self.todo.popleft() if self.todo and not self._stop.is_set() else None

    def _stream(self, fd: int, cancel: threading.Event | None) -> None:
        """One connection: pieces in file order until none is left."""
        buf = memoryview(bytearray(CHUNK_SIZE))
        piece_size = write_size(fd)
        failures = 0
        while (piece := self._next()) is not None:
            start, end = piece
            pos = start
            while pos < end:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("Interrupted.")
                if self._stop.is_set():
                    raise Cancelled("Stopped.")
                url = self.url
                try:
                    pos = self._get(fd, url, pos, end, buf, piece_size, cancel)
                except _Cut as cut:
                    pos = cut.pos
                    failures += 1
                    if failures >= self.policy.attempts:
                        raise cut.error from None
                    self.http.liveness.wait(
                        self.policy.cut_pause(failures), "connection lost", cancel
                    )
                except (ApiError, PermissionDenied) as exc:
                    if exc.status in (400, 403):  # the presigned URL expired: a fresh one
                        self.url = self.refresh(url)  # (once for all streams)
                        continue
                    if exc.status == 416:
                        raise self._short(None) from exc
                    raise
                except GaveUp:
                    raise
                except ServerUnavailable:  # the store answered 5xx after the request retries
                    failures += 1
                    if failures >= self.policy.attempts:
                        raise
                    self.http.liveness.wait(self.policy.cut_pause(failures), "server error", cancel)
            self._done(start, end)

    def _get(
        self,
        fd: int,
        url: str,
        pos: int,
        end: int,
        buf: memoryview,
        piece_size: int,
        cancel: threading.Event | None,
    ) -> int:
        """One ranged GET of ``[pos, end)`` into the part; returns where the bytes stopped
        (``end``), :class:`_Cut` when the body stops early."""
        from http.client import HTTPException

        from urllib3.exceptions import HTTPError

        from brainlife.client.transfer.files import _body_readinto

        headers = {"Range": f"bytes={pos}-{end - 1}"}
        with self.http.stream(url, headers=headers, cancel=cancel, absolute=True) as resp:
            first, total = content_range(resp.headers.get("Content-Range", ""))
            if resp.status != 206:
                raise NoRanges
            if total is not None and total != self.size:
                raise self._short(total)
            if first != pos:
                raise ServerUnavailable("The store sent an unexpected byte range.")
            readinto = _body_readinto(resp)
            while pos < end:
                if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                    raise Cancelled("Interrupted.")
                want = min(len(buf), end - pos)
                try:
                    n = readinto(buf[:want])
                except (HTTPError, HTTPException, OSError) as exc:
                    raise _Cut(pos, f"The download was cut off ({exc}).") from exc
                if not n:
                    raise _Cut(pos, "The download was cut off.")
                with disk_full_on_write(self.part, self.size):
                    _pwrite_all(fd, buf[:n], pos, piece_size)
                pos += n
                self._got(n)
        return pos

    def _short(self, total: int | None) -> ChecksumMismatch:
        held = f"{total} bytes" if total is not None else "fewer bytes"
        return ChecksumMismatch(
            f"{self.part.name.removesuffix('.bl-part')} arrived corrupt (expected {self.size} "
            f"bytes, the store holds {held})."
        )

    def _got(self, n: int) -> None:
        with self._lock:
            self.transferred += n
        self._received(n)

    def _done(self, start: int, end: int) -> None:
        """A piece is in the part: record it (sidecar), and wake the hash when the prefix
        grew."""
        with self._changed:
            self.ranges = _merged([*self.ranges, [start, end]])
            self.save(self.ranges)
            self._changed.notify_all()

    # -- the hash -------------------------------------------------------------------------
    def _hash(self, fd: int) -> None:
        """sha256 of the completed prefix, in order, as it grows (until all is hashed or the
        run stops), read back from the part (the page cache: a copy, but never a mapping that
        another process's truncation could turn into SIGBUS)."""
        buf = memoryview(bytearray(_HASH_READ))
        try:
            while self.hashed < self.size:
                with self._changed:
                    while prefix_of(self.ranges) <= self.hashed and not self._stop.is_set():
                        self._changed.wait()
                    ready = prefix_of(self.ranges)
                if ready <= self.hashed:
                    return  # stopped
                while self.hashed < ready:
                    want = min(_HASH_READ, ready - self.hashed)
                    n = os.preadv(fd, [buf[:want]], self.hashed)
                    if n <= 0:
                        raise ServerUnavailable(f"{self.part} shrank while it was written.")
                    self.digest.update(buf[:n])
                    self.hashed += n
        except BaseException as exc:
            self._hash_error = exc
            self._stop.set()


class _Cut(Exception):
    """A piece's body stopped at ``pos`` (the bytes before it are written)."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.error = ServerUnavailable(message)


def slot() -> threading.Lock:
    """The process's one segmented-file slot (``acquire(blocking=False)``; others go one
    stream)."""
    return _SLOT
