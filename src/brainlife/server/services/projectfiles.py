"""A project's plain files (brainlife's "S3 project files", the file browser of the official CLI
1.8.2): a tree of files beside the project's data objects, each a row of `project_files`
(project, relative path → sha256, size, mtime) naming a blob of the archive's content store.

Who may do what (in SQL, `access`): whoever may read the project's data objects lists and
downloads its files; its admins and members (archive admins too) put and remove them. A project
that does not exist is 404; one the caller may not read is 403 (what the official CLI prints as
"Access denied").

The listing is S3's ListObjectsV2 with a `/` delimiter: one folder level, folders and files in
one name order, at most `MAX_PAGE` entries a page, and an opaque continuation token (the last
key given). Paths under a folder are contiguous in that order, so a folder is one entry however
many files it holds, and the next page seeks past it in the index (`_after`).

Putting a file is two steps around the body: `begin_put` checks access and the path before a
byte is read; the route spools the bounded body to a temporary file while hashing it, and
`finish_put` stores it only if its sha256 is the one declared (a failed or cut-off upload leaves
no row and the old file, if any, in place). Removing a file removes its row: the blob stays
(another file or data object may have the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server import documents
from brainlife.server.access import readable_projects, writable_projects
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Project, ProjectFile
from brainlife.server.principal import Principal
from brainlife.server.services.downloads import FileDownload, guess_media_type
from brainlife.server.store import ByteStore, put_verified_file
from brainlife.server.tarstream import NamedTar, TarLayout, TarMember
from brainlife.wire import is_object_id
from brainlife.wire.paths import relative_path_problem
from brainlife.wire.projectfiles import (
    MAX_PAGE,
    FileEntry,
    FileListing,
    FolderEntry,
    project_path_problem,
)

#: the most files one `download-multiple` tar holds (the tar is laid out in memory)
MAX_TAR_FILES = 100_000
#: the most folders one `download-multiple` names
MAX_TAR_PATHS = 100
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: rows a listing reads at a time
_BATCH = 128


def _project(session: Session, principal: Principal | None, project_id: str, *, write: bool) -> str:
    """The project's id once the caller may read it (`write`: put and remove files in it)."""
    row = None
    if is_object_id(project_id):
        writable = Project.id.in_(select(Project.id).where(writable_projects(principal)))
        row = session.execute(
            select(
                Project.id, readable_projects(principal).label("readable"), writable.label("w")
            ).where(Project.id == project_id)
        ).first()
    if row is None:
        raise NotFound(f"There is no project {project_id!r}.")
    if not row.readable:
        raise Forbidden("You may not read this project's files: it is not public.")
    if write and not row.w:
        raise Forbidden("Only the project's admins and members may put or remove its files.")
    return str(row.id)


def _clean_prefix(prefix: str) -> str:
    """`docs/raw` (slashes at either end dropped, as the official CLI sends it) → `docs/raw/`;
    the root → ""."""
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    problem = relative_path_problem(prefix)
    if problem is not None:
        raise BadRequest(f"Cannot list this folder: {problem}.")
    return prefix + "/"


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_token(token: str, prefix: str) -> str:
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        key = None
    if key is None or not key.startswith(prefix) or len(key) <= len(prefix):
        raise BadRequest(
            "The continuation token is not one this listing gave: list the folder again "
            "from its start."
        )
    return key


def _after(key: str) -> str:
    """The smallest path that sorts after `key` and everything under it, when `key` is a folder
    (`docs/` → `docs0`: `0` follows `/`); a file's key itself otherwise (compared with `>`)."""
    return key[:-1] + "0" if key.endswith("/") else key


