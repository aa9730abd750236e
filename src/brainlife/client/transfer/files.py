"""One file, fetched so that it can always be resumed and is never trusted unverified.

The bytes go to ``<file>.bl-part``; a sidecar ``<file>.bl-part.json`` records what they are a
prefix of (expected size and sha256, the server's ETag). A later run that finds both continues with
``Range: bytes=<n>-`` and ``If-Range: <etag>`` (so a changed file is sent whole, never appended to
old bytes), hashing the prefix already on disk first. Only when the size and sha256 match is the
part renamed to its final name. Dropped connections and restarts of the server are retried with
backoff, each time from where the bytes stopped.

A server whose files live in an object store answers a file with a redirect (307) to a
presigned URL of the store: the bytes are fetched from there, without our token (the URL is the
credential), resumed there with ``Range`` after a cut, and when the URL has expired (the store
answers 403, or 400) a fresh one is asked of our server. ``If-Range`` is not sent to the store
(its ETags are not ours); the sha256 checked at the end pins the content instead. A large file
(``segments.worth_it``) from a store reached over the network (``segments.streams_for``) is
fetched from the presigned URL in pieces over several connections (``segments``): its sidecar
then also lists the byte ranges written.

Retries here are only for bodies cut off after the server answered (at most ``attempts``); a
server that does not answer is waited for inside ``HttpClient.stream``, and every pause goes
through the client's run-wide :class:`~brainlife.client._http.Liveness` clock, which ends the
retrying (:class:`GaveUp`) once the server has been away for ``give_up_after`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from brainlife.client._exceptions import (
    ApiError,
    BrainlifeError,
    Cancelled,
    ChecksumMismatch,
    GaveUp,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)
from brainlife.client._http import CHUNK_SIZE, HttpClient, RetryPolicy, content_range
from brainlife.client.transfer import segments
from brainlife.client.transfer.names import atomic_write, part_path, sidecar_path
from brainlife.client.transfer.writes import disk_full_on_write, write_all, write_size

__all__ = ["FetchResult", "fetch_file", "hash_file"]


@dataclass
class FetchResult:
    size: int
    sha256: str
    #: body bytes received from the server for this file (what the network carried)
    transferred: int
    #: bytes of a partial file from an earlier run that were kept, not fetched again
    resumed: int


def hash_file(path: Path, *, limit: int | None = None) -> tuple[Any, int]:
    """(sha256 object, bytes read) of a file's first ``limit`` bytes (all by default)."""
    digest = hashlib.sha256()
    done = 0
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while limit is None or done < limit:
            want = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - done)
            n = fh.readinto(view[:want])
            if not n:
                break
            digest.update(view[:n])
            done += n
    return digest, done


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_sidecar(path: Path, doc: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(doc).encode())


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _resume_point(
    part: Path, side: Path, size: int | None, sha256: str | None
) -> tuple[int, str, list[list[int]] | None]:
    """Bytes of a usable partial file, its ETag and, for a part fetched in pieces
    (``segments``), the byte ranges it holds; (0, "", None) after discarding an unusable one.
    A part in pieces continues from its complete prefix (the rest is in ``ranges``)."""
    doc = _read_sidecar(side)
    try:
        have = part.stat().st_size
    except OSError:
        have = -1
    etag = str((doc or {}).get("etag") or "")
    ranges = None
    if doc is not None and "ranges" in doc:
        ranges = segments.valid_ranges(doc["ranges"], size)
        if ranges is None or sha256 is None or have < 0:
            _discard(part, side)
            return 0, "", None
        have = segments.prefix_of(ranges)
    usable = (
        doc is not None
        and have >= 0
        and doc.get("size") == size
        and doc.get("sha256") == sha256
        and (size is None or have <= size)
        # what the bytes are a prefix of must be pinned: by the sha256 we will check at the
        # end, or else (no manifest: a task's .tar.gz) by a strong ETag sent back as If-Range
        and (sha256 is not None or (bool(etag) and not etag.startswith("W/")))
    )
    if not usable:
        _discard(part, side)
        return 0, "", None
    return have, etag, ranges


