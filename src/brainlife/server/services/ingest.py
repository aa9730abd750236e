"""Putting a data object's files into the archive, and checking them later.

Crash safety rests on one ordering: **blobs first, database commit last.**

1. Every file is written to the content store (`store.ByteStore`, with its digest checked; the
   local store writes a temporary file, fsyncs, renames and fsyncs the folder; deduplicated by
   sha256). A crash here leaves at most unreferenced blobs (harmless; identical content is
   reused by a retry) and never a partial blob under its name.
2. Only then, in one transaction, the manifest rows (`DatasetFile`) replace the old ones, and
   `dataset.size` (the exact tar length) and `status = "stored"` are set. A crash before the
   commit leaves the previous state (e.g. `storing`, or the previous complete manifest).

So a `stored` data object always has all its blobs. Blobs are never deleted here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest
from brainlife.server.ids import new_object_id
from brainlife.server.models import Dataset, DatasetDatatypeTag, DatasetFile, DatasetTag
from brainlife.server.services.objectfields import ObjectFields
from brainlife.server.store import put_file
from brainlife.server.tarstream import TarLayout, TarMember, epoch_seconds

log = logging.getLogger("brainlife.server.ingest")

#: A file's content: bytes, a file on disk, or an iterable of byte chunks (read once).
FileContent: TypeAlias = bytes | Path | Iterable[bytes]

MAX_PATH = 1024  # DatasetFile.path


def storing_dataset(
    now: datetime,
    user_id: str,
    project_id: str,
    datatype_id: str,
    fields: ObjectFields,
    **columns: Any,
) -> Dataset:
    """A new data object of `user_id`, `storing` until its files are, with the `fields` its
    client set (`meta`'s subject, session and run promoted to their columns, tags in their
    order) and the other `columns` as given."""
    meta = fields.meta
    return Dataset(
        id=new_object_id(now),
        project_id=project_id,
        datatype_id=datatype_id,
        user_id=user_id,
        desc=fields.desc,
        status="storing",
        removed=False,
        subject=meta.get("subject"),
        session=meta.get("session"),
        run=meta.get("run"),
        create_date=now,
        meta=meta,
        tags=[DatasetTag(tag=t, pos=i) for i, t in enumerate(fields.tags)],
        datatype_tags=[
            DatasetDatatypeTag(tag=t, pos=i) for i, t in enumerate(fields.datatype_tags)
        ],
        **columns,
    )


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path inside a data object, else raise
    `BadRequest` (absolute, empty, `.`/`..`/empty components, NUL, too long)."""
    if not isinstance(path, str) or not path:
        raise BadRequest("A file path in a data object must not be empty.")
    if "\x00" in path:
        raise BadRequest(f"The file path {path!r} contains a NUL character.")
    if path.startswith("/"):
        raise BadRequest(f"The file path {path!r} is absolute; it must be relative.")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise BadRequest(f"The file path {path[:60]!r}… is longer than {MAX_PATH} bytes.")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise BadRequest(
                f"The file path {path!r} has an empty, '.' or '..' component; "
                "paths must be plain relative paths such as 'dir/file.nii.gz'."
            )
    return path


def _mode_of(content: FileContent) -> int:
    if isinstance(content, Path):
        return 0o755 if content.stat().st_mode & 0o111 else 0o644
    return 0o644


def _put(archive: Archive, content: FileContent) -> tuple[str, int]:
    store = archive.store
    if isinstance(content, bytes | bytearray | memoryview):
        return store.put_stream([bytes(content)])
    if isinstance(content, Path):
        return put_file(store, content)
    if isinstance(content, str):
        raise TypeError("file content must be bytes, a pathlib.Path or an iterable of bytes")
    return store.put_stream(content)


#: files written to the store at once by `store_dataset_files(..., jobs=PUT_JOBS)`: each is
#: mostly a wait (an S3 PUT's round trip, a local blob's fsync), not computation
PUT_JOBS = 8


