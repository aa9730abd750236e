"""Where task outputs are read from. `TaskFiles` is the one interface every read of a task's
files goes through: a path's checks (`stat`), the files a download holds (`files`), a file's
bytes (`read_range`), a file's sha256 (`digest`) and a folder's .tar.gz (`folder_body`).
`Archive.task_files` holds one; routes and services know only the interface, so an object
store's implementation can replace the local one without touching them.

`LocalTaskFiles` reads the task folders under `<data>/tasks/<task id>/` (see docs/decisions.md,
"Task outputs stay in task folders for now"). Nothing outside a task's folder is ever read:

- the path is resolved with every symlink followed (a link anywhere in the path, or a linked
  folder) and must still lie inside the task folder (else 400);
- a folder's listing leaves out links that lead outside, hidden entries, sockets and devices
  (`taskwalk`).

With an object store (`bl serve --store s3://…`) task outputs are kept there instead
(`storetaskfiles.StoreTaskFiles`, same interface).

Uploads (the official CLI's `POST /task/upload/:id`) come in through the same interface:
`begin_upload` spools the body into a hidden staging folder of the task (`.bl-upload-*`, never
listed), `TaskUpload.finish` unpacks it there (`uploadtar`: nothing may leave the folder) and
only then moves the result into place, so a task folder never holds half an upload; a staging
folder left by a killed server is removed at the next start (`clean_uploads`). The finalize
jobs read the files back with `chunks` and free them with `remove`.

A file's sha256 is computed once per version of the file: digests are kept by the file's
identity (device, inode, size, mtime_ns, ctime_ns, the stat fields a folder's ETag is made of),
so asking again for the manifest of an unchanged folder reads no file data.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from brainlife.server.errors import BadRequest, InsufficientStorage, NotFound
from brainlife.server.foldertgz import snapshot_folder
from brainlife.server.tarstream import Chunk, Regenerable, read_range
from brainlife.server.taskwalk import Entry, inside, walk
from brainlife.server.uploadtar import Unpacked, UnpackLimits, unpack

#: the staging folders of uploads in progress (hidden: never listed or downloaded)
UPLOAD_STAGING = ".bl-upload-"


@dataclass(frozen=True)
class TaskPath:
    """A checked path of a task's outputs: it exists, is a file or a folder, and lies inside."""

    task_id: str
    #: normalised, relative to the task's folder ("" for the whole folder)
    rel: str
    is_dir: bool
    size: int
    #: a file's validator (unquoted); a folder's comes with its body (`folder_body`)
    etag: str
    #: where the implementation finds it (`LocalTaskFiles`: the real paths of the task folder
    #: and of the target)
    root: str
    real: str

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]


class TaskFiles(Protocol):
    def stat(self, task_id: str, rel: str) -> TaskPath:
        """Check `rel` (already normalised: no `..`, not absolute) in the task's outputs;
        `NotFound` when the task has none or the path is missing, `BadRequest` when it leads
        outside or is neither a file nor a folder."""
        ...

    def files(self, path: TaskPath) -> Iterator[Entry]:
        """The regular files a download of `path` holds: a folder's, relative to it, in tar
        order; a file itself, under its name."""
        ...

    def read_range(
        self, path: TaskPath, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
    ) -> Iterator[Chunk | None]:
        """Bytes `[start, end)` of a file (cut short, never padded, if it shrank; `None` items:
        see `tarstream.read_range`)."""
        ...

    def digest(self, entry: Entry) -> tuple[int, str]:
        """(size, sha256) of a file `files` listed."""
        ...

    def folder_body(self, path: TaskPath) -> Regenerable:
        """A folder's .tar.gz, byte-stable under its ETag (`foldertgz`)."""
        ...

    def chunks(self, entry: Entry) -> Iterator[bytes]:
        """The bytes of a file `files` listed, about 1 MiB at a time."""
        ...

    def presign(self, path: TaskPath, *, filename: str, expires_in: int) -> str | None:
        """A URL a file's bytes may be fetched from without our token (an object store's,
        `store.ByteStore.presign`), or None: the bytes come from our route."""
        ...

    def begin_upload(self, task_id: str) -> TaskUpload:
        """Start receiving an upload into the task's folder (made if missing)."""
        ...

    def remove(self, task_id: str, rel: str) -> None:
        """Free a folder of a task's outputs (`rel` normalised, not the task folder itself)."""
        ...

    def clean_uploads(self, older_than: float = 3600.0) -> int:
        """Remove what uploads that died (a killed server) left, older than `older_than` s."""
        ...


