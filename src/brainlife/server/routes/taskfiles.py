"""Task-folder downloads under /api/amaretti: `GET /task/download/:id/<path>` (or `?p=`) and
our task manifest. A file streams with Range support; a folder streams as a byte-stable gzip tar
(`foldertgz`) with an ETag, and Range too (`ranges.RegeneratedResponse`). Every byte comes from
`Archive.task_files` (`taskstore.TaskFiles`), through `services.taskfiles`; with an object store
(`bl serve --store s3://…`) a file's GET is redirected (307) to a presigned URL instead."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from brainlife.server import documents, ranges
from brainlife.server.deps import ArchiveDep, DownloadUser, ShortSession
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import download, params
from brainlife.server.services import taskfiles
from brainlife.wire import TaskManifest, routes

router = APIRouter(route_class=OneCallRoute)


def _target(
    task_id: str,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
    path: str = "",
    p: str | None = None,
) -> taskfiles.TaskTarget:
    """The checked task path of a request: the path segment wins; `?p=` is brainlife's other
    spelling. The session closes before the response starts (`ShortSession`)."""
    return taskfiles.open_task_path(
        session=session, archive=archive, principal=user, task_id=task_id, path=path or p or ""
    )


Target = Annotated[taskfiles.TaskTarget, Depends(_target)]


@download(router, routes.TASK_DOWNLOAD, routes.TASK_DOWNLOAD_PATH)
def download_task_path(request: Request, target: Target, archive: ArchiveDep) -> Response:
    """Download a file of a task's folder, or a folder as a .tar.gz of its contents."""
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
        target,
        lambda start, end, nb: taskfiles.stream_file(
            archive=archive, target=target, start=start, end=end, chunk_size=chunk, nonblocking=nb
        ),
        presign=lambda: taskfiles.presign_file(archive, target),
    )


@router.get(routes.TASK_MANIFEST.path, response_model=None, openapi_extra=params.DOWNLOAD)
@router.get(routes.TASK_MANIFEST_PATH.path, response_model=None, openapi_extra=params.DOWNLOAD)
def task_manifest(target: Target, archive: ArchiveDep) -> TaskManifest:
    """Whether a download of that path is a file or a folder, and the regular files it holds
    (`wire.TaskManifest`)."""
    files = taskfiles.task_manifest(archive=archive, target=target)
    return documents.task_manifest_doc(
        target.task_id, target.rel, folder=target.is_dir, files=files
    )
