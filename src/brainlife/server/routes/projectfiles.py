"""A project's plain files under /api/warehouse: brainlife's listing, download and
`download-multiple` routes (`/files/<project>/…`, what the official CLI 1.8.2's `--s3` and
`--path` call), and ours to put and remove a file (`/projectfile/<project>/<path>`). Thin: parse,
call `services.projectfiles`, render. Rules and access are the service's.

A `PUT` body is streamed to a temporary file in the data folder while it is counted and hashed
(no database session is held meanwhile); `RequestLimits` lets it through unbounded and the
route bounds it by `max_project_file_bytes` itself, refusing a larger `Content-Length` before a
byte is read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from brainlife.server import documents, ranges
from brainlife.server.deps import ArchiveDep, DownloadUser, ShortSession, User
from brainlife.server.errors import BadRequest, PayloadTooLarge
from brainlife.server.limits import body_too_large
from brainlife.server.onecall import OneCallRoute
from brainlife.server.responses import JSONDocument
from brainlife.server.routes import download
from brainlife.server.services import downloads, projectfiles
from brainlife.wire import routes
from brainlife.wire.projectfiles import SHA256_HEADER, FileEntry, FileListing

router = APIRouter(route_class=OneCallRoute)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(projectfiles.MAX_PAGE))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) == 0:
        raise BadRequest("limit must be a whole number of entries, 1 to 1000.")
    return int(raw)


# the download routes first: `/files/<p>/download/…` is not a folder named "download"
@download(router, routes.PROJECT_FILE_DOWNLOAD)
def download_project_file(
    request: Request,
    project_id: str,
    path: str,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """One project file (Range supported; the ETag is its sha256)."""
    f = projectfiles.open_file(session, user, project_id, path)
    chunk = archive.settings.chunk_size
    return ranges.ranged_response(
        request,
        f,
        lambda start, end, nb: downloads.stream_blob(
            archive.store, f.sha256, start, end, chunk_size=chunk, nonblocking=nb
        ),
    )


@download(router, routes.PROJECT_FILES_TAR)
def download_project_folders(
    request: Request,
    project_id: str,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """Folders (`?paths[]=<folder>`, repeatable; "" is the whole tree) as one uncompressed tar
    (Range and a stable ETag, as for a data object)."""
    q = request.query_params
    paths = q.getlist("paths[]") + q.getlist("paths")
    tar = projectfiles.open_tar(session, user, project_id, paths)
    return ranges.ranged_response(
        request,
        tar,
        tar.body(archive.store, archive.settings.chunk_size),
    )


@router.get(routes.PROJECT_FILES.path, response_model=None)
@router.get(routes.PROJECT_FILES_PREFIX.path, response_model=None)
def list_project_files(
    request: Request, project_id: str, user: User, session: ShortSession, prefix: str = ""
) -> Response:
    """One page (`?limit=`, at most 1000; `?continuationToken=`) of a folder of the project's
    files: its files (`objects`) and subfolders (`folders`), in name order. (A plain
    `JSONDocument`: FastAPI's encoder would walk the 1,000 entries again, ~7x the time.)"""
    if "search" in request.query_params:  # answering the whole folder would look like a match
        raise BadRequest(
            "search: the project files listing does not filter by name; list the folder "
            "(/files/<project>/<folder>) and pick the names from it."
        )
    listing: FileListing = projectfiles.list_files(
        session,
        user,
        project_id,
        prefix,
        limit=_limit(request),
        token=request.query_params.get("continuationToken"),
    )
    return JSONDocument(listing)


@router.put(routes.PROJECT_FILE.path, response_model=None)
async def put_project_file(
    project_id: str, path: str, request: Request, user: User, archive: ArchiveDep
) -> FileEntry:
    """Store the body as the file `path` (a new one, or replacing one); the `X-Content-SHA256`
    header must be the body's sha256. Project admins and members."""
    limit = archive.settings.max_project_file_bytes
    declared = request.headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.strip().isdigit()):
        raise BadRequest("Content-Length must be a number of bytes.")
    if declared is not None and int(declared) > limit:
        raise PayloadTooLarge(body_too_large(int(declared), limit))

    def begin() -> projectfiles.PutTarget:
        with archive.request_session() as session:
            return projectfiles.begin_put(
                session, user, project_id, path, request.headers.get(SHA256_HEADER)
            )

    target = await run_in_threadpool(begin)
    # the store's own tmp/ (same file system: the blob is a hard link; swept after a crash)
    spool_dir = Path(getattr(archive.store, "tmp", archive.settings.data_dir / "tmp"))
    spool_dir.mkdir(exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool_dir, prefix="projectfile-")
    spooled = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(body_too_large(size, limit))
                    digest.update(chunk)
                    await run_in_threadpool(out.write, chunk)
            except ClientDisconnect:
                raise BadRequest("The upload was cut off: nothing was stored.") from None

        def finish() -> FileEntry:
            with archive.request_session() as session:
                row = projectfiles.finish_put(
                    session, archive.store, user, target, spooled, digest.hexdigest(), size
                )
                name = row.path.rsplit("/", 1)[-1]
                return documents.file_entry_doc(name, row.path, row.size, row.mtime, row.sha256)

        return await run_in_threadpool(finish)
    finally:
        spooled.unlink(missing_ok=True)


@router.delete(routes.PROJECT_FILE.path, status_code=204)
def remove_project_file(project_id: str, path: str, user: User, session: ShortSession) -> Response:
    """Remove the file `path` (its bytes stay in the content store). Project admins and
    members."""
    projectfiles.remove_file(session, user, project_id, path)
    return Response(status_code=204)
