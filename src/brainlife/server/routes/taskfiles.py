"""Task-folder downloads under /api/amaretti: `GET /task/download/:id/<path>` (or `?p=`) and
our task manifest. A file streams with Range support; a folder streams as a byte-stable gzip tar
(`foldertgz`) with an ETag, and Range too (`ranges.RegeneratedResponse`). Every byte comes from
`Archive.task_files` (`taskstore.TaskFiles`), through `services.taskfiles`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from brainlife.server import documents, ranges
from brainlife.server.deps import ArchiveDep, DownloadUser, ShortSession
from brainlife.server.routes import params
from brainlife.server.services import taskfiles
from brainlife.wire import TaskManifest, routes

router = APIRouter()


def _path(path: str, p: str | None) -> str:
    """The path segment wins; `?p=` is brainlife's other spelling."""
    return path if path else (p or "")


@router.get(routes.TASK_DOWNLOAD.path, openapi_extra=params.DOWNLOAD)
@router.head(routes.TASK_DOWNLOAD.path, openapi_extra=params.DOWNLOAD)
@router.get(routes.TASK_DOWNLOAD_PATH.path, openapi_extra=params.DOWNLOAD)
@router.head(routes.TASK_DOWNLOAD_PATH.path, openapi_extra=params.DOWNLOAD)
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
    target = taskfiles.open_task_path(
        session=session, archive=archive, principal=user, task_id=task_id, path=_path(path, p)
    )
    chunk = archive.settings.chunk_size
    if target.is_dir:
        return ranges.RegeneratedResponse(
            request,
            lambda: taskfiles.folder_body(archive=archive, target=target),
            media_type=target.media_type,
            filename=target.filename,
            chunk_size=chunk,
        )
    return ranges.ranged_response(
        request,
        size=target.size,
        etag=ranges.quote_etag(target.etag),
        media_type=target.media_type,
        filename=target.filename,
        body=lambda start, end, nonblocking: taskfiles.stream_file(
            archive=archive,
            target=target,
            start=start,
            end=end,
            chunk_size=chunk,
            nonblocking=nonblocking,
        ),
    )


@router.get(routes.TASK_MANIFEST.path, response_model=None, openapi_extra=params.DOWNLOAD)
@router.get(routes.TASK_MANIFEST_PATH.path, response_model=None, openapi_extra=params.DOWNLOAD)
def task_manifest(
    task_id: str,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
    path: str = "",
    p: str | None = None,
) -> TaskManifest:
    """Whether a download of that path is a file or a folder, and the regular files it holds
    (`wire.TaskManifest`)."""
    target = taskfiles.open_task_path(
        session=session, archive=archive, principal=user, task_id=task_id, path=_path(path, p)
    )
    files = taskfiles.task_manifest(archive=archive, target=target)
    return documents.task_manifest_doc(
        target.task_id, target.rel, folder=target.is_dir, files=files
    )
