"""Resumable uploads (*ours*, `routes.uploads`; docs/api.md "Uploads"): a data object is declared
with its files, each file's bytes are staged as they arrive, and the object is created only when
every file is in the content store.

- **Access**: a session is created only in a project the caller may write to
  (`access.writable_projects`, inside the query), and finalizing checks it again; a session is
  its creator's alone (anyone else gets the 404 of an unknown id).
- **Checks before a byte moves**: the files against the datatype's file list (every required id,
  `filename`s exactly, `dirname`s as folders, no unknown id), safe relative names
  (`brainlife.wire.paths`), counts and sizes (`brainlife.wire.uploads`, `Settings`), free space.
- **Staging**: file `n` of session `S` is appended to `<data_dir>/uploads/S/n`; its size is what
  the server holds (every byte written is a correct prefix: bytes only ever arrive in order), so
  a server killed mid-request loses at most what was in flight. The sha256 is computed as bytes
  arrive (after re-reading the staged prefix when a request resumes) and compared once the last
  byte is in: a mismatch drops the staged bytes (the file changed while it was sent). A verified
  file enters the store (`store.put_verified_file`), is marked `stored`, then its staged copy
  goes; a crash in between leaves a complete staged file that the next request verifies again.
- **Content already held** is not sent again, but only content the caller could read anyway:
  a declared (sha256, size) is "stored" at once when a data object the caller may read has a
  file with it, or one of the caller's own sessions stored it. Any other digest, even one the
  store holds, must be sent in full: the answer reveals nothing about other projects' files.
- **Finalizing** follows `ingest`'s ordering (blobs first, one commit last): the object, its
  manifest and the session's `finalized` state are one commit, so the object never appears
  half, and finalizing twice answers the same object.
- **Expiry**: an open session idle past `Settings.upload_expiry` is removed at start-up
  (`clean_uploads`) with its staged bytes and the blobs only it referenced; so are staged
  folders without a session (a crash between the two).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brainlife.server.access import readable_datasets, readable_projects, writable_projects
from brainlife.server.archive import Archive
from brainlife.server.db import lock_writes
from brainlife.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    full_disk_says,
)
from brainlife.server.ids import new_object_id
from brainlife.server.models import (
    Dataset,
    DatasetFile,
    Datatype,
    Project,
    Upload,
    UploadFile,
)
from brainlife.server.principal import Principal
from brainlife.server.services.ingest import commit_dataset_manifest, storing_dataset
from brainlife.server.services.objectfields import ObjectFields, clean_meta
from brainlife.server.store import CHUNK, put_verified_file
from brainlife.server.tarstream import TarMember
from brainlife.wire import is_object_id
from brainlife.wire.paths import relative_path_problem
from brainlife.wire.uploads import (
    UPLOAD_INLINE_MAX,
    UPLOAD_MAX_DESC,
    UPLOAD_MAX_FILES,
    UPLOAD_MAX_TAG,
    UPLOAD_MAX_TAGS,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: `UploadFile.sha256` of a file declared without a digest (it comes later: `declare_sha256`)
UNDECLARED = ""
_CONTENT_RANGE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19})$")
#: the longest subject/session/run (the indexed columns)
_MAX_META_VALUE = 128


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- declaring -------------------------------------------------------------------------------


def _strings(value: Any, what: str, *, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{what}' must be a list of strings.")
    if len(value) > limit:
        raise BadRequest(f"'{what}' has {len(value)} entries; at most {limit} are accepted.")
    out: list[str] = []
    for v in value:
        if not v.strip() or len(v) > UPLOAD_MAX_TAG:
            raise BadRequest(
                f"Each of '{what}' must be 1 to {UPLOAD_MAX_TAG} characters, not {v[:40]!r}."
            )
        if v not in out:
            out.append(v)
    return out


def _meta(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest('\'meta\' must be a JSON object (e.g. {"subject": "0001"}).')
    meta = dict(value)
    for key in ("subject", "session", "run"):
        v = meta.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise BadRequest(f"meta.{key} must be a string.")
        v = str(v)
        if not v or len(v) > _MAX_META_VALUE:
            raise BadRequest(f"meta.{key} must be 1 to {_MAX_META_VALUE} characters.")
        meta[key] = v
    # the rules every write route applies (keys without '.' or a leading '$', 64 KiB as JSON)
    return clean_meta(meta)


@dataclass(frozen=True)
class DeclaredFile:
    file_id: str | None
    path: str
    size: int
    sha256: str


def _declared_files(value: Any, max_bytes: int) -> list[DeclaredFile]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'files' must be a non-empty list of {id, name, size, sha256}.")
    if len(value) > UPLOAD_MAX_FILES:
        raise BadRequest(
            f"An upload may hold at most {UPLOAD_MAX_FILES} files; this one declares "
            f"{len(value)}. Split it into several data objects."
        )
    files: list[DeclaredFile] = []
    for i, f in enumerate(value):
        if not isinstance(f, dict):
            raise BadRequest(f"files[{i}] must be an object {{id, name, size, sha256}}.")
        name = f.get("name")
        problem = relative_path_problem(name)
        if problem:
            raise BadRequest(f"files[{i}]: {problem}.")
        size = f.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequest(f"files[{i}] ({name}): 'size' must be a number of bytes.")
        sha = f.get("sha256")
        if sha is None and size == 0:
            sha = _EMPTY_SHA256
        elif sha is None:
            sha = UNDECLARED  # declared later, before the last byte (`declare_sha256`)
        elif not isinstance(sha, str) or not _SHA256.match(sha):
            raise BadRequest(f"files[{i}] ({name}): 'sha256' must be 64 lower-case hex digits.")
        fid = f.get("id")
        if fid is not None and (not isinstance(fid, str) or not fid or len(fid) > 256):
            raise BadRequest(f"files[{i}] ({name}): 'id' must be a datatype file id.")
        files.append(DeclaredFile(fid, str(name), size, sha))
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise PayloadTooLarge(
            f"The upload declares {total} bytes; this archive accepts at most {max_bytes} "
            "bytes per upload. Split it into several data objects."
        )
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise BadRequest(f"The file path {f.path!r} appears twice in the upload.")
        seen.add(f.path)
    for f in files:
        parts = f.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise BadRequest(f"{'/'.join(parts[:i])!r} is both a file and a folder.")
    return files


def check_datatype_files(datatype: Datatype, files: Sequence[DeclaredFile]) -> None:
    """Refuse files that do not fit the datatype's file list (`files` of its document): an
    unknown or missing id, a required id absent, a name other than the declared `filename`, a
    file outside its `dirname`. A datatype without a file list takes any files."""
    specs = [s for s in (datatype.extra or {}).get("files") or [] if isinstance(s, dict)]
    if not specs:
        return
    by_id = {str(s.get("id")): s for s in specs}

    def described(s: dict[str, Any]) -> str:
        name = s.get("filename") or (str(s.get("dirname")) + "/")
        return f"{s.get('id')} ({name}{', required' if s.get('required') else ''})"

    listing = ", ".join(described(s) for s in specs)
    where = f"Datatype {datatype.name} has the files {listing}"
    counts: dict[str, int] = {}
    for f in files:
        if f.file_id is None:
            raise BadRequest(f"The file {f.path!r} names no datatype file id. {where}.")
        spec = by_id.get(f.file_id)
        if spec is None:
            raise BadRequest(f"Unknown file id {f.file_id!r} (for {f.path!r}). {where}.")
        counts[f.file_id] = counts.get(f.file_id, 0) + 1
        if spec.get("filename"):
            if f.path != spec["filename"]:
                raise BadRequest(
                    f"The file id {f.file_id!r} must be named {spec['filename']!r} in the data "
                    f"object, not {f.path!r}. {where}."
                )
            if counts[f.file_id] > 1:
                raise BadRequest(f"The file id {f.file_id!r} is given twice. {where}.")
        elif spec.get("dirname") and not f.path.startswith(str(spec["dirname"]).rstrip("/") + "/"):
            raise BadRequest(
                f"The file {f.path!r} (id {f.file_id!r}) must lie in the folder "
                f"{spec['dirname']!r}. {where}."
            )
    missing = [str(s.get("id")) for s in specs if s.get("required") and s.get("id") not in counts]
    if missing:
        raise BadRequest(f"Required file(s) missing: {', '.join(missing)}. {where}.")


def _datatype(session: Session, value: Any) -> Datatype:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BadRequest("'datatype' must be a datatype id or name (e.g. neuro/anat/t1w).")
    column = Datatype.id if is_object_id(value) else Datatype.name
    row = session.scalars(select(Datatype).where(column == value)).first()
    if row is None:
        raise NotFound(f"No datatype {value!r} (see 'bl datatype query').")
    return row


def _writable_project(session: Session, principal: Principal, project_id: Any) -> Project:
    if not is_object_id(project_id):
        raise BadRequest("'project' must be a project id (24 hex digits).")
    row = session.scalars(
        select(Project).where(Project.id == project_id, writable_projects(principal))
    ).first()
    if row is not None:
        return row
    readable = session.scalars(
        select(Project.id).where(
            Project.id == project_id, Project.removed.is_(False), readable_projects(principal)
        )
    ).first()
    if readable is None:
        raise NotFound(f"No project {project_id} (or it is not visible to you).")
    raise Forbidden(
        f"You may not add data objects to project {project_id}: only its admins and members "
        "can (ask one of its admins to make you a member)."
    )


def _held(
    session: Session, principal: Principal, files: Sequence[DeclaredFile]
) -> set[tuple[str, int]]:
    """The (sha256, size) of `files` that the caller may skip sending (module docstring): both
    must match, so a wrong size never lands in a manifest."""
    wanted = sorted({f.sha256 for f in files})
    held: set[tuple[str, int]] = set()
    for i in range(0, len(wanted), 500):
        batch = wanted[i : i + 500]
        rows = session.execute(
            select(DatasetFile.sha256, DatasetFile.size)
            .join(Dataset, Dataset.id == DatasetFile.dataset_id)
            .where(DatasetFile.sha256.in_(batch), readable_datasets(principal))
            .distinct()
        )
        held.update((sha, int(size)) for sha, size in rows)
        rows = session.execute(
            select(UploadFile.sha256, UploadFile.size)
            .join(Upload, Upload.id == UploadFile.upload_id)
            .where(
                UploadFile.sha256.in_(batch),
                UploadFile.stored.is_(True),
                Upload.user_id == principal.sub_str,
            )
            .distinct()
        )
        held.update((sha, int(size)) for sha, size in rows)
    return held


def _check_space(archive: Archive, needed: int) -> None:
    folder = archive.settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise InsufficientStorage(
            f"The archive has {free} bytes of free disk space; this upload needs {needed}. "
            "Ask the archive's administrator to free or add space."
        )


def _session_id(session: Session, principal: Principal, value: Any) -> Upload | None:
    """The caller's own session of the id a client chose (None: the id is free); an id another
    account holds is a 409 that says nothing more about it."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_object_id(value):
        raise BadRequest("'id' must be 24 lower-case hex digits (an upload session id).")
    row = session.get(Upload, value)
    if row is not None and row.user_id != principal.sub_str:
        raise Conflict(f"The upload session id {value} is taken: choose another.")
    return row


