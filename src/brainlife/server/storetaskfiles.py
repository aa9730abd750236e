"""`StoreTaskFiles`: task outputs kept in the content store (`bl serve --store s3://…`), so that
every byte of the archive, task outputs included, is in the bucket once by sha256 and a server
process needs no task folder on its own disk (replicas share one bucket and one database).

A task's outputs are rows of `task_output_files` (task, path, sha256, size, mode, mtime): a path
names a blob, folders are implied by the paths (an empty folder is not kept). Everything the
routes see is what `LocalTaskFiles` shows for the same files (`taskstore.TaskFiles`):

- `stat` answers a file (its ETag is its sha256) or a folder (a prefix of some path); a task
  without any file is "not available", as a task without a folder;
- `files` lists a folder in the order `taskwalk.walk` would (depth first, names sorted, each
  folder before its contents, folders' mtime that of their newest file), so a folder's .tar.gz
  (`foldertgz.FolderTgz` with `read` from the store: ranged reads of the blobs) has the layout
  of the local one; its tag hashes every path, mode, mtime and sha256;
- a single file is answered with a presigned URL (`presign`) when the store has one.

Uploads are spooled and unpacked on local disk (`<tasks_dir>/.bl-upload-<random>`, the same
`uploadtar` checks as the local folders), every file is written to the store, and only then
are the rows replaced in one transaction: a task never lists half an upload, and a refused or
cut-off one leaves only blobs nobody names (blobs are never removed, as for data objects).
`remove` deletes rows only. `import_folder` puts a task folder on disk into the store (the demo
build, `bl admin migrate`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from brainlife.server.errors import BadRequest, NotFound
from brainlife.server.foldertgz import TGZ_FORMAT, FolderTgz
from brainlife.server.models import TaskOutputFile
from brainlife.server.store import ByteStore, put_file
from brainlife.server.tarstream import Chunk, blob_chunks
from brainlife.server.taskstore import (
    UPLOAD_STAGING,
    SpooledUpload,
    TaskPath,
    refuse_reserved,
    remove_stale_staging,
)
from brainlife.server.taskwalk import Entry, walk
from brainlife.server.uploadtar import Unpacked, UnpackLimits, unpack

#: mode of the folders implied by the paths (they have none of their own)
FOLDER_MODE = 0o755


@dataclass(frozen=True)
class StoredFile:
    """A file to record: its path in the task folder and its blob."""

    path: str
    sha256: str
    size: int
    mode: int
    mtime_ns: int


def _under(task_id: str, rel: str) -> ColumnElement[bool]:
    """Rows of the task at `rel` or below it (`rel` "" is the whole task)."""
    where = TaskOutputFile.task_id == task_id
    if not rel:
        return where
    prefix = rel + "/"
    return where & or_(
        TaskOutputFile.path == rel,
        func.substr(TaskOutputFile.path, 1, len(prefix)) == prefix,
    )


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class StoreTaskFiles:
    """Task outputs as rows naming blobs of `store` (see the module's docstring)."""

    def __init__(self, sessions: sessionmaker[Session], store: ByteStore, staging: Path) -> None:
        self.sessions = sessions
        self.store = store
        #: where uploads are spooled and unpacked before their files go to the store
        self.staging = staging

    # -- reads -----------------------------------------------------------------------------

    def stat(self, task_id: str, rel: str) -> TaskPath:
        with self.sessions() as s:
            row = s.get(TaskOutputFile, (task_id, rel)) if rel else None
            if row is not None:
                return TaskPath(task_id, rel, False, row.size, row.sha256, "", row.sha256)
            if s.scalar(select(exists().where(_under(task_id, rel)))):
                return TaskPath(task_id, rel, True, 0, "", "", "")
            if not rel or not s.scalar(select(exists().where(_under(task_id, "")))):
                raise NotFound(
                    f"The files of task {task_id} are not available (task files are temporary; "
                    "they may have been removed)."
                )
        raise NotFound(f"No such file or folder in task {task_id}: {rel!r}")

    def _rows(self, task_id: str, rel: str) -> list[TaskOutputFile]:
        with self.sessions() as s:
            return list(s.scalars(select(TaskOutputFile).where(_under(task_id, rel))))

    def files(self, path: TaskPath) -> Iterator[Entry]:
        if not path.is_dir:
            row = self._rows(path.task_id, path.rel)
            return iter([_entry(path.name, r) for r in row if r.path == path.rel])
        return (e for e in self._walk(path) if not e.is_dir)

    def _walk(self, path: TaskPath) -> list[Entry]:
        """The folder's entries in `taskwalk.walk` order, folders included."""
        cut = len(path.rel) + 1 if path.rel else 0
        rows = sorted(
            (r for r in self._rows(path.task_id, path.rel) if r.path != path.rel),
            key=lambda r: r.path[cut:].split("/"),
        )
        newest: dict[str, int] = {}
        for r in rows:
            for folder in _ancestors(r.path[cut:]):
                newest[folder] = max(newest.get(folder, 0), r.mtime_ns)
        entries: list[Entry] = []
        seen: set[str] = set()
        for r in rows:
            rel = r.path[cut:]
            if any(part.startswith(".") for part in rel.split("/")):
                continue  # never listed, as on disk
            for folder in _ancestors(rel):
                if folder not in seen:
                    seen.add(folder)
                    ns = newest[folder]
                    entries.append(
                        Entry(folder, "", True, 0, FOLDER_MODE, ns // 10**9, mtime_ns=ns)
                    )
            entries.append(_entry(rel, r))
        return entries

    def read_range(
        self, path: TaskPath, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
    ) -> Iterator[Chunk | None]:
        # through `blob_chunks`: with `nonblocking`, each network read runs in a worker thread
        return blob_chunks(
            self.store, path.real, start, end, chunk_size=chunk_size, nonblocking=nonblocking
        )

    def digest(self, entry: Entry) -> tuple[int, str]:
        return entry.size, entry.real

    def folder_body(self, path: TaskPath) -> FolderTgz:
        entries = tuple(self._walk(path))
        digest = hashlib.sha256(TGZ_FORMAT.encode("ascii") + b"\0store\0")
        for e in entries:
            kind = "d" if e.is_dir else "f"
            digest.update(e.rel.encode("utf-8", "surrogateescape"))
            digest.update(f"\0{kind}\0{e.size}\0{e.mode}\0{e.mtime}\0{e.real}\0".encode())
        return FolderTgz(
            entries,
            f'"tgz-{digest.hexdigest()[:32]}"',
            read=lambda e, chunk: self.store.read_range(e.real, 0, e.size, chunk_size=chunk),
        )

    def chunks(self, entry: Entry) -> Iterator[bytes]:
        return self.store.read_range(entry.real, 0, entry.size)

    def presign(self, path: TaskPath, *, filename: str, expires_in: int) -> str | None:
        return (
            None
            if path.is_dir
            else self.store.presign(path.real, filename=filename, expires_in=expires_in)
        )

    # -- writes ----------------------------------------------------------------------------

    def begin_upload(self, task_id: str) -> StoreTaskUpload:
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = self.staging / f"{UPLOAD_STAGING}{secrets.token_hex(8)}"
        folder.mkdir()
        return StoreTaskUpload(self, task_id, folder)

    def check_target(self, task_id: str, rel: str, *, folder: bool) -> None:
        """`rel` may receive a file (`folder` False) or files below it: no ancestor of it is a
        file, and a file does not replace a folder."""
        with self.sessions() as s:
            blocking = _ancestors(rel) + ([rel] if folder and rel else [])
            if blocking:
                hit = s.scalar(
                    select(TaskOutputFile.path).where(
                        TaskOutputFile.task_id == task_id, TaskOutputFile.path.in_(blocking)
                    )
                )
                if hit is not None:
                    raise BadRequest(f"{hit!r} is a file in the task; it cannot hold a folder.")
            if not folder and s.scalar(
                select(exists().where(_under(task_id, rel), TaskOutputFile.path != rel))
            ):
                raise BadRequest(f"{rel!r} is a folder in the task; name a file.")

    def replace(self, task_id: str, names: Iterable[str], files: Iterable[StoredFile]) -> None:
        """In one transaction: drop what lies at or below each of `names`, record `files`."""
        with self.sessions() as s, s.begin():
            for name in names:
                s.execute(delete(TaskOutputFile).where(_under(task_id, name)))
            s.add_all(
                TaskOutputFile(
                    task_id=task_id,
                    path=f.path,
                    sha256=f.sha256,
                    size=f.size,
                    mode=f.mode,
                    mtime_ns=f.mtime_ns,
                )
                for f in files
            )

    def store_tree(self, folder: Path, prefix: str = "") -> list[StoredFile]:
        """Every listed file under `folder` (`taskwalk.walk`: hidden entries and links that
        leave it are skipped) written to the store, paths below `prefix`."""
        real = os.path.realpath(folder)
        stored = []
        for entry in walk(real, real):
            if entry.is_dir:
                continue
            sha256, size = put_file(self.store, Path(entry.real))
            path = f"{prefix}/{entry.rel}" if prefix else entry.rel
            stored.append(StoredFile(path, sha256, size, entry.mode, entry.mtime_ns))
        return stored

    def import_folder(self, task_id: str, folder: Path) -> int:
        """Make a task's outputs those of `folder` (a task folder on disk); returns how many
        files. Running it again gives the same rows (blobs are written once per digest)."""
        stored = self.store_tree(folder)
        self.replace(task_id, [""], stored)
        return len(stored)

    def remove(self, task_id: str, rel: str) -> None:
        if not rel:
            raise ValueError("the task folder itself is never removed this way")
        with self.sessions() as s, s.begin():
            s.execute(delete(TaskOutputFile).where(_under(task_id, rel)))

    def clean_uploads(self, older_than: float = 3600.0) -> int:
        """Remove upload staging folders left by a server that died mid-upload (only those
        older than `older_than` seconds: another worker process may be receiving one now)."""
        if not self.staging.is_dir():
            return 0
        return remove_stale_staging(self.staging.glob(f"{UPLOAD_STAGING}*"), older_than)


def _entry(rel: str, row: TaskOutputFile) -> Entry:
    return Entry(
        rel, row.sha256, False, row.size, row.mode, row.mtime_ns // 10**9, mtime_ns=row.mtime_ns
    )


class StoreTaskUpload(SpooledUpload):
    """An upload spooled to `<staging>/body`, unpacked beside it, then stored."""

    def __init__(self, files: StoreTaskFiles, task_id: str, staging: Path) -> None:
        self.files = files
        self.task_id = task_id
        super().__init__(staging)

    def _place(self, rel: str, *, untar: bool, limits: UnpackLimits) -> Unpacked | None:
        if not untar:
            self.files.check_target(self.task_id, rel, folder=False)
            sha256, size = put_file(self.files.store, self.body)
            one = StoredFile(rel, sha256, size, 0o644, time.time_ns())
            self.files.replace(self.task_id, [rel], [one])
            return None
        where = rel.rpartition("/")[0]
        self.files.check_target(self.task_id, where, folder=True)
        unpacked = self.staging / "unpacked"
        with open(self.body, "rb") as fh:
            done = unpack(fh, unpacked, limits)
        names = sorted(e.name for e in unpacked.iterdir()) if unpacked.is_dir() else []
        refuse_reserved(names)
        stored = self.files.store_tree(unpacked, where)
        self.files.replace(self.task_id, [f"{where}/{n}" if where else n for n in names], stored)
        return done
