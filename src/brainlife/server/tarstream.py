"""A data object's tar, laid out in advance and streamed from the content store.

brainlife serves a data object as an uncompressed POSIX tar of its files at the archive root
(brainlife-server.md §2.3). We keep no tar on disk: the tar is a pure function of the object's
manifest (path, size, mode, sha256 of each file, in `pos` order) and its create date, so it is
computed on demand as a list of segments:

- `header`: tar header bytes made by the standard library (`tarfile.TarInfo.tobuf`, PAX format,
  so long or non-ASCII names and sizes over 8 GiB work);
- `blob`: a byte range of a content-store blob (the file's data);
- `zeros`: block padding, and the two zero blocks that end the archive.

Knowing every segment's length up front gives the exact `Content-Length`, lets any byte range
`[start, end)` be streamed by seeking into the right blobs (HTTP Range / resume), and makes the
bytes identical on every request. Headers use a fixed mtime (the object's create date), the mode
from the manifest, uid/gid 0 and empty user/group names.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, TypeAlias

BLOCK = tarfile.BLOCKSIZE  # 512
DEFAULT_CHUNK = 1024 * 1024
#: What the streams yield: bytes, or a view of a freshly filled buffer (never reused).
Chunk: TypeAlias = bytes | memoryview
#: Bumped whenever the layout rules change, so that ETags of old layouts stop matching.
LAYOUT_VERSION = b"brainlife-tar-1"


class BlobSource(Protocol):
    """What the streamer needs from a content store (`store.ByteStore` has it)."""

    def local_path(self, sha256: str) -> Path | None: ...

    def read_range(
        self, sha256: str, start: int, end: int, *, chunk_size: int = ...
    ) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class TarMember:
    """One regular file of the tar."""

    path: str
    size: int
    sha256: str
    mode: int = 0o644


@dataclass(frozen=True)
class Segment:
    offset: int
    length: int
    kind: Literal["header", "blob", "zeros"]
    data: bytes = b""  # header bytes
    sha256: str = ""  # blob


def epoch_seconds(when: datetime | None) -> int:
    """A datetime as whole seconds since the epoch; naive datetimes are UTC (SQLite)."""
    if when is None:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int(when.timestamp()))


def member_header(
    path: str,
    size: int,
    *,
    mode: int = 0o644,
    mtime: int = 0,
    type: bytes = tarfile.REGTYPE,
) -> bytes:
    """The header block(s) of one member, in PAX format (an extended header precedes the ustar
    header when the name or size does not fit)."""
    info = tarfile.TarInfo(path)
    info.size = size if type == tarfile.REGTYPE else 0
    info.mtime = int(mtime)
    info.mode = mode & 0o7777
    info.type = type
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


#: the largest number a ustar header field of 11 octal digits holds (size, mtime)
_USTAR_MAX = 8**11 - 1


def header_length(path: str, size: int, *, mode: int = 0o644, mtime: int = 0) -> int:
    """`len(member_header(path, size, mode=mode, mtime=mtime))` of a regular file, without
    building the header when it is one plain ustar block (an ASCII name of at most 100
    characters, size and mtime within 11 octal digits)."""
    if path.isascii() and len(path) <= 100 and 0 <= size <= _USTAR_MAX and 0 <= mtime <= _USTAR_MAX:
        return BLOCK
    return len(member_header(path, size, mode=mode, mtime=mtime))


def tar_size(members: Iterable[TarMember], mtime: int) -> int:
    """`TarLayout(members, mtime).size`, computed without laying the tar out."""
    total = END_OF_ARCHIVE
    for m in members:
        total += header_length(m.path, m.size, mode=m.mode, mtime=mtime) + m.size + padding(m.size)
    return total


def padding(size: int) -> int:
    """Zero bytes after `size` bytes of data, up to the next block boundary."""
    return -size % BLOCK


END_OF_ARCHIVE = 2 * BLOCK


class TarLayout:
    """The exact byte layout of a tar of `members` (in order)."""

    def __init__(self, members: Iterable[TarMember], mtime: int) -> None:
        self.members = list(members)
        self.mtime = mtime
        segments: list[Segment] = []
        etag = hashlib.sha256(LAYOUT_VERSION)
        offset = 0
        for member in self.members:
            header = member_header(member.path, member.size, mode=member.mode, mtime=mtime)
            segments.append(Segment(offset, len(header), "header", data=header))
            offset += len(header)
            etag.update(header)
            etag.update(member.sha256.encode("ascii"))
            if member.size:
                segments.append(Segment(offset, member.size, "blob", sha256=member.sha256))
                offset += member.size
            pad = padding(member.size)
            if pad:
                segments.append(Segment(offset, pad, "zeros"))
                offset += pad
        segments.append(Segment(offset, END_OF_ARCHIVE, "zeros"))
        offset += END_OF_ARCHIVE
        self.segments = segments
        self._starts = [s.offset for s in segments]
        #: Exact length of the tar in bytes.
        self.size = offset
        #: A strong validator: the hash of every header byte and every blob digest, which
        #: together determine every byte of the tar.
        self.etag = etag.hexdigest()

    def iter_bytes(
        self,
        store: BlobSource,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> Iterator[Chunk]:
        """Yield bytes `[start, end)` of the tar in pieces of about `chunk_size` bytes.

        Small pieces (headers, padding, small files) are gathered into one chunk; large blobs
        are read `chunk_size` at a time without extra copies. Raises `OSError` if a blob is
        shorter than the manifest says (the response is then cut short, never padded).
        """
        for chunk in self.iter_chunks(store, start, end, chunk_size):
            assert chunk is not None  # only with nonblocking=True
            yield chunk

    def iter_chunks(
        self,
        store: BlobSource,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        *,
        nonblocking: bool = False,
    ) -> Iterator[Chunk | None]:
        """`iter_bytes`, and with `nonblocking`, `None` whenever the next read would wait for
        the disk (see `read_range`)."""
        end = self.size if end is None else min(end, self.size)
        if start < 0 or start > end:
            raise ValueError(f"bad range [{start}, {end}) of a {self.size}-byte tar")
        if start == end:
            return
        first = bisect.bisect_right(self._starts, start) - 1
        ahead = _Ahead.for_range(store, self.segments, first, start, end)
        buf = bytearray()
        pos = start
        try:
            for index in range(first, len(self.segments)):
                segment = self.segments[index]
                if pos >= end:
                    break
                lo = pos - segment.offset
                hi = min(segment.length, end - segment.offset)
                if segment.kind == "blob":
                    top_up = chunk_size - len(buf) if 0 < len(buf) < chunk_size else chunk_size
                    read = ahead.take(index) if ahead is not None else None
                    pieces = (
                        _read_ahead(read, nonblocking)
                        if read is not None
                        else blob_chunks(
                            store,
                            segment.sha256,
                            lo,
                            hi,
                            chunk_size=chunk_size,
                            first=top_up,
                            nonblocking=nonblocking,
                        )
                    )
                    for piece in pieces:
                        if piece is None:
                            yield None
                        elif not buf and len(piece) >= chunk_size:
                            yield piece
                        else:
                            buf += piece
                            if len(buf) >= chunk_size:
                                yield bytes(buf)
                                buf.clear()
                else:
                    if segment.kind == "header":
                        buf += segment.data[lo:hi]
                    else:
                        buf += bytes(hi - lo)
                    if len(buf) >= chunk_size:
                        yield bytes(buf)
                        buf.clear()
                pos = segment.offset + hi
            if buf:
                yield bytes(buf)
        finally:
            if ahead is not None:
                ahead.close()


@dataclass(frozen=True)
class NamedTar:
    """A tar answered as one download: its layout (bytes, size, ETag) and the name it is saved
    under (`<name>.tar`). A data object's, a selection's and a project files' tar are this."""

    layout: TarLayout
    name: str

    media_type = "application/x-tar"

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def etag(self) -> str:
        """The tar's validator (unquoted): it determines every byte."""
        return self.layout.etag

    @property
    def filename(self) -> str:
        return f"{self.name}.tar"

    def body(
        self, store: BlobSource, chunk_size: int
    ) -> Callable[[int, int, bool], Iterator[Chunk | None]]:
        """The tar's bytes `[start, end)` as `ranges.ranged_response` reads a body."""

        def read(start: int, end: int, nonblocking: bool) -> Iterator[Chunk | None]:
            return self.layout.iter_chunks(store, start, end, chunk_size, nonblocking=nonblocking)

        return read


