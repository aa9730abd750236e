"""Files of a task's working folder: who may read which path (`open_task_path`), a file's bytes
(`stream_file`) and the files our task manifest lists (`task_manifest`). A folder's .tar.gz is
`foldertgz`'s, its listing `taskwalk`'s.

A task's folder is `<tasks_dir>/<task id>/`. Nothing outside it is ever served:

- the requested path may not be absolute, contain `..` or NUL (400);
- the path is resolved with every symlink followed (a link anywhere in the path, or a linked
  folder) and must still lie inside the task folder (else 400);
- a folder's listing leaves out links that lead outside, hidden entries, sockets and devices
  (`taskwalk`).

A file's sha256 (for the manifest) is computed once per version of the file: digests are kept by
the file's identity (device, inode, size, mtime_ns, ctime_ns, the same stat fields a folder's ETag
is made of), so asking again for the manifest of an unchanged folder reads no file data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_tasks
from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, NotFound
from brainlife.server.models import Task
from brainlife.server.principal import Principal
from brainlife.server.services.downloads import guess_media_type
from brainlife.server.tarstream import Chunk, read_range
from brainlife.server.taskwalk import Entry, inside, walk
from brainlife.wire import is_object_id

log = logging.getLogger("brainlife.server.taskfiles")


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
    #: a file's validator (unquoted); a folder's is its .tar.gz's (`foldertgz`)
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


def open_task_path(
    *, session: Session, archive: Archive, principal: Principal, task_id: str, path: str
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
        etag=f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}",
    )


def stream_file(
    target: TaskTarget, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
) -> Iterator[Chunk | None]:
    """Bytes `[start, end)` of a task file (cut short, never padded, if the file shrank;
    `None` items: see `tarstream.read_range`)."""
    with open(target.real, "rb") as fh:
        yield from read_range(
            fh, start, end, chunk_size=chunk_size, nonblocking=nonblocking, name=target.rel
        )


@dataclass(frozen=True)
class TaskFile:
    """A regular file of a task path, as our task manifest lists it."""

    path: str
    size: int
    sha256: str


def task_manifest(target: TaskTarget) -> list[TaskFile]:
    """The regular files a download of `target` holds (`documents.task_manifest_doc`): for a
    folder, paths relative to it; for a file, the file itself, under its name."""
    if target.is_dir:
        entries = [e for e in walk(target.root, target.real) if not e.is_dir]
    else:
        entries = [Entry.of(target.filename, target.real, os.stat(target.real))]
    return [TaskFile(entry.rel, *file_digest(entry)) for entry in entries]


#: (dev, ino, size, mtime_ns, ctime_ns) → sha256, least recently used first
_DIGESTS: OrderedDict[tuple[int, int, int, int, int], str] = OrderedDict()
#: about 150 bytes an entry
DIGESTS_MAX = 50_000
_digests_lock = threading.Lock()


def file_digest(entry: Entry) -> tuple[int, str]:
    """(size, sha256) of the file `entry` lists, read only when this version of the file has not
    been hashed before. A file that changes while it is read is hashed as read, not remembered."""
    key = (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns)
    with _digests_lock:
        known = _DIGESTS.get(key)
        if known is not None:
            _DIGESTS.move_to_end(key)
            return entry.size, known
    digest = hashlib.sha256()
    size = 0
    with open(entry.real, "rb") as fh:
        before = os.fstat(fh.fileno())
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        unchanged = entry.unchanged(before) and entry.unchanged(os.fstat(fh.fileno()))
    sha256 = digest.hexdigest()
    if unchanged and size == entry.size:
        with _digests_lock:
            _DIGESTS[key] = sha256
            while len(_DIGESTS) > DIGESTS_MAX:
                _DIGESTS.popitem(last=False)
    return size, sha256
