"""A task folder as brainlife sends it: the gzip tar of a walk (`tar --exclude='.*' -hcz *`: the
folder's contents, no leading folder; brainlife-server.md §3.2), made while it is sent yet
byte-stable, so that an interrupted download can be resumed with `Range` / `If-Range`:

- the bytes are a function of the walk alone (each entry's relative path, type, size, mode and
  whole-second mtime, in `walk` order) and of the file contents: tar headers are PAX with
  uid/gid 0 and empty user/group names; the gzip header is written here (no name, mtime 0, XFL 0,
  OS 3) around raw deflate at a fixed level, window and memLevel. zlib's output does not depend
  on how its input is split as long as nothing is flushed, so the read size does not matter
  (a test checks this);
- `FolderTgz.etag` is a strong tag computed from the walk, without reading a byte of file data:
  a hash of `TGZ_FORMAT` (everything else that decides the bytes, zlib included) and of every
  entry's path, type, size, mode, mtime_ns, ctime_ns and inode. Any write changes a file's
  mtime/ctime, so a changed folder gets a new tag (as far as the file system's clock can tell two
  writes apart);
- a stream served under a tag must be the stream that tag names. Each file is checked when it is
  opened and after it is read (same inode, size, mtime and ctime as in the walk). A `strict`
  stream (ranges, measuring) raises `FolderChanged` on any difference; the plain whole-body
  stream keeps brainlife's leniency (a file that grew is cut, one that shrank is padded, so a
  running task's folder still downloads) and only the next request's tag tells the change. A file
  that is no longer the one the walk checked (another inode, e.g. a path swapped for a link) is
  never read: its bytes are zeros.

Ranges of it are served by `ranges.RegeneratedResponse` (`FolderTgz` is a `tarstream.Regenerable`).

The same tar is made from task outputs kept in an object store (`storetaskfiles`): the entries
then come from the database, `FolderTgz.read` gives a file's bytes, and the tag hashes each
file's sha256 instead of its inode (blobs never change, so such a stream is always intact).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import sys
import tarfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from brainlife.server.tarstream import END_OF_ARCHIVE, BodyChanged, member_header, padding
from brainlife.server.taskwalk import Entry, walk

log = logging.getLogger("brainlife.server.taskfiles")

#: gzip level of folder downloads (brainlife runs `tar -z`, i.e. gzip's default 6).
GZIP_LEVEL = 6
#: deflate's other parameters, fixed rather than left to zlib's defaults
_WINDOW_BITS = zlib.MAX_WBITS
_MEM_LEVEL = 8
#: gzip member header: magic, deflate, no flags (no file name), mtime 0, XFL 0, OS 3 (Unix, as
#: gzip writes it). Written by us, not by zlib's gzip wrapper, whose OS byte depends on the build.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"


def _zlib_fingerprint() -> str:
    """A digest of this zlib's output for a fixed sample, so that two zlib builds that compress
    differently under one version string (forks, SIMD builds) most likely get different tags."""
    sample = b"".join(b"%d %d brainlife\n" % (i, i * i % 9973) for i in range(4000))
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -_WINDOW_BITS, _MEM_LEVEL)
    return hashlib.sha256(deflate.compress(sample) + deflate.flush()).hexdigest()[:16]


#: Everything besides the walk that decides a folder download's bytes. It is hashed into every
#: folder ETag: bump the leading version whenever the byte layout changes, so that old tags stop
#: matching and a client resuming across the change gets the whole new body.
TGZ_FORMAT = (
    f"brainlife-task-tgz-1;level={GZIP_LEVEL};wbits={_WINDOW_BITS};memlevel={_MEM_LEVEL};"
    f"zlib={zlib.ZLIB_RUNTIME_VERSION}/{_zlib_fingerprint()};"
    f"python={sys.version_info.major}.{sys.version_info.minor}"
)


class FolderChanged(BodyChanged):
    """A file of the folder changed after the walk: a `strict` stream is no longer the one its
    ETag names."""


@dataclass(frozen=True)
class FolderTgz:
    """One walk of a folder: what its .tar.gz holds, in order, and the ETag of those bytes."""

    entries: tuple[Entry, ...]
    etag: str
    #: a file's bytes, `(entry, chunk_size)` → iterator (None: open `entry.real` on disk)
    read: Callable[[Entry, int], Iterator[bytes]] | None = None

    def stream(self, *, chunk_size: int, strict: bool = False) -> Generator[bytes, None, bool]:
        """The .tar.gz, produced while it is sent, in pieces of about `chunk_size` bytes.
        Returns whether every file was as the walk saw it; with `strict`, raises
        `FolderChanged` as soon as one is not."""
        return _stream(self.entries, chunk_size=chunk_size, strict=strict, read=self.read)


def snapshot_folder(root: str, folder: str) -> FolderTgz:
    """Walk `folder` (stat only, no file is read) and tag the result."""
    entries = tuple(walk(root, folder))
    return FolderTgz(entries, folder_etag(entries))


def folder_etag(entries: tuple[Entry, ...]) -> str:
    """`"tgz-<32 hex digits>"`: a hash of `TGZ_FORMAT` and of every entry's path, type, size, mode,
    mtime_ns, ctime_ns and inode (NUL-separated: no path holds a NUL)."""
    digest = hashlib.sha256(TGZ_FORMAT.encode("ascii") + b"\0")
    for e in entries:
        digest.update(e.rel.encode("utf-8", "surrogateescape"))
        kind = "d" if e.is_dir else "f"
        digest.update(
            f"\0{kind}\0{e.size}\0{e.mode}\0{e.mtime_ns}\0{e.ctime_ns}\0{e.ino}\0".encode()
        )
    return f'"tgz-{digest.hexdigest()[:32]}"'


def _stream(
    entries: tuple[Entry, ...],
    *,
    chunk_size: int,
    strict: bool,
    read: Callable[[Entry, int], Iterator[bytes]] | None = None,
) -> Generator[bytes, None, bool]:
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -_WINDOW_BITS, _MEM_LEVEL)
    crc = 0
    isize = 0
    intact = True
    out = bytearray(GZIP_HEADER)

    def feed(data: bytes | bytearray) -> None:
        nonlocal crc, isize
        crc = zlib.crc32(data, crc)
        isize += len(data)
        out.extend(deflate.compress(data))

    for entry in entries:
        if entry.is_dir:
            feed(
                member_header(
                    entry.rel, 0, mode=entry.mode, mtime=entry.mtime, type=tarfile.DIRTYPE
                )
            )
        else:
            feed(member_header(entry.rel, entry.size, mode=entry.mode, mtime=entry.mtime))
            pieces = (
                _file_bytes(entry, chunk_size, strict=strict)
                if read is None
                else _read_bytes(entry, read, chunk_size, strict=strict)
            )
            try:
                while True:
                    try:
                        data = next(pieces)
                    except StopIteration as done:
                        intact = intact and done.value
                        break
                    feed(data)
                    if len(out) >= chunk_size:
                        yield bytes(out)
                        out.clear()
            finally:
                pieces.close()
            feed(bytes(padding(entry.size)))
        if len(out) >= chunk_size:
            yield bytes(out)
            out.clear()
    feed(bytes(END_OF_ARCHIVE))
    out += deflate.flush()
    out += struct.pack("<II", crc, isize & 0xFFFFFFFF)
    yield bytes(out)
    return intact


def _file_bytes(entry: Entry, chunk_size: int, *, strict: bool) -> Generator[bytes, None, bool]:
    """Exactly `entry.size` bytes of a file (the size its tar header announced): a file that
    grew is cut, one that shrank is padded with zeros so the tar stays readable, and a path that
    now opens another file (another inode) gives zeros only. Returns whether the bytes are those
    of the file as the walk saw it (unchanged when opened and after reading); with `strict`,
    raises `FolderChanged` instead of returning False."""
    remaining = entry.size
    same = False
    try:
        with open(entry.real, "rb") as fh:
            st = os.fstat(fh.fileno())
            same = entry.unchanged(st)
            if strict and not same:
                raise FolderChanged(f"{entry.rel} changed after the folder was listed")
            if not entry.same_file(st):
                log.warning("%s is no longer the file listed; sending zeros", entry.real)
            else:
                while remaining > 0:
                    data = fh.read(min(chunk_size, remaining))
                    if not data:
                        break
                    remaining -= len(data)
                    yield data
                same = same and entry.unchanged(os.fstat(fh.fileno()))
    except OSError as exc:
        log.warning("cannot read %s: %s", entry.real, exc)
        same = False
    if strict and not same:
        raise FolderChanged(f"{entry.rel} changed while the folder was being sent")
    if remaining:
        log.warning("%s: %d bytes missing; padded with zeros", entry.real, remaining)
        same = False
        while remaining > 0:
            n = min(remaining, chunk_size)
            remaining -= n
            yield bytes(n)
    return same


def _read_bytes(
    entry: Entry,
    read: Callable[[Entry, int], Iterator[bytes]],
    chunk_size: int,
    *,
    strict: bool,
) -> Generator[bytes, None, bool]:
    """Exactly `entry.size` bytes from `read` (a blob: it cannot change, only be missing or
    cut short, which pads with zeros as `_file_bytes` does, or raises `FolderChanged` when
    `strict`)."""
    remaining = entry.size
    try:
        for data in read(entry, chunk_size):
            data = data[:remaining]
            remaining -= len(data)
            if data:
                yield data
            if remaining == 0:
                break
    except OSError as exc:
        log.warning("cannot read %s (%s): %s", entry.rel, entry.real, exc)
    if remaining:
        if strict:
            raise FolderChanged(f"{entry.rel}: {remaining} bytes missing from the store")
        log.warning("%s: %d bytes missing; padded with zeros", entry.rel, remaining)
        while remaining > 0:
            n = min(remaining, chunk_size)
            remaining -= n
            yield bytes(n)
        return False
    return True