def _inline_data(value: Any, files: Sequence[DeclaredFile]) -> dict[int, bytes]:
    """The bytes of the files sent inside the request (`UploadFileRequest.data`), each checked
    against its declared size and sha256 before anything is written."""
    raw = value if isinstance(value, list) else []
    texts = {i: f.get("data") for i, f in enumerate(raw) if isinstance(f, dict) and "data" in f}
    if not texts:
        return {}
    # base64 of UPLOAD_INLINE_MAX bytes, checked before any decoding
    budget = 4 * (UPLOAD_INLINE_MAX // 3 + 1)
    if sum(len(t) if isinstance(t, str) else 0 for t in texts.values()) > budget:
        raise PayloadTooLarge(
            f"Files sent inside the request may hold {UPLOAD_INLINE_MAX} bytes in all; send "
            "larger ones with PUT …/file/<n>."
        )
    out: dict[int, bytes] = {}
    for i, text in texts.items():
        f = files[i]
        if not isinstance(text, str):
            raise BadRequest(f"files[{i}] ({f.path}): 'data' must be base64 text.")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"files[{i}] ({f.path}): 'data' is not valid base64.") from None
        if len(data) != f.size:
            raise BadRequest(
                f"files[{i}] ({f.path}): 'data' holds {len(data)} bytes; 'size' says {f.size}."
            )
        if f.sha256 == UNDECLARED:
            raise BadRequest(f"files[{i}] ({f.path}): a file sent in 'data' needs its 'sha256'.")
        got = hashlib.sha256(data).hexdigest()
        if got != f.sha256:
            raise BadRequest(
                f"files[{i}] ({f.path}): 'data' does not have the sha256 declared "
                f"({f.sha256[:12]}…, received {got[:12]}…): did the file change while it was "
                "being read?"
            )
        out[i] = data
    return out