def fetch_file(
    http: HttpClient,
    token: str,
    route: str,
    target: Path,
    *,
    size: int | None,
    sha256: str | None,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    policy: RetryPolicy | None = None,
    on_response: Callable[[Any], None] | None = None,
    check_head: Callable[[bytes], None] | None = None,
    headers: dict[str, str] | None = None,
) -> FetchResult:
    """Fetch ``route`` into ``target`` (resuming a partial file of the same content), verify its
    size and sha256 when known, and rename it into place.

    Without a sha256 (a task's files and archives against a server without our manifests) a
    partial file is continued only when the server gave a strong ETag, and the end is checked
    against the answer's length. ``on_response(resp)`` sees every answer before its body is read
    (it may raise to refuse it); ``check_head(first bytes)`` vets the finished file before it is
    renamed (a raise discards it). ``headers`` go with every request (e.g. ``If-None-Match``:
    ``on_response`` then deals with a 304).

    Retries follow ``policy`` (the client's by default): cut-off bodies are continued, a file
    that arrives corrupt is fetched again from zero ``checksum_retries`` times; ``on_bytes``
    then hears ``-n`` for the ``n`` bytes it was told about and that were discarded."""
    policy = policy or http.policy
    part, side = part_path(target), sidecar_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(policy.checksum_retries + 1):
        fetch = _FileFetch(http, token, route, part, side, size, sha256, policy)
        try:
            result = fetch.run(on_bytes, cancel, on_response, headers)
            _check(target.name, result, size, sha256)
        except ChecksumMismatch:
            _discard(part, side)
            if on_bytes is not None and fetch.told:
                on_bytes(-fetch.told)
            if attempt == policy.checksum_retries:
                raise
            continue
        if check_head is not None:
            _vet(part, side, check_head)
        os.replace(part, target)
        side.unlink(missing_ok=True)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _check(name: str, res: FetchResult, size: int | None, sha256: str | None) -> None:
    if (size is not None and res.size != size) or (
        sha256 is not None and res.sha256 != sha256.lower()
    ):
        raise ChecksumMismatch(
            f"{name} arrived corrupt (expected {size} bytes with sha256 "
            f"{(sha256 or '?')[:12]}…, got {res.size} bytes with {res.sha256[:12]}…)."
        )


def _vet(part: Path, side: Path, check_head: Callable[[bytes], None]) -> None:
    with open(part, "rb") as fh:
        head = fh.read(512)
    try:
        check_head(head)
    except BaseException:
        _discard(part, side)
        raise