class TaskUpload(Protocol):
    """An upload being received: `write` each chunk, then `finish` (put it in place) or
    `abort` (forget it). Writes on a full disk raise `InsufficientStorage`."""

    received: int

    def write(self, chunk: bytes) -> None: ...

    def finish(self, rel: str, *, untar: bool, limits: UnpackLimits) -> Unpacked | None:
        """Put the bytes at `rel` (normalised), or, with `untar`, unpack them into the folder
        of `rel` (refusing unsafe archives: `uploadtar.UnsafeUpload`). Returns what was
        unpacked."""
        ...

    def abort(self) -> None: ...


class LocalTaskFiles:
    """Task outputs in folders under `tasks_dir` (`<tasks_dir>/<task id>/`)."""

    def __init__(self, tasks_dir: Path, *, digests_max: int = 50_000) -> None:
        self.tasks_dir = tasks_dir
        #: (dev, ino, size, mtime_ns, ctime_ns) → sha256, least recently used first; about 150
        #: bytes an entry
        self._digests: OrderedDict[tuple[int, int, int, int, int], str] = OrderedDict()
        self._digests_max = digests_max
        self._lock = threading.Lock()

    def stat(self, task_id: str, rel: str) -> TaskPath:
        folder = self.tasks_dir / task_id
        if not folder.is_dir():
            raise NotFound(
                f"The files of task {task_id} are not available (task files are temporary; "
                "they may have been removed)."
            )
        root = os.path.realpath(folder)
        real = os.path.realpath(os.path.join(root, *rel.split("/"))) if rel else root
        if not inside(root, real):
            raise BadRequest(f"The path {rel!r} resolves outside the task folder (a symlink).")
        try:
            st = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"No such file or folder in task {task_id}: {rel!r}") from None
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise BadRequest(f"{rel!r} is neither a file nor a folder.")
        return TaskPath(
            task_id=task_id,
            rel=rel,
            is_dir=stat.S_ISDIR(st.st_mode),
            size=st.st_size,
            etag=f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}",
            root=root,
            real=real,
        )

    def files(self, path: TaskPath) -> Iterator[Entry]:
        if path.is_dir:
            return (e for e in walk(path.root, path.real) if not e.is_dir)
        return iter([Entry.of(path.name, path.real, os.stat(path.real))])

    def read_range(
        self, path: TaskPath, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
    ) -> Iterator[Chunk | None]:
        with open(path.real, "rb") as fh:
            yield from read_range(
                fh, start, end, chunk_size=chunk_size, nonblocking=nonblocking, name=path.rel
            )

    def folder_body(self, path: TaskPath) -> Regenerable:
        return snapshot_folder(path.root, path.real)

    def digest(self, entry: Entry) -> tuple[int, str]:
        """Read only when this version of the file has not been hashed before. A file that
        changes while it is read is hashed as read, not remembered."""
        key = (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns)
        with self._lock:
            known = self._digests.get(key)
            if known is not None:
                self._digests.move_to_end(key)
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
            with self._lock:
                self._digests[key] = sha256
                while len(self._digests) > self._digests_max:
                    self._digests.popitem(last=False)
        return size, sha256

    def chunks(self, entry: Entry) -> Iterator[bytes]:
        with open(entry.real, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                yield chunk

    def presign(self, path: TaskPath, *, filename: str, expires_in: int) -> str | None:
        return None

    def begin_upload(self, task_id: str) -> LocalTaskUpload:
        folder = self.tasks_dir / task_id
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f"{UPLOAD_STAGING}{secrets.token_hex(8)}"
        staging.mkdir()
        return LocalTaskUpload(folder, staging)

    def remove(self, task_id: str, rel: str) -> None:
        if not rel:
            raise ValueError("the task folder itself is never removed this way")
        root = os.path.realpath(self.tasks_dir / task_id)
        target = os.path.join(root, *rel.split("/"))
        if inside(root, os.path.realpath(target)) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)

    def clean_uploads(self, older_than: float = 3600.0) -> int:
        """Remove upload staging folders left by a server that died mid-upload (only those
        older than `older_than` seconds: another worker process may be receiving one now)."""
        return remove_stale_staging(self.tasks_dir.glob(f"*/{UPLOAD_STAGING}*"), older_than)