def create_upload(session: Session, archive: Archive, principal: Principal, body: Any) -> Upload:
    """`POST /upload`: check everything, then record the session. Files sent inside the
    request (`data`) are stored with it; an id the client chose that names the caller's own
    session answers that session, unchanged (a request sent again after a lost answer), once
    the caller's write access is checked again. Either way the caller may write there (or the
    session is finalized) when this returns."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {project, datatype, files, …}.")
    if not isinstance(body.get("finalize", False), bool):
        raise BadRequest("'finalize' must be true or false.")
    existing = _session_id(session, principal, body.get("id"))
    if existing is not None:
        if existing.status == "open":  # as finalize would: the caller may still write there
            _writable_project(session, principal, existing.project_id)
        return existing
    project = _writable_project(session, principal, body.get("project"))
    datatype = _datatype(session, body.get("datatype"))
    files = _declared_files(body.get("files"), archive.settings.max_upload_session_bytes)
    check_datatype_files(datatype, files)
    desc = body.get("desc") or ""
    if not isinstance(desc, str) or len(desc) > UPLOAD_MAX_DESC:
        raise BadRequest(f"'desc' must be a string of at most {UPLOAD_MAX_DESC} characters.")
    doc = {
        "desc": desc,
        "meta": _meta(body.get("meta")),
        "tags": _strings(body.get("tags"), "tags", limit=UPLOAD_MAX_TAGS),
        "datatype_tags": _strings(
            body.get("datatype_tags"), "datatype_tags", limit=UPLOAD_MAX_TAGS
        ),
    }
    inline = _inline_data(body.get("files"), files)
    # files sent inside the request need no question about what the archive holds
    held = _held(
        session,
        principal,
        [f for i, f in enumerate(files) if f.sha256 != UNDECLARED and i not in inline],
    )
    for f in files:  # an empty file is stored at once: there is nothing to send
        if f.size == 0 and f.sha256 == _EMPTY_SHA256:
            archive.store.put_stream([], sha256=f.sha256)
            held.add((f.sha256, 0))
    _check_space(archive, sum(f.size for f in files if (f.sha256, f.size) not in held))
    for i, data in inline.items():  # checked above: the store checks the digest again
        f = files[i]
        if not archive.store.has(f.sha256):
            _put_inline(archive, f, data)
        held.add((f.sha256, f.size))
    now = _now()
    chosen = body.get("id")
    upload = Upload(
        id=chosen if isinstance(chosen, str) else new_object_id(now),
        user_id=principal.sub_str,
        project_id=project.id,
        datatype_id=datatype.id,
        status="open",
        doc=doc,
        create_date=now,
        expires=now + timedelta(seconds=archive.settings.upload_expiry),
        files=[
            UploadFile(
                pos=i,
                file_id=f.file_id,
                path=f.path,
                size=f.size,
                sha256=f.sha256,
                stored=i in inline or ((f.sha256, f.size) in held and archive.store.has(f.sha256)),
            )
            for i, f in enumerate(files)
        ],
    )
    session.add(upload)
    try:
        session.commit()
    except IntegrityError:  # the same id chosen by two requests at once: the first one's
        session.rollback()
        again = _session_id(session, principal, chosen)
        if again is None:
            raise
        return again
    return upload


def finalize_at_once(body: Any, upload: Upload) -> bool:
    """Whether `POST /upload` makes the data object too: `finalize: true` was asked (checked
    by `create_upload`) and every file is stored (a finalized session: its object again)."""
    return body.get("finalize") is True and (
        upload.status == "finalized" or all(f.stored for f in upload.files)
    )


def _put_inline(archive: Archive, f: DeclaredFile, data: bytes) -> None:
    with full_disk_says(
        f"The archive's disk is full: {f.path!r} cannot be stored; ask the archive's "
        "administrator to free or add space."
    ):
        archive.store.put_stream([data], sha256=f.sha256)


# --- the session -----------------------------------------------------------------------------


def get_upload(
    session: Session, principal: Principal, upload_id: str, *, lock: bool = False
) -> Upload:
    """The caller's session `upload_id`; anyone else's, or an unknown id, is a 404. With
    `lock`, read (again) under the session's lock, held until the caller's transaction ends:
    finalize and delete decide on what they read, and at once each must see the one before
    (eight finalizes at once made seven data objects; a delete under a finalize, a 500)."""
    if lock and is_object_id(upload_id):
        lock_writes(session, f"upload session {upload_id}")
    row = (
        session.get(Upload, upload_id, populate_existing=lock) if is_object_id(upload_id) else None
    )
    if row is None or row.user_id != principal.sub_str:
        raise NotFound(f"No upload session {upload_id} (it may have expired).")
    return row


def staged_path(archive: Archive, upload_id: str, pos: int) -> Path:
    return archive.settings.uploads_dir / upload_id / str(pos)


def received_bytes(archive: Archive, upload: Upload) -> dict[int, int]:
    """How many bytes of each file the server holds (a stored file: all of them)."""
    out: dict[int, int] = {}
    for f in upload.files:
        if f.stored:
            out[f.pos] = f.size
            continue
        try:
            out[f.pos] = min(staged_path(archive, upload.id, f.pos).stat().st_size, f.size)
        except FileNotFoundError:
            out[f.pos] = 0
    return out


def touch(session: Session, archive: Archive, upload: Upload) -> None:
    upload.expires = _now() + timedelta(seconds=archive.settings.upload_expiry)
    session.commit()


def delete_upload(session: Session, archive: Archive, principal: Principal, upload_id: str) -> None:
    """`DELETE /upload/<id>`: an open session and its staged bytes go (a finalized one: only the
    session; its object stays)."""
    upload = get_upload(session, principal, upload_id, lock=True)
    session.delete(upload)
    session.commit()
    shutil.rmtree(archive.settings.uploads_dir / upload_id, ignore_errors=True)


def _upload_file(upload: Upload, index: str) -> UploadFile:
    if not (index.isascii() and index.isdigit()) or int(index) >= len(upload.files):
        raise NotFound(f"Upload session {upload.id} has no file {index[:20]!r}.")
    return upload.files[int(index)]


def _lock_staged(path: Path, name: str) -> int:
    """Open (creating) a staged file and take its lock, or 409 when a request is sending it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Conflict(
            f"Another request is sending {name!r} of this upload right now; "
            "wait for it to end (GET the session to see what the server holds)."
        ) from None
    return fd


