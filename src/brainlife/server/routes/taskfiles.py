"""Task-folder downloads under /api/amaretti: `GET /task/download/:id/<path>` (or `?p=`) and
our task manifest. A folder streams as a gzip tar; a file streams with Range support."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from brainlife.server.deps import ArchiveDep, DownloadUser
from brainlife.server.routes.downloads import ShortSession, content_disposition, ranged_response
from brainlife.server.services import taskfiles
from brainlife.wire import TASK_MANIFEST_ROUTE

router = APIRouter()


def _path(path: str, p: str | None) -> str:
    """The path segment wins; `?p=` is brainlife's other spelling."""
    return path if path else (p or "")


@router.api_route("/task/download/{task_id}", methods=["GET", "HEAD"])
@router.api_route("/task/download/{task_id}/{path:path}", methods=["GET", "HEAD"])
def download_task_path(
    task_id: str,
    request: Request,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
    path: str = "",
    p: str | None = None,
) -> Response:
    """Download a file of a task's folder, or a folder as a .tar.gz of its contents."""
    target = taskfiles.open_task_path(session, archive, user, task_id, _path(path, p))
    chunk = archive.settings.chunk_size
    if target.is_dir:
        headers = {"Content-Disposition": content_disposition(target.filename)}
        if request.method == "HEAD":
            head = Response(headers=headers, media_type=target.media_type)
            del head.headers["content-length"]  # the length is unknown until it is compressed
            return head
        return StreamingResponse(
            taskfiles.stream_tgz(target, chunk_size=chunk),
            headers=headers,
            media_type=target.media_type,
        )
    return ranged_response(
        request,
        size=target.size,
        etag=target.etag,
        media_type=target.media_type,
        filename=target.filename,
        body=lambda start, end, nonblocking: taskfiles.stream_file(
            target, start, end, chunk_size=chunk, nonblocking=nonblocking
        ),
    )


@router.get(TASK_MANIFEST_ROUTE.replace("{id}", "{task_id}"), response_model=None)
@router.get(TASK_MANIFEST_ROUTE.replace("{id}", "{task_id}") + "/{path:path}", response_model=None)
def task_manifest(
    task_id: str,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
    path: str = "",
    p: str | None = None,
) -> dict[str, Any]:
    """The regular files a download of that path holds: `{_id, files: [{path, size, sha256}]}`."""
    target = taskfiles.open_task_path(session, archive, user, task_id, _path(path, p))
    return taskfiles.task_manifest(target)
