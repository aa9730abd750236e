"""Task-folder downloads under /api/amaretti: `GET /task/download/:id/<path>` (or `?p=`) and
our task manifest. A file streams with Range support; a folder streams as a byte-stable gzip tar
with an ETag, and Range too (see `FolderDownload`)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Send

from brainlife.server.deps import ArchiveDep, DownloadUser
from brainlife.server.routes import params
from brainlife.server.routes.downloads import (
    ShortSession,
    content_disposition,
    etag_matches,
    paced,
    ranged_response,
)
from brainlife.server.services import taskfiles
from brainlife.server.tarstream import Chunk
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
    target = taskfiles.open_task_path(session, archive, user, task_id, _path(path, p))
    chunk = archive.settings.chunk_size
    if target.is_dir:
        return FolderDownload(request, target, chunk_size=chunk)
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


class FolderDownload(StreamingResponse):
    """A folder as .tar.gz: `ETag`, `Accept-Ranges: bytes`, and `Range` / `If-Range` honoured.

    The stream's length is unknown until it has been compressed, yet a 206 must say where it
    ends (RFC 9110 §14.4: `Content-Range: bytes <first>-<last>/<length>`; only the length may be
    `*`, and an open-ended `bytes N-*/*` is not HTTP). So a range of a folder is answered in two
    passes over the same walk, both stepping in worker threads (compressing is CPU work; the
    event loop only hands chunks on, through `paced`):

    1. measure: the whole .tar.gz is generated and only counted (no network, no buffering). The
       length is remembered by ETag, so a second resume of the same folder skips this pass;
    2. send: the stream is generated again, the first `start` bytes dropped, and the rest sent
       as a 206 with `Content-Range: bytes start-(end-1)/length` and `Content-Length`.

    The first byte of a 206 therefore waits for one compression of the folder (plus the part
    before `start`): fine for task outputs; for very large folders the task manifest and
    per-file downloads are the better tool. Both passes are strict: if a file changed since the
    walk, the measure falls back to a 200 with the whole (new) body, and a send already under
    way is cut off (the client sees a short body; its next If-Range no longer matches).

    Everything else is as the file routes do it: a malformed or multiple `Range`, or an
    `If-Range` other than the current ETag, gets the whole body (200); a start at or past the
    end gets 416 with `Content-Range: bytes */<length>`. HEAD gets the 200 headers (`ETag`,
    no `Content-Length`): range handling is defined for GET only (RFC 9110 §14.2), and
    measuring a folder for a HEAD is not worth its CPU.

    The work happens when the response is sent, after the route returned: no database session
    is held while the folder is walked or compressed.
    """

    def __init__(self, request: Request, target: taskfiles.TaskTarget, *, chunk_size: int) -> None:
        super().__init__(iter(()), media_type=target.media_type)
        self.target = target
        self.chunk_size = chunk_size
        self.head = request.method == "HEAD"
        self.range = request.headers.get("range")
        self.if_range = request.headers.get("if-range")
        self.if_none_match = request.headers.get("if-none-match")

    async def stream_response(self, send: Send) -> None:
        folder = await anyio.to_thread.run_sync(taskfiles.snapshot_folder, self.target)
        if etag_matches(self.if_none_match, folder.etag):  # the client's copy is current
            self.status_code = 304
            self.init_headers({"ETag": folder.etag})
            self.body_iterator = _empty()
            await super().stream_response(send)
            return
        body: Iterator[bytes] | None = None
        headers = {"Accept-Ranges": "bytes"}
        if not self.head and taskfiles.wants_range(self.range, self.if_range, folder.etag):
            total = taskfiles.known_length(folder.etag)
            if total is None:
                total = await self._measure(folder)
            if total is None:  # changed since the walk: the whole new body
                folder = await anyio.to_thread.run_sync(taskfiles.snapshot_folder, self.target)
            else:
                start, end = taskfiles.tgz_span(self.range, total)  # may raise: 416
                self.status_code = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
                headers["Content-Length"] = str(end - start)
                body = taskfiles.tgz_slice(folder, start, end, chunk_size=self.chunk_size)
        if body is None and not self.head:
            body = taskfiles.stream_tgz(folder, chunk_size=self.chunk_size)
        headers["ETag"] = folder.etag
        headers["Content-Disposition"] = content_disposition(self.target.filename)
        self.init_headers(headers)
        if body is not None:
            self.body_iterator = paced(_in_worker_threads(body))
        await super().stream_response(send)

    async def _measure(self, folder: taskfiles.FolderSnapshot) -> int | None:
        """The length of the folder's .tar.gz, generated and counted a chunk at a time in worker
        threads (cancelled with the request if the client goes away); None if a file changed."""
        chunks = taskfiles.stream_tgz(folder, chunk_size=self.chunk_size, strict=True)
        total = 0
        try:
            while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
                total += len(chunk)
        except taskfiles.FolderChanged:
            return None
        finally:
            chunks.close()
        return total


async def _empty() -> Any:
    return
    yield b""  # an async generator that yields nothing


def _in_worker_threads(chunks: Iterator[bytes]) -> Generator[Chunk | None, None, None]:
    """`chunks` for `paced`, each one made in a worker thread: the `None` before each step
    tells `paced` to call `next()` from a thread, where the compressing happens."""
    try:
        while True:
            yield None
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


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
    target = taskfiles.open_task_path(session, archive, user, task_id, _path(path, p))
    return taskfiles.task_manifest(target)