def declare_sha256(
    session: Session, archive: Archive, principal: Principal, upload_id: str, index: str, body: Any
) -> Upload:
    """`PUT /upload/<id>/file/<n>/sha256`: the digest of a file declared without one (a client
    that hashes while it sends). The same rule as at creation decides whether its bytes are
    needed at all: "stored" only for content a data object the caller may read holds (or one of
    the caller's sessions stored), and then the bytes staged so far go. Declaring the digest
    already declared is a no-op (a retried request); another one is a 409."""
    upload = get_upload(session, principal, upload_id)
    if upload.status != "open":
        raise Conflict(f"Upload session {upload_id} is finalized already.")
    f = _upload_file(upload, index)
    sha = body.get("sha256") if isinstance(body, dict) else None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise BadRequest('The body must be {"sha256": <64 lower-case hex digits>}.')
    if f.sha256 == sha:
        return upload
    if f.sha256 != UNDECLARED or f.stored:
        raise Conflict(
            f"The sha256 of {f.path!r} is declared already ({f.sha256[:12]}…); a file's digest "
            "does not change within an upload (start a new one for new content)."
        )
    path = staged_path(archive, upload.id, f.pos)
    fd = _lock_staged(path, f.path)
    try:
        declared = DeclaredFile(f.file_id, f.path, f.size, sha)
        held = (sha, f.size) in _held(session, principal, [declared]) and archive.store.has(sha)
        f.sha256 = sha
        f.stored = held
        touch(session, archive, upload)
        if held:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)
    return upload