#: blobs at most this large, of a store without local files (an object store), are read whole
#: ahead of their turn in a tar ...
AHEAD_MAX = 1024 * 1024
#: ... this many at once: a tar of many small files is one GET per file, each a network round
#: trip, which one after another would bound the tar's pace (memory: at most this many blobs)
AHEAD = 8
#: threads reading ahead for all the tars of the process together (the S3 client's connection
#: pool holds 32)
AHEAD_THREADS = 16


class _Ahead:
    """The whole small blobs of a tar's range, from a store without local files, read
    :data:`AHEAD` at a time in worker threads, in the tar's order, while the tar is written."""

    def __init__(self, store: BlobSource, wanted: list[tuple[int, str, int]]) -> None:
        from collections import deque

        self.store = store
        self.todo = deque(wanted)  # (segment index, sha256, size), in tar order
        self.running: dict[int, Future[bytes]] = {}

    @classmethod
    def for_range(
        cls, store: BlobSource, segments: list[Segment], first: int, start: int, end: int
    ) -> _Ahead | None:
        wanted = [
            (i, s.sha256, s.length)
            for i in range(first, len(segments))
            if (s := segments[i]).kind == "blob"
            and start <= s.offset
            and s.offset + s.length <= end
            and s.length <= AHEAD_MAX
        ]
        if len(wanted) < 2 or store.local_path(wanted[0][1]) is not None:
            return None  # a local store: `pread` from the page cache needs no thread
        return cls(store, wanted)

    def take(self, index: int) -> Future[bytes] | None:
        """The read of segment ``index`` when it is one of ours (the next ones started)."""
        self._fill()
        read = self.running.pop(index, None)
        self._fill()
        return read

    def _fill(self) -> None:
        while self.todo and len(self.running) < AHEAD:
            index, sha256, size = self.todo.popleft()
            self.running[index] = _ahead_pool().submit(_whole_blob, self.store, sha256, size)

    def close(self) -> None:
        """Drop the reads not yet started (a tar cut short: the client went away)."""
        for read in self.running.values():
            read.cancel()
        self.running.clear()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _ahead_pool() -> ThreadPoolExecutor:
    """The process's readers of blobs ahead, shared by every tar being written (so that many
    tars at once do not make a thread per read): :data:`AHEAD_THREADS` at most."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(AHEAD_THREADS, thread_name_prefix="bl-tar-ahead")
        return _pool


def _whole_blob(store: BlobSource, sha256: str, size: int) -> bytes:
    data = b"".join(store.read_range(sha256, 0, size, chunk_size=size))
    if len(data) != size:
        raise OSError(f"blob {sha256} is shorter than its manifest says")
    return data


def _read_ahead(read: Future[bytes], nonblocking: bool) -> Iterator[Chunk | None]:
    """A blob read ahead: its bytes once read (with `nonblocking`, a `None` first while the
    read may still wait, as `read_range` does)."""
    if nonblocking and not read.done():
        yield None
    yield read.result()


def blob_chunks(
    store: BlobSource,
    sha256: str,
    lo: int,
    hi: int,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    first: int | None = None,
    nonblocking: bool = False,
) -> Iterator[Chunk | None]:
    """Bytes `[lo, hi)` of a blob (`None` items: see `read_range`). A blob with a local path is
    read with `pread` (page-cache reads without a thread hop); any other through the store's
    `read_range`, each read in a worker thread when `nonblocking` (it may wait on a network)."""
    path = store.local_path(sha256)
    if path is not None:
        with open(path, "rb") as fh:
            yield from read_range(
                fh,
                lo,
                hi,
                chunk_size=chunk_size,
                first=first,
                nonblocking=nonblocking,
                name=f"blob {sha256}",
            )
        return
    pieces = store.read_range(sha256, lo, hi, chunk_size=chunk_size)
    try:
        while True:
            if nonblocking:
                yield None
            piece = next(pieces, None)
            if piece is None:
                return
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


_nowait_supported = hasattr(os, "RWF_NOWAIT") and hasattr(os, "preadv")


def _read_nowait(fd: int, size: int, offset: int) -> memoryview | None:
    """Read from the page cache only (Linux `preadv2(RWF_NOWAIT)`); None if that would wait."""
    global _nowait_supported
    if not _nowait_supported:
        return None
    buf = bytearray(size)
    try:
        got = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            _nowait_supported = False  # e.g. a file system without RWF_NOWAIT: use threads
            return None
        raise
    return memoryview(buf)[:got]


def read_range(
    fh: BinaryIO,
    lo: int,
    hi: int,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    first: int | None = None,
    nonblocking: bool = False,
    name: str = "",
) -> Iterator[Chunk | None]:
    """Bytes `[lo, hi)` of an open file, `chunk_size` at a time (`first` bytes the first time).

    With `nonblocking`, data already in the page cache is read at once, and `None` is yielded
    when a read would wait for the disk: the caller should then call `next()` again from a
    worker thread, where that read happens. This lets an event loop serve cached data without
    a thread hop per chunk while never blocking on a slow disk. Raises `OSError` if the file
    ends early.
    """
    try:
        fd: int | None = fh.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd = None
    if fd is None and lo:
        fh.seek(lo)
    offset = lo
    want = first or chunk_size
    while offset < hi:
        size = min(want, hi - offset)
        data: Chunk | None = None
        if fd is None:
            if nonblocking:
                yield None
            data = fh.read(size)
        else:
            if nonblocking:
                data = _read_nowait(fd, size, offset)
                if data is None:
                    yield None
            if not data:
                data = os.pread(fd, size, offset)
        if not data:
            raise OSError(f"{name or 'file'} is shorter than its manifest says")
        offset += len(data)
        want = chunk_size
        yield data


# --- bodies made while they are sent (served by `ranges.RegeneratedResponse`) -------------------


class BodyChanged(Exception):
    """A strict regenerated stream is no longer the one its ETag names (its source changed)."""


class Regenerable(Protocol):
    """A body made while it is sent, the same bytes every time it is made under `etag`."""

    @property
    def etag(self) -> str: ...

    def stream(self, *, chunk_size: int, strict: bool) -> Generator[bytes, None, bool]:
        """The whole body, about `chunk_size` bytes at a time. Returns whether the bytes are the
        ones `etag` names; with `strict`, raises `BodyChanged` as soon as they are not."""
        ...