def store_dataset_files(
    session: Session,
    archive: Archive,
    dataset: Dataset,
    files: Sequence[tuple[str, FileContent]],
    *,
    jobs: int = 1,
) -> None:
    """Store `files` (`(relative_path, content)` in tar order) as the content of `dataset`.

    Writes the blobs, then commits the manifest, `dataset.size` and `status = "stored"` in one
    transaction (the session is committed). On any error the session is rolled back and the
    dataset is not marked stored. Raises `BadRequest` for unsafe or duplicate paths.

    `jobs` > 1 writes that many files at once: only for contents that can be read apart and
    in any order (bytes, a path, an iterable over one file of its own; not pieces of one
    stream such as a tar read as it arrives). The manifest keeps the files' order either way;
    on an error the blobs already written stay, unreferenced, as after a sequential failure.
    """
    paths = [check_relative_path(path) for path, _content in files]
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise BadRequest(f"The file path {path!r} appears twice in the data object.")
        seen.add(path)
        # a file "a" and a file "a/b" cannot both exist once extracted
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise BadRequest(f"{'/'.join(parts[:i])!r} is both a file and a folder.")

    try:
        modes = [_mode_of(content) for _path, content in files]
        contents = [content for _path, content in files]
        if jobs > 1 and len(contents) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(jobs, len(contents)), "bl-store-put") as pool:
                written = list(pool.map(lambda content: _put(archive, content), contents))
        else:
            written = [_put(archive, content) for content in contents]
        members = [
            TarMember(path=path, size=size, sha256=sha, mode=mode)
            for (path, _content), (sha, size), mode in zip(files, written, modes, strict=True)
        ]
    except BaseException:
        session.rollback()
        raise
    commit_dataset_manifest(session, archive, dataset, members)


def commit_dataset_manifest(
    session: Session, archive: Archive, dataset: Dataset, members: Sequence[TarMember]
) -> None:
    """Step 2 of the module docstring for blobs already in the store: check that every one is
    there, then commit the manifest, `dataset.size` and `status = "stored"` in one transaction
    (with whatever else the session holds). On any error the session is rolled back."""
    try:
        missing = [m.path for m in members if not archive.store.has(m.sha256)]
        if missing:  # the store lost a blob it just acknowledged: never mark the object stored
            raise OSError(f"content store is missing blobs just written for {missing[:3]}")

        if dataset.create_date is None:
            dataset.create_date = datetime.now(UTC)
        layout = TarLayout(list(members), epoch_seconds(dataset.create_date))
        session.add(dataset)
        session.flush()
        session.execute(delete(DatasetFile).where(DatasetFile.dataset_id == dataset.id))
        session.add_all(
            DatasetFile(
                dataset_id=dataset.id, path=m.path, pos=i, size=m.size, sha256=m.sha256, mode=m.mode
            )
            for i, m in enumerate(members)
        )
        dataset.size = layout.size
        dataset.status = "stored"
        dataset.status_msg = "Successfully stored"
        if not dataset.storage:
            dataset.storage = "local"
        session.commit()
    except BaseException:
        session.rollback()
        raise


def dataset_members(session: Session, dataset_id: str) -> list[TarMember]:
    """A data object's manifest rows, in tar order."""
    rows = session.scalars(
        select(DatasetFile).where(DatasetFile.dataset_id == dataset_id).order_by(DatasetFile.pos)
    )
    return [TarMember(path=r.path, size=r.size, sha256=r.sha256, mode=r.mode) for r in rows]


@dataclass
class VerifyReport:
    dataset_id: str
    files: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    tar_size_mismatch: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt or self.tar_size_mismatch)


def verify_dataset(
    session: Session, archive: Archive, dataset_id: str, *, rehash: bool = False
) -> VerifyReport:
    """Check that every blob of a data object exists with the manifest's size (and, with
    `rehash`, its sha256), and that `dataset.size` equals the tar length."""
    report = VerifyReport(dataset_id)
    dataset = session.get(Dataset, dataset_id)
    members = dataset_members(session, dataset_id)
    report.files = len(members)
    for member in members:
        if not archive.store.has(member.sha256):
            report.missing.append(member.path)
            continue
        if archive.store.size(member.sha256) != member.size:
            report.wrong_size.append(member.path)
            continue
        if rehash and _hash_blob(archive, member.sha256) != member.sha256:
            report.corrupt.append(member.path)
    if dataset is not None and dataset.status == "stored":
        layout = TarLayout(members, epoch_seconds(dataset.create_date))
        report.tar_size_mismatch = dataset.size != layout.size
    return report


def _hash_blob(archive: Archive, sha256: str) -> str:
    digest = hashlib.sha256()
    store = archive.store
    for chunk in store.read_range(sha256, 0, store.size(sha256)):
        digest.update(chunk)
    return digest.hexdigest()
