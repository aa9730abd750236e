"""Data-object downloads under /api/warehouse: the tar, our manifest, and single files.

The database work runs in a session that closes before the response starts (`scope="function"`),
so a long download holds no connection. Bodies stream in `settings.chunk_size` pieces (see
`paced` for how they are read and handed to the server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from brainlife.server.deps import ArchiveDep, DownloadUser, JsonBody, get_session
from brainlife.server.routes import params
from brainlife.server.services import downloads
from brainlife.server.tarstream import Chunk
from brainlife.wire import Manifest, Manifests, routes

router = APIRouter()

#: A session closed as soon as the route function returns (before the body streams).
ShortSession = Annotated[Session, Depends(get_session, scope="function")]

#: `body(start, end, nonblocking)`: the bytes `[start, end)`, `None` when a read would block.
BodyFactory = Callable[[int, int, bool], Iterator[Chunk | None]]

_END = object()


def content_disposition(filename: str) -> str:
    """`attachment; filename=…` as brainlife sends it, quoted (RFC 6266) only when needed."""
    if filename and all(c.isascii() and (c.isalnum() or c in "._-+") for c in filename):
        return f"attachment; filename={filename}"
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def paced(
    chunks: Iterator[Chunk | None], on_complete: Callable[[], None] | None = None
) -> AsyncIterator[Chunk]:
    """Drive a chunk iterator for `StreamingResponse`, keeping memory flat under many clients.

    - Reads that the page cache can serve run on the event loop (no thread hop per chunk;
      with a worker thread per read, the threads' malloc arenas kept freed chunks and peak RSS
      with 50 clients was ~60 MB higher). When a read would wait for the disk the iterator
      yields `None` and the read runs in a worker thread, so a slow disk never stalls the loop.
    - After each chunk an empty chunk is sent: the server then waits until its write buffer
      has drained before the next chunk is read, so a slow client pins one chunk, not two.
    - `on_complete` runs (in a thread) once the last byte has been handed to the server.
    The iterator is closed (its file closed) however the response ends.
    """
    try:
        while True:
            chunk = next(chunks, _END)
            while chunk is None:
                chunk = await anyio.to_thread.run_sync(next, chunks, _END)
            if chunk is _END:
                break
            assert isinstance(chunk, bytes | memoryview)
            yield chunk
            yield b""
            # uvicorn's send returns at once, without suspending, once the client is gone; with
            # page-cache reads on the loop nothing else would suspend either, so without this
            # checkpoint the disconnect could never cancel us and the rest of the object would
            # be read (and counted as downloaded) for nobody.
            await anyio.lowlevel.checkpoint()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if on_complete is not None:
        await anyio.to_thread.run_sync(on_complete)


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """`If-None-Match` against our ETag (RFC 9110 §13.1.2: weak comparison, `*` matches any)."""
    if not if_none_match or not etag:
        return False
    ours = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == ours:
            return True
    return False


def not_modified(etag: str) -> Response:
    """304: the client's copy (named by its ETag in `If-None-Match`) is current."""
    return Response(status_code=304, headers={"ETag": etag})


def ranged_response(
    request: Request,
    *,
    size: int,
    etag: str | None,
    media_type: str,
    filename: str,
    body: BodyFactory,
    on_complete: Callable[[], None] | None = None,
) -> Response:
    """A 200 or 206 response for `[0, size)` honouring `Range`/`If-Range`, or 304 when
    `If-None-Match` names the current ETag; HEAD gets the headers only. `on_complete` runs
    after a complete full-length (200) body."""
    if etag and etag_matches(request.headers.get("if-none-match"), etag):
        return not_modified(etag)
    span = downloads.parse_range(
        request.headers.get("range"),
        size,
        if_range=request.headers.get("if-range"),
        etag=etag,
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(filename),
    }
    if etag:
        headers["ETag"] = etag
    status = 200
    start, end = 0, size
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        paced(body(start, end, True), on_complete if span is None else None),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


@router.get(routes.DATASET_DOWNLOAD.path, openapi_extra=params.DOWNLOAD)
@router.head(routes.DATASET_DOWNLOAD.path, openapi_extra=params.DOWNLOAD)
def download_dataset(
    dataset_id: str,
    request: Request,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """Download a data object as an uncompressed tar of its files (Range supported)."""
    dl = downloads.open_dataset_download(session, user, dataset_id)
    chunk = archive.settings.chunk_size
    return ranged_response(
        request,
        size=dl.size,
        etag=dl.etag,
        media_type="application/x-tar",
        filename=dl.filename,
        body=lambda start, end, nonblocking: downloads.stream_tar(
            dl, archive.store, start, end, chunk_size=chunk, nonblocking=nonblocking
        ),
        on_complete=lambda: downloads.count_download(archive, dl.dataset_id),
    )


# response_model=None: wire TypedDicts are plain typing.TypedDict (no pydantic on 3.11)
@router.get(
    routes.DATASET_MANIFEST.path,
    response_model=None,
    openapi_extra=params.DOWNLOAD,
)
def dataset_manifest(dataset_id: str, user: DownloadUser, session: ShortSession) -> Manifest:
    """The files of a data object (path, size, sha256) in tar order, and the tar's size."""
    return downloads.dataset_manifest(session, user, dataset_id)


@router.post(
    routes.DATASET_MANIFESTS.path,
    response_model=None,
    openapi_extra={**params.MANIFESTS, **params.DOWNLOAD},
)
def dataset_manifests(payload: JsonBody, user: DownloadUser, session: ShortSession) -> Manifests:
    """The manifests of many data objects (`{"ids": [...]}`, at most `MANIFESTS_MAX_IDS`); ids
    without one are listed in `missing` with the reason."""
    return downloads.manifests_batch(session, user, downloads.manifest_ids(payload))


@router.get(routes.DATASET_FILE.path, openapi_extra=params.DOWNLOAD)
@router.head(routes.DATASET_FILE.path, openapi_extra=params.DOWNLOAD)
def download_dataset_file(
    dataset_id: str,
    path: str,
    request: Request,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """Download one file of a data object (Range supported; the ETag is its sha256)."""
    f = downloads.open_dataset_file(session, user, dataset_id, path)
    chunk = archive.settings.chunk_size
    return ranged_response(
        request,
        size=f.size,
        etag=f.etag,
        media_type=f.media_type,
        filename=f.filename,
        body=lambda start, end, nonblocking: downloads.stream_blob(
            archive.store, f.sha256, start, end, chunk_size=chunk, nonblocking=nonblocking
        ),
    )