def list_files(
    session: Session,
    principal: Principal | None,
    project_id: str,
    prefix: str = "",
    *,
    limit: int = MAX_PAGE,
    token: str | None = None,
) -> FileListing:
    """One page of the folder `prefix` of the project's tree (404 when nothing is under a folder
    other than the root)."""
    pid = _project(session, principal, project_id, write=False)
    prefix = _clean_prefix(prefix)
    limit = max(1, min(limit, MAX_PAGE))
    cursor, strict = (prefix, False) if token is None else (_decode_token(token, prefix), True)
    if strict and cursor.endswith("/"):
        cursor, strict = _after(cursor), False
    upper = _after(prefix) if prefix else None
    objects: list[FileEntry] = []
    folders: list[FolderEntry] = []
    last = ""
    truncated = False
    grow = _BATCH
    while True:
        # small batches after a folder (the next starts past it: a big one would mostly read
        # rows of the folder just skipped), doubling while they hold files only
        batch = min(limit - len(objects) - len(folders) + 1, grow)
        query = select(ProjectFile.path, ProjectFile.size, ProjectFile.mtime, ProjectFile.sha256)
        query = query.where(ProjectFile.project_id == pid)
        query = query.where(ProjectFile.path > cursor if strict else ProjectFile.path >= cursor)
        if upper is not None:
            query = query.where(ProjectFile.path < upper)
        rows = session.execute(query.order_by(ProjectFile.path).limit(batch)).all()
        if not rows:
            break
        reseek = False
        for path, size, mtime, sha256 in rows:
            if len(objects) + len(folders) == limit:
                truncated = True
                break
            rest = path[len(prefix) :]
            if "/" in rest:
                name = rest.split("/", 1)[0]
                last = prefix + name + "/"
                folders.append({"Name": name, "Prefix": last})
                cursor, strict, reseek = _after(last), False, True
                break
            last = path
            objects.append(documents.file_entry_doc(rest, path, size, mtime, sha256))
            cursor, strict = path, True
        if truncated or (not reseek and len(rows) < batch):
            break
        grow = _BATCH if reseek else grow * 2
    if prefix and not objects and not folders and token is None:
        raise NotFound(f"There is no folder {prefix!r} in this project's files.")
    token_out = _encode_token(last) if truncated else ""
    return documents.file_listing_doc(objects, folders, truncated, token_out, prefix)


def open_file(
    session: Session, principal: Principal | None, project_id: str, path: str
) -> FileDownload:
    pid = _project(session, principal, project_id, write=False)
    problem = relative_path_problem(path)
    if problem is not None:
        raise BadRequest(f"Cannot download this file: {problem}.")
    row = session.get(ProjectFile, (pid, path))
    if row is None:
        raise NotFound(f"There is no file {path!r} in this project's files.")
    name = path.rsplit("/", 1)[-1]
    return FileDownload(row.sha256, row.size, name, guess_media_type(name), False)


class FilesTar(NamedTar):
    """Folders of a project's tree as one tar (`download-multiple`)."""


def open_tar(
    session: Session, principal: Principal | None, project_id: str, paths: list[str]
) -> FilesTar:
    """The files under each of `paths` (a folder, "" for the whole tree, or one file). One path:
    its files relative to it (`docs` → `protocol.pdf`), as the official CLI extracts into a
    folder named after it; several: each under its own last name (`docs/protocol.pdf`)."""
    pid = _project(session, principal, project_id, write=False)
    if not paths:
        raise BadRequest("Say which folders: ?paths[]=<folder>.")
    if len(paths) > MAX_TAR_PATHS:
        raise BadRequest(f"At most {MAX_TAR_PATHS} folders go in one tar.")
    members: list[TarMember] = []
    newest: datetime | None = None
    for raw in paths:
        clean = raw.strip("/")
        if clean:
            problem = relative_path_problem(clean)
            if problem is not None:
                raise BadRequest(f"Cannot download this folder: {problem}.")
        query = select(ProjectFile).where(ProjectFile.project_id == pid)
        if clean:
            folder = clean + "/"
            query = query.where(
                (ProjectFile.path == clean)
                | ((ProjectFile.path >= folder) & (ProjectFile.path < _after(folder)))
            )
        rows = session.scalars(query.order_by(ProjectFile.path).limit(MAX_TAR_FILES + 1)).all()
        if not rows:
            raise NotFound(f"There is no folder or file {raw!r} in this project's files.")
        base = clean.rsplit("/", 1)[0] + "/" if "/" in clean else ""
        if len(paths) == 1:
            base = clean + "/" if clean else ""
        for row in rows:
            name = row.path[len(base) :] if row.path != clean else row.path.rsplit("/", 1)[-1]
            members.append(TarMember(name, row.size, row.sha256))
            newest = row.mtime if newest is None or row.mtime > newest else newest
        if len(members) > MAX_TAR_FILES:
            raise BadRequest(
                f"These folders hold more than {MAX_TAR_FILES} files: download fewer at a time."
            )
    mtime = int((newest or datetime.now(UTC)).timestamp())
    last = paths[0].strip("/").rsplit("/", 1)[-1] if len(paths) == 1 else ""
    return FilesTar(TarLayout(members, mtime), last or pid)


