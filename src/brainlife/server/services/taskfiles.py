"""Files of a task's working folder: `GET /task/download/:id/<path>` and our task manifest.

A task's folder is `<tasks_dir>/<task id>/`. Nothing outside it is ever served:

- the requested path may not be absolute, contain `..` or NUL (400);
- the path is resolved with every symlink followed (a link anywhere in the path, or a linked
  folder) and must still lie inside the task folder (else 400);
- when a folder is tarred, links inside it are followed only when their target lies inside the
  task folder; others are left out (and logged), as are hidden entries (`.name`), sockets and
  devices. Link cycles are cut.

Brainlife answers a folder with `tar --exclude='.*' -hcz *` (a gzip tar of the folder's
contents, no leading folder) and a file with its bytes (brainlife-server.md §3.2).

A folder's .tar.gz is made while it is sent, yet it is byte-stable so that an interrupted download
can be resumed with `Range` / `If-Range`:

- the bytes are a function of the walk alone (each entry's relative path, type, size, mode and
  whole-second mtime, in `walk` order) and of the file contents: tar headers are PAX with
  uid/gid 0 and empty user/group names; the gzip header is written here (no name, mtime 0, XFL 0,
  OS 3) around raw deflate at a fixed level, window and memLevel. zlib's output does not depend
  on how its input is split as long as nothing is flushed, so the read size does not matter
  (a test checks this);
- `FolderSnapshot.etag` is a strong tag computed from the walk, without reading a byte of file
  data: a hash of `TGZ_FORMAT` (everything else that decides the bytes, zlib included) and of
  every entry's path, type, size, mode, mtime_ns, ctime_ns and inode. Any write changes a file's
  mtime/ctime, so a changed folder gets a new tag (as far as the file system's clock can tell two
  writes apart);
- a stream served under a tag must be the stream that tag names. Each file is checked when it is
  opened and after it is read (same inode, size, mtime and ctime as in the walk). A `strict`
  stream (ranges, measuring) raises `FolderChanged` on any difference; the plain whole-body
  stream keeps brainlife's leniency (a file that grew is cut, one that shrank is padded, so a
  running task's folder still downloads) and only the next request's tag tells the change. A file
  that is no longer the one the walk checked (another inode, e.g. a path swapped for a link) is
  never read: its bytes are zeros.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
import sys
import tarfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_tasks
from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, NotFound, RangeNotSatisfiable
from brainlife.server.models import Task
from brainlife.server.principal import Principal
from brainlife.server.services.downloads import guess_media_type, parse_range
from brainlife.server.tarstream import (
    END_OF_ARCHIVE,
    Chunk,
    member_header,
    padding,
    read_range,
)
from brainlife.wire import ManifestFile, TaskManifest, is_object_id

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


@dataclass(frozen=True)
class TaskTarget:
    """A checked path inside a task folder (no database needed any more)."""

    task_id: str
    instance_id: str | None
    #: real path of the task folder
    root: str
    #: real path of the target (file or folder)
    real: str
    #: the request's path, normalised ("" for the whole folder)
    rel: str
    is_dir: bool
    size: int
    etag: str

    @property
    def filename(self) -> str:
        """What `Content-Disposition` names the download (brainlife's rule)."""
        if not self.is_dir:
            return self.rel.rsplit("/", 1)[-1]
        parts = [self.instance_id, self.task_id] if self.instance_id else [self.task_id]
        if self.rel:
            parts.append(self.rel.replace("/", "."))
        return ".".join(parts) + ".tar.gz"

    @property
    def media_type(self) -> str:
        return "application/x-tgz" if self.is_dir else guess_media_type(self.filename)


def normalize_task_path(path: str) -> str:
    """`a//b/./c/` → `a/b/c`; raises `BadRequest` for absolute paths, `..` and NUL."""
    if "\x00" in path:
        raise BadRequest("The path contains a NUL character.")
    if path.startswith("/"):
        raise BadRequest(f"The path {path!r} is absolute; give a path inside the task folder.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadRequest(f"The path {path!r} contains '..'; it may not leave the task folder.")
    return "/".join(parts)


def inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def open_task_path(
    session: Session, archive: Archive, principal: Principal, task_id: str, path: str
) -> TaskTarget:
    """Check access and resolve `path` in its folder. A task the caller may not read is a 404
    with the same message as an unknown one, as on `GET /task/:id`: no route tells a task that
    exists from one that does not (task ids name their owner's work; see `tasks.get_task`)."""
    task = None
    if is_object_id(task_id):
        task = session.scalars(
            select(Task).where(Task.id == task_id, readable_tasks(principal))
        ).first()
    if task is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    rel = normalize_task_path(path)
    folder = archive.settings.tasks_dir / task.id
    if not folder.is_dir():
        raise NotFound(
            f"The files of task {task.id} are not available (task files are temporary; "
            "they may have been removed)."
        )
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, *rel.split("/"))) if rel else root
    if not inside(root, real):
        raise BadRequest(f"The path {rel!r} resolves outside the task folder (a symlink).")
    try:
        st = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"No such file or folder in task {task.id}: {rel!r}") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise BadRequest(f"{rel!r} is neither a file nor a folder.")
    return TaskTarget(
        task_id=task.id,
        instance_id=task.instance_id,
        root=root,
        real=real,
        rel=rel,
        is_dir=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        etag=f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"',
    )


