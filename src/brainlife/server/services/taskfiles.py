"""Files of a task's outputs: who may read which path (`open_task_path`), a file's bytes
(`stream_file`), a folder's .tar.gz (`folder_body`) and the files our task manifest lists
(`task_manifest`). Every read goes through `Archive.task_files` (`taskstore.TaskFiles`); this
module adds access, path checks and naming.

A task's outputs are served to whoever may read the task, and nothing outside them:

- the requested path may not be absolute, contain `..` or NUL (400);
- the store checks what the path resolves to (`TaskFiles.stat`: the local folders follow every
  symlink and refuse a path that leads outside the task folder).
"""

from __future__ import annotations

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
from brainlife.server.tarstream import Chunk, Regenerable
from brainlife.server.taskstore import TaskPath
from brainlife.wire import is_object_id


@dataclass(frozen=True)
class TaskTarget:
    """A checked path of a task the caller may read (no database needed any more)."""

    task_id: str
    instance_id: str | None
    path: TaskPath

    @property
    def rel(self) -> str:
        """The request's path, normalised ("" for the whole folder)."""
        return self.path.rel

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir

    @property
    def size(self) -> int:
        return self.path.size

    @property
    def etag(self) -> str:
        """A file's validator (unquoted); a folder's is its .tar.gz's (`folder_body`)."""
        return self.path.etag

    @property
    def filename(self) -> str:
        """What `Content-Disposition` names the download (brainlife's rule)."""
        if not self.is_dir:
            return self.path.name
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
    """Check access and resolve `path` in the task's outputs. A task the caller may not read is
    a 404 with the same message as an unknown one, as on `GET /task/:id`: no route tells a task
    that exists from one that does not (task ids name their owner's work; see `tasks.get_task`)."""
    task = None
    if is_object_id(task_id):
        task = session.scalars(
            select(Task).where(Task.id == task_id, readable_tasks(principal))
        ).first()
    if task is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    rel = normalize_task_path(path)
    return TaskTarget(task.id, task.instance_id, archive.task_files.stat(task.id, rel))


def stream_file(
    *,
    archive: Archive,
    target: TaskTarget,
    start: int,
    end: int,
    chunk_size: int,
    nonblocking: bool = False,
) -> Iterator[Chunk | None]:
    """Bytes `[start, end)` of a task file (cut short, never padded, if the file shrank;
    `None` items: see `tarstream.read_range`)."""
    return archive.task_files.read_range(
        target.path, start, end, chunk_size=chunk_size, nonblocking=nonblocking
    )


def presign_file(archive: Archive, target: TaskTarget) -> str | None:
    """A presigned URL of a file's bytes when task outputs are in an object store (None for
    folders and for the local task folders: the bytes come from our route)."""
    if target.is_dir:
        return None
    return archive.task_files.presign(
        target.path, filename=target.filename, expires_in=archive.settings.presign_seconds
    )


def folder_body(*, archive: Archive, target: TaskTarget) -> Regenerable:
    """A folder's .tar.gz (made while it is sent, byte-stable under its ETag)."""
    return archive.task_files.folder_body(target.path)


@dataclass(frozen=True)
class TaskFile:
    """A regular file of a task path, as our task manifest lists it."""

    path: str
    size: int
    sha256: str


def task_manifest(*, archive: Archive, target: TaskTarget) -> list[TaskFile]:
    """The regular files a download of `target` holds (`documents.task_manifest_doc`): for a
    folder, paths relative to it; for a file, the file itself, under its name. Digests are the
    store's (`TaskFiles.digest`: the local folders hash each version of a file once)."""
    files = archive.task_files
    return [TaskFile(entry.rel, *files.digest(entry)) for entry in files.files(target.path)]


#: files of a task's outputs its web page lists (in tar order; `bl task download` gets them all)
PAGE_FILES = 500


def task_page_files(*, archive: Archive, target: TaskTarget) -> tuple[list[TaskFile], int]:
    """The first `PAGE_FILES` files of :func:`task_manifest` with their digests, and how many
    files there are in all (the others are counted, not hashed): a folder of many thousand
    files makes a page of `PAGE_FILES` rows."""
    limit = PAGE_FILES
    files = archive.task_files
    shown: list[TaskFile] = []
    count = 0
    for entry in files.files(target.path):
        if count < limit:
            shown.append(TaskFile(entry.rel, *files.digest(entry)))
        count += 1
    return shown, count