def remove_stale_staging(folders: Iterable[Path], older_than: float) -> int:
    """Remove the upload staging `folders` last changed over `older_than` seconds ago (one
    another worker process receives into now is younger); how many were removed."""
    cutoff = time.time() - older_than
    removed = 0
    for staging in folders:
        try:
            if staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _disk_full(exc: OSError) -> InsufficientStorage | None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(
            "The archive's disk is full: the upload was not kept. Ask the archive's "
            "administrator to free space, then upload again."
        )
    return None


def refuse_reserved(names: Iterable[str]) -> None:
    """An upload may not bring an entry named like this server's staging folders."""
    reserved = [n for n in names if n.startswith(UPLOAD_STAGING)]
    if reserved:
        raise BadRequest(f"The upload is refused: {reserved[0]!r} is a name this server keeps.")


class SpooledUpload:
    """What every task upload does the same: the body spooled to `<staging>/body` (a full disk
    is a 507, never a half-written file taken for whole), `finish` by the backend's `_place`,
    and the staging folder removed whatever happens."""

    #: flush the body to disk before placing it (the local folder keeps the very file)
    durable = False

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.body = staging / "body"
        self._fh = open(self.body, "xb")  # noqa: SIM115 (closed in finish/abort)
        self.received = 0

    def write(self, chunk: bytes) -> None:
        try:
            self._fh.write(chunk)
        except OSError as exc:
            full = _disk_full(exc)
            if full is not None:
                raise full from None
            raise
        self.received += len(chunk)

    def finish(self, rel: str, *, untar: bool, limits: UnpackLimits) -> Unpacked | None:
        try:
            if self.durable:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            return self._place(rel, untar=untar, limits=limits)
        except OSError as exc:
            full = _disk_full(exc)
            if full is not None:
                raise full from None
            raise
        finally:
            self.abort()

    def _place(self, rel: str, *, untar: bool, limits: UnpackLimits) -> Unpacked | None:
        raise NotImplementedError

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        shutil.rmtree(self.staging, ignore_errors=True)


class LocalTaskUpload(SpooledUpload):
    """An upload spooled to `<task>/.bl-upload-<random>/body`, unpacked beside it."""

    durable = True

    def __init__(self, folder: Path, staging: Path) -> None:
        self.folder = folder
        super().__init__(staging)

    def _place(self, rel: str, *, untar: bool, limits: UnpackLimits) -> Unpacked | None:
        root = os.path.realpath(self.folder)
        parts = rel.split("/")
        where = os.path.join(root, *parts[:-1]) if untar else os.path.join(root, *parts)
        if not inside(root, os.path.realpath(os.path.dirname(where) if not untar else where)):
            raise BadRequest(f"The path {rel!r} leads outside the task folder (a link).")
        if not untar:
            if os.path.isdir(where) or os.path.islink(where):
                raise BadRequest(f"{rel!r} is a folder or a link in the task; name a file.")
            os.makedirs(os.path.dirname(where), exist_ok=True)
            os.replace(self.body, where)
            return None
        unpacked = self.staging / "unpacked"
        with open(self.body, "rb") as fh:
            done = unpack(fh, unpacked, limits)
        self._move_into(unpacked, Path(where))
        return done

    def _move_into(self, unpacked: Path, dest: Path) -> None:
        """Every unpacked entry moved into `dest` (renames within one file system): an entry
        already there is replaced, as tar would."""
        dest.mkdir(parents=True, exist_ok=True)
        entries = sorted(unpacked.iterdir())
        refuse_reserved(e.name for e in entries)
        for entry in entries:
            target = dest / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