# --- receiving bytes -------------------------------------------------------------------------

#: The running sha256 of a staged file between two `PUT`s of it in this process: staged path ->
#: (inode, size, mtime, ctime, hasher), saved when a request ends before the file's last byte.
#: A hit spares the next request re-reading the staged prefix (a client sending a large file in
#: pieces); any other change of the file (another worker process wrote it, a mismatch truncated
#: it) changes its size or times, misses, and the prefix is read again as after a restart.
_HASHERS: OrderedDict[str, tuple[tuple[int, int, int, int], Any]] = OrderedDict()
_HASHERS_LOCK = threading.Lock()
_HASHERS_MAX = 64


def _stat_key(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _take_hasher(path: Path, fd: int) -> Any:
    with _HASHERS_LOCK:
        entry = _HASHERS.pop(str(path), None)
    if entry is not None and entry[0] == _stat_key(fd):
        return entry[1]
    return None


def _keep_hasher(path: Path, fd: int, hasher: Any) -> None:
    key = _stat_key(fd)
    with _HASHERS_LOCK:
        _HASHERS[str(path)] = (key, hasher)
        while len(_HASHERS) > _HASHERS_MAX:
            _HASHERS.popitem(last=False)


#: bytes written to a staged file between two hand-overs of them to the disk (`FileWrite.write`)
WRITE_BEHIND = 32 * 1024 * 1024


def _write_behind(fd: int, start: int, length: int) -> None:
    """Start writing `[start, start + length)` of `fd` to the disk now, without waiting for it
    (`posix_fadvise` `DONTNEED`: Linux starts the writeback of the range's dirty pages, and drops
    the ones already written from the page cache). The file is still fsynced when it is stored
    (`store.link_in`); this only spreads that disk write over the receive: the fsync of a
    1 GiB staged file written all at once took 0.65-0.68 s at finalize, most of which now
    overlaps the body's arrival (docs/decisions.md, "Upload speed"). Where the call is missing
    or refused, the fsync does all the work, as before."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)


@dataclass
class FileWrite:
    """One `PUT` of a file's bytes `[start, end)`, appended to its staged file: `open` takes the
    file's lock (one writer at a time, across worker processes) and re-hashes the staged prefix;
    `write` appends (raw writes: every byte written is on disk in order), handing each
    `WRITE_BEHIND` bytes to the disk as they come (`_write_behind`); `finish` verifies."""

    upload_id: str
    pos: int
    path: Path
    name: str
    size: int
    sha256: str
    start: int
    end: int
    fd: int = -1
    written: int = 0
    hasher: Any = None
    behind: int = 0  # bytes of this write already handed to the disk

    def open(self) -> None:
        self.fd = _lock_staged(self.path, self.name)
        held = os.fstat(self.fd).st_size
        if held != self.start:
            self.close()
            raise Conflict(
                f"The server holds {held} bytes of {self.name!r}; send from byte {held} "
                f"(Content-Range: bytes {held}-…/{self.size}), not {self.start}."
            )
        cached = _take_hasher(self.path, self.fd) if self.start else None
        self.hasher = cached if cached is not None else hashlib.sha256()
        if self.start and cached is None:
            with open(self.path, "rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK), b""):
                    self.hasher.update(chunk)

    def write(self, data: bytes | memoryview) -> None:
        room = self.end - self.start - self.written
        extra = len(data) > room
        view = memoryview(data)[:room] if extra else memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise InsufficientStorage(
                        f"The archive's disk is full: {self.start + self.written} bytes of "
                        f"{self.name!r} are kept; send the rest once space is freed."
                    ) from None
                raise
            self.hasher.update(view[:n])
            self.written += n
            view = view[n:]
        if self.written - self.behind >= WRITE_BEHIND:
            _write_behind(self.fd, self.start + self.behind, self.written - self.behind)
            self.behind = self.written
        if extra:
            raise BadRequest(
                f"The body is longer than its Content-Range (bytes {self.start}-{self.end - 1}); "
                f"the first {self.end - self.start} bytes were kept."
            )

    def write_all(self, chunks: Sequence[bytes]) -> None:
        """`write` each chunk in order (a batch as it was read from the socket, not joined)."""
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        if self.fd >= 0:
            if self.hasher is not None and not self.complete():
                _keep_hasher(self.path, self.fd, self.hasher)
            os.close(self.fd)  # also releases the lock
            self.fd = -1

    def complete(self) -> bool:
        return self.start + self.written == self.size


def parse_content_range(value: str | None, size: int) -> tuple[int, int]:
    """`[start, end)` of `Content-Range: bytes a-b/size`."""
    match = _CONTENT_RANGE.match((value or "").strip())
    if not match:
        raise BadRequest(
            "A file's bytes need 'Content-Range: bytes <first>-<last>/<size>' (e.g. "
            f"bytes 0-1048575/{size})."
        )
    first, last, total = (int(g) for g in match.groups())
    if total != size:
        raise BadRequest(f"Content-Range says the file has {total} bytes; it was declared {size}.")
    if not first <= last < size:
        raise BadRequest(f"Content-Range bytes {first}-{last} is not within the file's {size}.")
    return first, last + 1


def begin_write(
    session: Session,
    archive: Archive,
    principal: Principal,
    upload_id: str,
    index: str,
    content_range: str | None,
    content_length: str | None,
) -> FileWrite:
    """Check a `PUT` and open its staged file (`FileWrite.open`)."""
    upload = get_upload(session, principal, upload_id)
    if upload.status != "open":
        raise Conflict(f"Upload session {upload_id} is finalized already.")
    f = _upload_file(upload, index)
    if f.stored:
        raise Conflict(f"The server has every byte of {f.path!r} already; nothing to send.")
    start, end = parse_content_range(content_range, f.size)
    if end == f.size and f.sha256 == UNDECLARED:
        raise Conflict(
            f"Declare the sha256 of {f.path!r} (PUT …/file/{f.pos}/sha256) before sending its "
            "last byte: the server checks the whole file against it."
        )
    length = (content_length or "").strip()
    if length.isdigit() and int(length) != end - start:
        raise BadRequest(
            f"Content-Length {length} does not match Content-Range ({end - start} bytes)."
        )
    touch(session, archive, upload)
    write = FileWrite(
        upload_id,
        f.pos,
        staged_path(archive, upload_id, f.pos),
        f.path,
        f.size,
        f.sha256,
        start,
        end,
    )
    write.open()
    return write


def finish_write(session: Session, archive: Archive, write: FileWrite) -> None:
    """After a `PUT`'s body: when the file is complete, verify its sha256, store it, mark it
    stored (then drop the staged copy); a mismatch drops the staged bytes."""
    write.close()
    if not write.complete():
        return
    got = write.hasher.hexdigest()
    if got != write.sha256:
        os.truncate(write.path, 0)
        f = session.get(UploadFile, (write.upload_id, write.pos))
        if f is not None:  # a new digest may be declared with the new bytes
            f.sha256 = UNDECLARED
            session.commit()
        raise BadRequest(
            f"The bytes received for {write.name!r} do not have the sha256 declared "
            f"({write.sha256[:12]}…, received {got[:12]}…): did the file change while it was "
            "being uploaded? The staged bytes were dropped; upload it again."
        )
    _store_staged(session, archive, write.upload_id, write.pos)


def _store_staged(session: Session, archive: Archive, upload_id: str, pos: int) -> None:
    path = staged_path(archive, upload_id, pos)
    f = session.get(UploadFile, (upload_id, pos))
    if f is None:  # the session was deleted meanwhile
        return
    with full_disk_says(
        f"The archive's disk is full: {f.path!r} is received but cannot be stored yet; "
        "try again once space is freed (nothing is lost)."
    ):
        put_verified_file(archive.store, path, f.sha256)
    f.stored = True
    session.commit()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def recover_complete(session: Session, archive: Archive, upload: Upload) -> None:
    """Files whose staged bytes are complete but not marked stored (the server stopped between
    the last byte and the commit): verify and store them now."""
    received = received_bytes(archive, upload)
    for f in upload.files:
        if f.stored or received[f.pos] != f.size or f.size == 0 or f.sha256 == UNDECLARED:
            continue
        path = staged_path(archive, upload.id, f.pos)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() == f.sha256:
            _store_staged(session, archive, upload.id, f.pos)
        else:
            os.truncate(path, 0)


# --- finalizing ------------------------------------------------------------------------------


def finalize_upload(
    session: Session,
    archive: Archive,
    principal: Principal,
    upload_id: str,
    *,
    access_checked: bool = False,
) -> Dataset:
    """`POST /upload/<id>/finalize`: the data object, once every file is stored (409
    otherwise); the same object again for a finalized session."""
    upload = get_upload(session, principal, upload_id, lock=True)
    if upload.status == "finalized" and upload.dataset_id:
        ds = session.get(Dataset, upload.dataset_id)
        if ds is None:
            raise NotFound(f"The data object of upload {upload_id} no longer exists.")
        return ds
    recover_complete(session, archive, upload)
    waiting = [f.path for f in upload.files if not f.stored]
    if waiting:
        raise Conflict(
            f"{len(waiting)} file(s) of upload {upload_id} are not complete yet (first: "
            f"{waiting[0]!r}); send their bytes, then finalize."
        )
    if not access_checked:  # (by the request that created the session, a moment ago)
        _writable_project(session, principal, upload.project_id)
    doc = upload.doc or {}
    meta = dict(doc.get("meta") or {})
    now = _now()
    fields = ObjectFields(
        desc=doc.get("desc") or "",
        tags=doc.get("tags") or [],
        datatype_tags=doc.get("datatype_tags") or [],
        meta=meta,
    )
    ds = storing_dataset(
        now,
        principal.sub_str,
        upload.project_id,
        upload.datatype_id,
        fields,
        update_date=now,
        prov={"upload_id": upload.id},
        extra={"download_count": 0},
    )
    upload.status = "finalized"
    upload.dataset_id = ds.id
    members = [
        TarMember(path=f.path, size=f.size, sha256=f.sha256, mode=0o644) for f in upload.files
    ]
    commit_dataset_manifest(session, archive, ds, members)
    shutil.rmtree(archive.settings.uploads_dir / upload.id, ignore_errors=True)
    return ds


# --- start-up cleaning -----------------------------------------------------------------------


def _remove_blobs(session: Session, archive: Archive, digests: Iterable[str]) -> int:
    """Remove blobs no data object and no stored file of a session references (local store)."""
    removed = 0
    for sha in set(digests):
        used = (
            session.scalars(
                select(DatasetFile.sha256).where(DatasetFile.sha256 == sha).limit(1)
            ).first()
            or session.scalars(
                select(UploadFile.sha256)
                .where(UploadFile.sha256 == sha, UploadFile.stored.is_(True))
                .limit(1)
            ).first()
        )
        path = archive.store.local_path(sha) if not used else None
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def clean_uploads(archive: Archive, now: datetime | None = None) -> int:
    """At start-up: remove expired sessions (open ones with their staged bytes and the blobs only
    they referenced; finalized ones are only records), and staged folders that have no open
    session. Returns how many sessions went."""
    now = now or _now()
    folder = archive.settings.uploads_dir
    with archive.session() as session:
        expired = [u for u in session.scalars(select(Upload)) if _aware(u.expires) < now]
        digests = [f.sha256 for u in expired if u.status == "open" for f in u.files if f.stored]
        if expired:
            session.execute(
                delete(UploadFile).where(UploadFile.upload_id.in_([u.id for u in expired]))
            )
            session.execute(delete(Upload).where(Upload.id.in_([u.id for u in expired])))
            session.commit()
        _remove_blobs(session, archive, digests)
        live = set(session.scalars(select(Upload.id).where(Upload.status == "open")))
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name not in live:
                shutil.rmtree(entry, ignore_errors=True)
    return len(expired)
