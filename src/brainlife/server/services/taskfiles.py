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
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_tasks
from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Task
from brainlife.server.principal import Principal
from brainlife.server.services.downloads import guess_media_type
from brainlife.server.tarstream import (
    END_OF_ARCHIVE,
    Chunk,
    member_header,
    padding,
    read_range,
)
from brainlife.wire import is_object_id

log = logging.getLogger("brainlife.server.taskfiles")

#: gzip level of folder downloads (brainlife runs `tar -z`, i.e. gzip's default 6).
GZIP_LEVEL = 6


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
    """Check access (404 unknown task, 403 not readable) and resolve `path` in its folder."""
    task = None
    readable = False
    if is_object_id(task_id):
        row = session.execute(
            select(Task, readable_tasks(principal).label("readable")).where(Task.id == task_id)
        ).first()
        if row is not None:
            task, readable = row
    if task is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    if not readable:
        raise Forbidden(
            "you don't have access to this task (you are not its owner or in its group)"
        )
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
    mtime: int


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
            yield Entry(rel, real, True, 0, st.st_mode & 0o7777, int(st.st_mtime))
            yield from _walk(root, real, rel + "/", ancestors | {real})
        elif stat.S_ISREG(st.st_mode):
            yield Entry(rel, real, False, st.st_size, st.st_mode & 0o7777, int(st.st_mtime))


def stream_tgz(target: TaskTarget, *, chunk_size: int) -> Iterator[bytes]:
    """A gzip-compressed tar of the folder's contents, produced while it is sent."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = bytearray()
    for entry in walk(target):
        if entry.is_dir:
            out += compressor.compress(
                member_header(
                    entry.rel, 0, mode=entry.mode, mtime=entry.mtime, type=tarfile.DIRTYPE
                )
            )
        else:
            out += compressor.compress(
                member_header(entry.rel, entry.size, mode=entry.mode, mtime=entry.mtime)
            )
            for data in _file_bytes(entry.real, entry.size, chunk_size):
                out += compressor.compress(data)
                if len(out) >= chunk_size:
                    yield bytes(out)
                    out.clear()
            out += compressor.compress(bytes(padding(entry.size)))
        if len(out) >= chunk_size:
            yield bytes(out)
            out.clear()
    out += compressor.compress(bytes(END_OF_ARCHIVE))
    out += compressor.flush()
    yield bytes(out)


def _file_bytes(real: str, size: int, chunk_size: int) -> Iterator[bytes]:
    """Exactly `size` bytes of a file (the size its tar header announced): a file that grew is
    cut, one that shrank is padded with zeros so the tar stays readable."""
    remaining = size
    try:
        with open(real, "rb") as fh:
            while remaining > 0:
                data = fh.read(min(chunk_size, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data
    except OSError as exc:
        log.warning("cannot read %s: %s", real, exc)
    if remaining:
        log.warning("%s shrank while being sent; padded %d bytes with zeros", real, remaining)
        while remaining > 0:
            n = min(remaining, chunk_size)
            remaining -= n
            yield bytes(n)


def stream_file(
    target: TaskTarget, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
) -> Iterator[Chunk | None]:
    """Bytes `[start, end)` of a task file (cut short, never padded, if the file shrank;
    `None` items: see `tarstream.read_range`)."""
    with open(target.real, "rb") as fh:
        yield from read_range(
            fh, start, end, chunk_size=chunk_size, nonblocking=nonblocking, name=target.rel
        )


def task_manifest(target: TaskTarget) -> dict[str, Any]:
    """`{_id, files: [{path, size, sha256}]}`: the regular files a download of `target` holds
    (paths relative to the folder; for a file, its name)."""
    if target.is_dir:
        entries = [e for e in walk(target) if not e.is_dir]
    else:
        entries = [Entry(target.filename, target.real, False, target.size, 0, 0)]
    files = []
    for entry in entries:
        digest = hashlib.sha256()
        size = 0
        with open(entry.real, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        files.append({"path": entry.rel, "size": size, "sha256": digest.hexdigest()})
    return {"_id": target.task_id, "files": files}