class _FileFetch:
    """One pass of :func:`fetch_file`: from the resume point to the end of the body, continuing
    cut-off bodies as ``policy`` allows. ``offset`` bytes are in the part and in ``digest``."""

    def __init__(
        self,
        http: HttpClient,
        token: str,
        route: str,
        part: Path,
        side: Path,
        size: int | None,
        sha256: str | None,
        policy: RetryPolicy,
    ) -> None:
        self.http, self.token, self.route, self.policy = http, token, route, policy
        self.part, self.side, self.size, self.sha256 = part, side, size, sha256
        self.offset, self.etag, self.ranges = _resume_point(part, side, size, sha256)
        self.digest: Any = hashlib.sha256()
        if self.offset:
            self.digest, self.offset = hash_file(part, limit=self.offset)
        self.resumed = self.offset
        if self.ranges is not None:  # a part in pieces: everything it holds is kept
            self.resumed = sum(b - a for a, b in self.ranges)
        self._url_lock = threading.Lock()
        #: the store does not serve this file in pieces (``segments.NoRanges``)
        self.one_stream = False
        self.transferred = 0
        self.failures = 0
        #: the presigned URL our server redirected to (None: ask our server)
        self.direct: str | None = None
        #: redirects and refused presigned URLs since bytes last arrived
        self.hops = 0
        #: bytes told to ``on_bytes`` (taken back when the file is fetched again)
        self.told = 0

    def _start_over(self) -> None:
        self.offset, self.digest, self.resumed, self.ranges = 0, hashlib.sha256(), 0, None

    def run(
        self,
        on_bytes: Callable[[int], None] | None,
        cancel: threading.Event | None,
        on_response: Callable[[Any], None] | None,
        headers: dict[str, str] | None,
    ) -> FetchResult:
        liveness = self.http.liveness

        def received(n: int) -> None:
            liveness.alive()
            self.told += n
            if on_bytes is not None:
                on_bytes(n)

        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("Interrupted.")
            if self.size is not None and self.offset == self.size and self.sha256 is not None:
                break  # everything is already here; verified by the caller
            if self._in_pieces(received, cancel, headers):
                break
            try:
                self._request(received, cancel, on_response, headers)
            except _Redirected:
                self._hop()
                continue
            except (ApiError, PermissionDenied) as exc:
                if self.direct is not None and exc.status in (400, 403):
                    # the presigned URL expired (or was refused): ask our server for a new one
                    self.direct = None
                    self._hop()
                    continue
                if exc.status != 416:
                    raise
                # our partial is longer than the file: start again
                _discard(self.part, self.side)
                self._start_over()
                self.etag = ""
                self._failed(exc, None)
                continue
            except _Partial as cut:
                self.offset += cut.written
                self.transferred += cut.written
                if cut.written:
                    self.hops = 0
                self._failed(cut.error, cancel, "connection lost")
                continue
            except GaveUp:
                raise
            except ServerUnavailable as exc:
                self._failed(exc, cancel, "server error")
                continue
            break
        return FetchResult(
            size=self.offset,
            sha256=self.digest.hexdigest(),
            transferred=self.transferred,
            resumed=self.resumed,
        )

    def _in_pieces(
        self,
        received: Callable[[int], None],
        cancel: threading.Event | None,
        headers: dict[str, str] | None,
    ) -> bool:
        """Fetch the rest from the presigned URL in pieces (``segments``) when the file is
        worth it, the store is one more connections pay for (``segments.streams_for``; a part
        an earlier run left in pieces is continued in pieces) and no other file of this process
        is; False: go on with one stream."""
        if (
            self.direct is None
            or self.one_stream
            or headers
            or not segments.worth_it(self.size, self.sha256)
        ):
            return False
        streams = segments.streams_for(self.direct)
        if streams < 2 and self.ranges is None:
            return False
        assert self.size is not None and self.sha256 is not None
        slot = segments.slot()
        if not slot.acquire(blocking=False):
            return False
        try:
            ranges = self.ranges if self.ranges is not None else []
            if self.ranges is None and self.offset:
                ranges = [[0, self.offset]]

            def save(done: list[list[int]]) -> None:
                _write_sidecar(self.side, self._sidecar(done))

            save(ranges)  # before any byte lands past the prefix

            def got(n: int) -> None:
                self.hops = 0
                received(n)

            fetch = segments.Segmented(
                self.http, self.part, self.size, ranges, self.digest, self.offset,
                self.direct, self._fresh_url, save, got, self.policy, streams,
            )  # fmt: skip
            try:
                fetch.run(cancel)
            except segments.NoRanges:
                self.one_stream = True
                self.ranges = fetch.ranges
                prefix = segments.prefix_of(fetch.ranges)
                self.digest, self.offset = hash_file(self.part, limit=prefix)
                self.transferred += fetch.transferred
                return False
            self.offset = self.size
            self.transferred += fetch.transferred
            return True
        finally:
            slot.release()

    def _sidecar(self, ranges: list[list[int]] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"size": self.size, "sha256": self.sha256, "etag": self.etag}
        if ranges is not None:
            doc["ranges"] = ranges
        return doc

    def _fresh_url(self, stale: str) -> str:
        """A new presigned URL from our server, in place of ``stale`` (which the store
        refused): asked once, whichever stream of a file in pieces finds it refused first."""
        with self._url_lock:
            if self.direct is not None and self.direct != stale:
                return self.direct
            self._hop()
            with self.http.stream(self.route, token=self.token, follow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status not in (301, 302, 303, 307, 308) or not location:
                    raise segments.NoRanges  # our server sends the bytes itself now
                resp.drain_conn()
            self.direct = urljoin(self.http.url(self.route), location)
            return self.direct

    def _hop(self) -> None:
        """A redirect followed, or a refused presigned URL dropped: a server that keeps
        redirecting without any byte arriving is a broken one, not one to retry forever."""
        self.hops += 1
        if self.hops > 2 * self.policy.attempts + 2:
            raise ProtocolError(
                "The server keeps redirecting this file to a URL that does not deliver it "
                "(an expired or refused presigned URL of its object store?)."
            )

    def _failed(
        self, error: BrainlifeError, cancel: threading.Event | None, reason: str | None = None
    ) -> None:
        """One more failure: raise ``error`` past the policy's attempts, else pause (when
        ``reason`` is given) through the run-wide clock."""
        self.failures += 1
        if self.failures >= self.policy.attempts:
            raise error
        if reason is not None:
            self.http.liveness.wait(self.policy.cut_pause(self.failures), reason, cancel)

    def _request(
        self,
        received: Callable[[int], None],
        cancel: threading.Event | None,
        on_response: Callable[[Any], None] | None,
        headers: dict[str, str] | None,
    ) -> None:
        sent = dict(headers or {})
        if self.offset:
            sent["Range"] = f"bytes={self.offset}-"
            if self.etag:
                sent["If-Range"] = self.etag
        direct = self.direct
        if direct is not None:
            # the store's validators are not ours: the sha256 at the end pins the content
            sent.pop("If-Range", None)
            sent.pop("If-None-Match", None)
            opened = self.http.stream(direct, headers=sent, cancel=cancel, absolute=True)
        else:
            opened = self.http.stream(
                self.route, token=self.token, headers=sent, cancel=cancel, follow_redirects=False
            )
        with opened as resp:
            if direct is None and resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    raise ProtocolError("The server answered a redirect without a Location.")
                self.direct = urljoin(self.http.url(self.route), location)
                raise _Redirected
            if on_response is not None and direct is None:
                on_response(resp)
            start = 0
            if resp.status == 206:
                start = content_range(resp.headers.get("Content-Range", ""))[0] or 0
            if start != self.offset:  # a whole body (200), or not the range we asked for
                if start != 0:
                    raise ServerUnavailable("The server sent an unexpected byte range.")
                self._start_over()
            if direct is None:
                self.etag = resp.headers.get("ETag", "") or self.etag
            if self.ranges is not None:
                # a part in pieces, continued by one stream: cut to its prefix, so that its
                # length is its prefix again (what a plain sidecar promises)
                with contextlib.suppress(FileNotFoundError):
                    os.truncate(self.part, self.offset)
                self.ranges, self.resumed = None, min(self.resumed, self.offset)
                _write_sidecar(self.side, self._sidecar())
            elif self.offset == 0:
                _write_sidecar(
                    self.side, {"size": self.size, "sha256": self.sha256, "etag": self.etag}
                )
            got = _stream_into(
                resp, self.part, self.offset, self.digest, received, cancel, self.size
            )
            self.offset += got
            self.transferred += got
            self.hops = 0


class _Redirected(Exception):
    """Our server sent the file's bytes elsewhere (``_FileFetch.direct``): fetch them there."""


class _Partial(Exception):
    """A body cut off after ``written`` bytes were safely appended."""

    def __init__(self, written: int, error: BrainlifeError) -> None:
        super().__init__(str(error))
        self.written = written
        self.error = error


def _body_readinto(resp: Any) -> Callable[[memoryview], int]:
    """The ``readinto`` that fills our buffer with the fewest copies.

    urllib3's ``HTTPResponse.readinto`` is ``read(len(b))`` then a copy: http.client reads into a
    fresh buffer, copies it to ``bytes``, urllib3 copies that into ours (three copies of every
    byte, about 0.2 s per GiB on a 2-core VM). When the body is plain (no Content-Encoding to
    decode, not chunked, a known length), http.client's own ``readinto`` fills our buffer
    straight from the socket and stops at the length; urllib3 would add nothing but those
    copies. A short body then reads 0 early, which ``_stream_into`` reports as cut off
    (Content-Length check).
    """
    import http.client

    fp = getattr(resp, "_fp", None)
    encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
    if (
        isinstance(fp, http.client.HTTPResponse)
        and encoding == "identity"
        and not fp.chunked
        and fp.length is not None
    ):
        return fp.readinto
    return resp.readinto


#: buffers of one transfer: one being received and written while up to two more are hashed
PIPELINE_BUFFERS = 3


def hash_thread_pays(length: int | None) -> bool:
    """Whether a body of ``length`` bytes (None: unknown) is hashed in a second thread.

    Only a body longer than one buffer, and only while a core is free for the thread: the
    1-minute load average leaves at least one of the cores this process may run on idle
    (:func:`usable_cores`: its CPU affinity, which ``taskset`` or a container may narrow, not
    every core of the machine). On a busy machine
    the second thread gains nothing (no idle core to run on) and costs a wake-up per buffer
    handed over, each one waiting for the scheduler: with a 2-core VM at load 6-9, a 1 GiB
    presigned download hashed inline took 4.0 s where the thread took 4.4 s (median of 5
    interleaved runs, curl 3.0 s; bench/bench_s3.py, docs/decisions.md). Idle, the thread
    overlaps the hash with the next receive and write (1.10 s instead of 1.30 s to /dev/shm).
    Where the load is unknown (no ``os.getloadavg``) the thread is used whenever there are two
    cores or more.
    """
    if length is not None and length <= CHUNK_SIZE:
        return False
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores > 1
    return cores > 1 and load <= cores - 1


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system has one (Linux),
    else every core of the machine. A process pinned to one core has no second core for a
    hash thread, however many the machine has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Hasher:
    """sha256 of the body in a second thread, one buffer behind the receive and the write.

    The transfer thread fills a buffer from the socket, writes it, and hands it over; the hash
    (hashlib releases the GIL for large buffers) then overlaps the next receive and write: the
    two threads' shares are about 0.4 s + 0.6 s and 0.6 s per GiB, so on two cores a 1 GiB
    ``bl data download`` to /dev/shm takes about 1.10 s instead of 1.30 s. At most
    ``PIPELINE_BUFFERS`` preallocated buffers exist per transfer, so memory stays flat. With
    ``threaded=False`` (a body that fits in one buffer, or a machine with no idle core:
    :func:`hash_thread_pays`) the hash runs inline: no thread, one buffer.
    ``close`` waits until every byte handed over is hashed, so the digest always covers exactly
    the bytes written, whatever stops the transfer.
    """

    def __init__(self, digest: Any, *, threaded: bool) -> None:
        self._digest = digest
        count = PIPELINE_BUFFERS if threaded else 1
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(memoryview(bytearray(CHUNK_SIZE)))
        self._full: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="bl-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (chunk := self._full.get()) is not None:
            if self._error is None:
                try:
                    self._digest.update(chunk)
                except BaseException as exc:  # reported by the next buffer()/close()
                    self._error = exc
            self._free.put(_whole(chunk))

    def buffer(self) -> memoryview:
        """A whole buffer that is free to be filled (waits for the hash of an earlier one)."""
        view = self._free.get()
        self._raise()
        return view

    def submit(self, chunk: memoryview) -> None:
        """Hash ``chunk`` (a slice of a buffer from ``buffer()``) after the earlier ones."""
        if self._thread is None:
            self._digest.update(chunk)
            self._free.put(_whole(chunk))
        else:
            self._full.put(chunk)

    def close(self) -> None:
        """Wait until everything submitted is hashed; stop the thread; raise its error."""
        if self._thread is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _whole(chunk: memoryview) -> memoryview:
    return memoryview(chunk.obj)


def _stream_into(
    resp: Any,
    part: Path,
    offset: int,
    digest: Any,
    on_bytes: Callable[[int], None] | None,
    cancel: threading.Event | None,
    size: int | None,
) -> int:
    """Append the body to ``part`` (truncated to ``offset`` first), hashing as it goes."""
    from http.client import HTTPException

    from urllib3.exceptions import HTTPError

    written = 0
    expected = resp.headers.get("Content-Length")
    length = int(expected) if expected and expected.isdigit() else None
    with disk_full_on_write(part, size):
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
    hasher: _Hasher | None = None
    try:
        with disk_full_on_write(part, size):
            if os.fstat(fd).st_size != offset:
                # only when needed: ext4 (auto_da_alloc) flushes a file truncated to zero when it is
                # closed, which cost about 1 s per GiB written to a fresh part file
                os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            piece = write_size(fd)
            readinto = _body_readinto(resp)
            hasher = _Hasher(digest, threaded=hash_thread_pays(length))
            while True:
                view = hasher.buffer()
                if cancel is not None and cancel.is_set():
                    raise Cancelled("Interrupted.")
                try:
                    n = readinto(view)
                except (HTTPError, HTTPException, OSError) as exc:
                    hasher.close()
                    raise _Partial(
                        written, ServerUnavailable(f"The download was cut off ({exc}).")
                    ) from exc
                if not n:
                    break
                chunk = view[:n]
                write_all(fd, chunk, piece)
                written += n
                hasher.submit(chunk)
                if on_bytes is not None:
                    on_bytes(n)
            hasher.close()
    finally:
        try:
            if hasher is not None:
                with contextlib.suppress(Exception):
                    hasher.close()  # already closed, or another error is on its way out
        finally:
            os.close(fd)
    if length is not None and written < length:
        raise _Partial(written, ServerUnavailable("The download was cut off."))
    return written