@dataclass(frozen=True)
class Entry:
    rel: str
    real: str
    is_dir: bool
    size: int
    mode: int
    #: whole seconds, as the tar header holds it
    mtime: int
    # what the ETag and the checks while streaming compare (see the module docstring)
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    dev: int = 0

    @classmethod
    def of(cls, rel: str, real: str, st: os.stat_result) -> Entry:
        is_dir = stat.S_ISDIR(st.st_mode)
        return cls(
            rel=rel,
            real=real,
            is_dir=is_dir,
            size=0 if is_dir else st.st_size,
            mode=st.st_mode & 0o7777,
            mtime=int(st.st_mtime),
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            ino=st.st_ino,
            dev=st.st_dev,
        )


def walk(target: TaskTarget) -> Iterator[Entry]:
    """The folder's entries, depth first in name order, hidden ones and unsafe links left out."""
    yield from _walk(target.root, target.real, "", {target.real})


def _walk(root: str, folder: str, prefix: str, ancestors: set[str]) -> Iterator[Entry]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        real = os.path.realpath(path)
        if not inside(root, real):
            log.warning("skipping %s: a link to %s, outside the task folder", path, real)
            continue
        try:
            st = os.stat(real)
        except OSError:
            continue  # dangling link, or removed meanwhile
        rel = prefix + name
        if stat.S_ISDIR(st.st_mode):
            if real in ancestors:
                log.warning("skipping %s: a link cycle", path)
                continue
            yield Entry.of(rel, real, st)
            yield from _walk(root, real, rel + "/", ancestors | {real})
        elif stat.S_ISREG(st.st_mode):
            yield Entry.of(rel, real, st)


# --- folder downloads: a byte-stable .tar.gz ----------------------------------------------------


class FolderChanged(Exception):
    """A file of the folder changed after the walk: a `strict` stream is no longer the one its
    ETag names."""


@dataclass(frozen=True)
class FolderSnapshot:
    """One walk of a folder: what its .tar.gz holds, in order, and the ETag of those bytes."""

    entries: tuple[Entry, ...]
    etag: str


def snapshot_folder(target: TaskTarget) -> FolderSnapshot:
    """Walk the folder `target` names (stat only, no file is read) and tag the result."""
    entries = tuple(walk(target))
    return FolderSnapshot(entries, folder_etag(entries))


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


def stream_tgz(
    folder: FolderSnapshot, *, chunk_size: int, strict: bool = False
) -> Generator[bytes, None, None]:
    """The gzip-compressed tar of the snapshot's entries, produced while it is sent, in pieces of
    about `chunk_size` bytes. With `strict`, raises `FolderChanged` as soon as a file is not as
    the walk saw it. A stream that ends with every file as the walk saw it records its length
    (`known_length`)."""
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -_WINDOW_BITS, _MEM_LEVEL)
    crc = 0
    isize = 0
    produced = 0
    intact = True
    out = bytearray(GZIP_HEADER)

    def feed(data: bytes | bytearray) -> None:
        nonlocal crc, isize
        crc = zlib.crc32(data, crc)
        isize += len(data)
        out.extend(deflate.compress(data))

    for entry in folder.entries:
        if entry.is_dir:
            feed(
                member_header(
                    entry.rel, 0, mode=entry.mode, mtime=entry.mtime, type=tarfile.DIRTYPE
                )
            )
        else:
            feed(member_header(entry.rel, entry.size, mode=entry.mode, mtime=entry.mtime))
            pieces = _file_bytes(entry, chunk_size, strict=strict)
            try:
                while True:
                    try:
                        data = next(pieces)
                    except StopIteration as done:
                        intact = intact and done.value
                        break
                    feed(data)
                    if len(out) >= chunk_size:
                        produced += len(out)
                        yield bytes(out)
                        out.clear()
            finally:
                pieces.close()
            feed(bytes(padding(entry.size)))
        if len(out) >= chunk_size:
            produced += len(out)
            yield bytes(out)
            out.clear()
    feed(bytes(END_OF_ARCHIVE))
    out += deflate.flush()
    out += struct.pack("<II", crc, isize & 0xFFFFFFFF)
    produced += len(out)
    if intact:
        _remember_length(folder.etag, produced)
    yield bytes(out)