@dataclass(frozen=True)
class PutTarget:
    project_id: str
    path: str
    sha256: str


def begin_put(
    session: Session,
    principal: Principal,
    project_id: str,
    path: str,
    sha256: str | None,
) -> PutTarget:
    """Check what a `PUT` may do before its body is read."""
    pid = _project(session, principal, project_id, write=True)
    problem = project_path_problem(path)
    if problem is not None:
        raise BadRequest(f"Cannot store this file: {problem}.")
    digest = (sha256 or "").strip().lower()
    if not _SHA256.fullmatch(digest):
        raise BadRequest(
            "Send the file's sha256 (64 hex digits) in the X-Content-SHA256 header: the "
            "server stores the bytes only if they are the ones you meant."
        )
    _refuse_clashes(session, pid, path)
    return PutTarget(pid, path, digest)


def _refuse_clashes(session: Session, pid: str, path: str) -> None:
    """400 if `path` is a folder of the project's files, or one of its parents a file."""
    folder_clash = session.scalar(
        select(ProjectFile.path)
        .where(ProjectFile.project_id == pid)
        .where((ProjectFile.path >= path + "/") & (ProjectFile.path < path + "0"))
        .limit(1)
    )
    if folder_clash is not None:
        raise BadRequest(f"{path!r} is a folder of this project's files; a file cannot replace it.")
    parents = [path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)]
    clash = session.scalar(
        select(ProjectFile.path)
        .where(ProjectFile.project_id == pid, ProjectFile.path.in_(parents))
        .limit(1)
    )
    if clash is not None:
        raise BadRequest(f"{clash!r} is a file of this project's files; it cannot hold a folder.")


def finish_put(
    session: Session,
    store: ByteStore,
    principal: Principal,
    target: PutTarget,
    spooled: Path,
    got_sha256: str,
    size: int,
) -> ProjectFile:
    """Store the spooled body as the file, if its digest is the one declared (400 otherwise,
    nothing changed). Replaces a file of the same path."""
    if got_sha256 != target.sha256:
        raise BadRequest(
            f"The bytes received ({size} bytes, sha256 {got_sha256}) are not those declared "
            f"(sha256 {target.sha256}): nothing was stored. Send the file again."
        )
    put_verified_file(store, spooled, got_sha256)
    # checked again and written under the lock of the project's files: two PUTs of one path at
    # once both inserted it (a 500 on PostgreSQL), and 'a' and 'a/b' sent at once could both
    # pass the checks made before their bodies arrived
    lock_writes(session, f"files of project {target.project_id}")
    _refuse_clashes(session, target.project_id, target.path)
    row = session.get(ProjectFile, (target.project_id, target.path), populate_existing=True)
    if row is None:
        row = ProjectFile(project_id=target.project_id, path=target.path)
        session.add(row)
    row.sha256, row.size = got_sha256, size
    row.mtime = datetime.now(UTC)
    row.user_id = principal.sub_str
    session.commit()
    return row


def remove_file(session: Session, principal: Principal, project_id: str, path: str) -> None:
    pid = _project(session, principal, project_id, write=True)
    row = session.get(ProjectFile, (pid, path))
    if row is None:
        raise NotFound(f"There is no file {path!r} in this project's files.")
    session.delete(row)
    session.commit()