def _same_file(st: os.stat_result, entry: Entry) -> bool:
    return (st.st_dev, st.st_ino) == (entry.dev, entry.ino)


def _unchanged(st: os.stat_result, entry: Entry) -> bool:
    return _same_file(st, entry) and (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
        entry.size,
        entry.mtime_ns,
        entry.ctime_ns,
    )


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
            same = _unchanged(st, entry)
            if strict and not same:
                raise FolderChanged(f"{entry.rel} changed after the folder was listed")
            if not _same_file(st, entry):
                log.warning("%s is no longer the file listed; sending zeros", entry.real)
            else:
                while remaining > 0:
                    data = fh.read(min(chunk_size, remaining))
                    if not data:
                        break
                    remaining -= len(data)
                    yield data
                same = same and _unchanged(os.fstat(fh.fileno()), entry)
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


def tgz_slice(
    folder: FolderSnapshot, start: int, end: int, *, chunk_size: int
) -> Generator[bytes, None, None]:
    """Bytes `[start, end)` of the folder's .tar.gz (a strict stream, generated from the start:
    the prefix is compressed and dropped). Raises `FolderChanged` if a file changed since the
    walk, or if the stream ends before `end`."""
    pos = 0
    chunks = stream_tgz(folder, chunk_size=chunk_size, strict=True)
    try:
        for chunk in chunks:
            lo, pos = pos, pos + len(chunk)
            if pos <= start:
                continue
            yield chunk[max(0, start - lo) : end - lo]
            if pos >= end:
                return
        raise FolderChanged(f"the folder's .tar.gz ended at byte {pos}, before byte {end}")
    except FolderChanged as exc:
        log.warning("a ranged folder download is cut short (its ETag no longer holds): %s", exc)
        raise
    finally:
        chunks.close()


def wants_range(range_header: str | None, if_range: str | None, etag: str) -> bool:
    """Whether a request's `Range` (with its `If-Range`) asks for part of the folder stream
    named `etag`: a single, well-formed range and no `If-Range` other than `etag`. Anything else
    is answered with the whole body, as the other download routes do."""
    try:
        return parse_range(range_header, 2**63, if_range=if_range, etag=etag) is not None
    except RangeNotSatisfiable:  # `bytes=-0`: a 416, which must tell the real length
        return True


def tgz_span(range_header: str | None, total: int) -> tuple[int, int]:
    """The `[start, end)` a range asks for of a `total`-byte stream (`wants_range` said yes);
    raises `RangeNotSatisfiable` when it starts at or past the end."""
    span = parse_range(range_header, total)
    if span is None:  # not reached after `wants_range`; the whole body is a valid answer anyway
        return 0, total
    return span


#: Lengths of folder streams by ETag, so that repeated resumes of one folder skip the measuring
#: pass. The bytes are a function of the tag, so a length stays true; old tags fall out.
_LENGTHS: OrderedDict[str, int] = OrderedDict()
_LENGTHS_MAX = 1024
_lengths_lock = threading.Lock()


def known_length(etag: str) -> int | None:
    """The length of the stream `etag` names, if a stream with that tag was completed here."""
    with _lengths_lock:
        length = _LENGTHS.get(etag)
        if length is not None:
            _LENGTHS.move_to_end(etag)
        return length


def _remember_length(etag: str, length: int) -> None:
    with _lengths_lock:
        _LENGTHS[etag] = length
        _LENGTHS.move_to_end(etag)
        while len(_LENGTHS) > _LENGTHS_MAX:
            _LENGTHS.popitem(last=False)


def stream_file(
    target: TaskTarget, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
) -> Iterator[Chunk | None]:
    """Bytes `[start, end)` of a task file (cut short, never padded, if the file shrank;
    `None` items: see `tarstream.read_range`)."""
    with open(target.real, "rb") as fh:
        yield from read_range(
            fh, start, end, chunk_size=chunk_size, nonblocking=nonblocking, name=target.rel
        )


def task_manifest(target: TaskTarget) -> TaskManifest:
    """`wire.TaskManifest`: whether a download of `target` is a file or a folder, and the regular
    files it holds (paths relative to the folder; for a file, its name). The type is said, never
    left to be guessed: a folder `out/x` holding one file `x` looks like a file otherwise."""
    if target.is_dir:
        entries = [e for e in walk(target) if not e.is_dir]
    else:
        entries = [Entry(target.filename, target.real, False, target.size, 0, 0)]
    files: list[ManifestFile] = []
    for entry in entries:
        digest = hashlib.sha256()
        size = 0
        with open(entry.real, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        files.append({"path": entry.rel, "size": size, "sha256": digest.hexdigest()})
    return {
        "_id": target.task_id,
        "path": target.rel,
        "type": "folder" if target.is_dir else "file",
        "files": files,
    }
