"""Resumable uploads under /api/warehouse (*ours*): thin, the rules are `services.uploads`'.

`PUT /upload/<id>/file/<n>` is async. Under `bl serve` (plain HTTP, a body of a megabyte or
more) its body is read from the socket in a worker thread (`socketbody`: one thread call per
body, the write and the sha256 overlapping the next megabyte's receive); otherwise it arrives
through ASGI `receive` and is written a megabyte at a time in a worker thread (one write in
flight, in order; the megabyte stays the list of chunks the server read, never joined: a join
is one more copy of every byte). Either way memory stays flat (about two megabytes a request)
whatever the file's size, and the CPU a shared machine gives the server is what bounds an
upload's speed (bench/RESULTS.md). A client that goes away mid-body, or stays silent
`socketbody.IDLE_TIMEOUT` seconds, keeps every byte that arrived; a full disk is a 507 that
keeps them too.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from brainlife.server import documents
from brainlife.server.deps import ArchiveDep, JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import datasets, uploads
from brainlife.server.socketbody import socket_body
from brainlife.wire import UploadSession, routes

router = APIRouter(route_class=OneCallRoute)

#: bytes gathered before one write (and hash update) in a worker thread
_WRITE_BATCH = 1024 * 1024


def _state(session: Any, archive: Any, upload: Any) -> UploadSession:
    return documents.upload_doc(upload, uploads.received_bytes(archive, upload))


@router.post(routes.UPLOADS.path, response_model=None, status_code=201)
def create_upload(
    body: JsonBody, user: User, session: SessionDep, archive: ArchiveDep
) -> UploadSession:
    """Declare a data object and its files; answers what each file still needs. With
    `finalize: true` and every file in the request or already held, the data object is made
    too, and the answer holds its document in `object` (else the answer is the session, whose
    files are sent as usual)."""
    upload = uploads.create_upload(session, archive, user, body)
    if uploads.finalize_at_once(body, upload):
        dataset = uploads.finalize_upload(session, archive, user, upload.id, access_checked=True)
        state = _state(session, archive, upload)
        state["object"] = datasets.dataset_documents(session, [dataset])[0]
        return state
    return _state(session, archive, upload)


@router.get(routes.UPLOAD.path, response_model=None)
def get_upload(
    upload_id: str, user: User, session: SessionDep, archive: ArchiveDep
) -> UploadSession:
    """Where an upload stands (what a resuming client asks first)."""
    upload = uploads.get_upload(session, user, upload_id)
    if upload.status == "open":
        uploads.recover_complete(session, archive, upload)
    return _state(session, archive, upload)


@router.delete(routes.UPLOAD.path, status_code=204)
def delete_upload(upload_id: str, user: User, session: SessionDep, archive: ArchiveDep) -> None:
    """Abandon an upload: the session and its staged bytes go."""
    uploads.delete_upload(session, archive, user, upload_id)


@router.put(routes.UPLOAD_FILE.path, response_model=None)
async def put_file(
    upload_id: str,
    index: str,
    request: Request,
    user: User,
    session: SessionDep,
    archive: ArchiveDep,
) -> UploadSession:
    """Append bytes `Content-Range: bytes a-b/size` of file `index` (a must be what the server
    holds); answers the session's state."""
    write = await run_in_threadpool(
        uploads.begin_write,
        session,
        archive,
        user,
        upload_id,
        index,
        request.headers.get("content-range"),
        request.headers.get("content-length"),
    )
    try:
        direct = socket_body(request.scope)
        if direct is None or not await direct.read_into(write.write):
            await _receive_body(request, write)
    finally:
        write.close()
    await run_in_threadpool(uploads.finish_write, session, archive, write)
    upload = await run_in_threadpool(uploads.get_upload, session, user, upload_id)
    return await run_in_threadpool(_state, session, archive, upload)


async def _receive_body(request: Request, write: uploads.FileWrite) -> None:
    """The body through ASGI `receive`, written a batch at a time in worker threads (the
    path of TLS connections, small bodies, and servers other than `bl serve`)."""
    pending: list[bytes] = []
    size = 0
    in_flight: asyncio.Future[None] | None = None
    try:
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                size += len(chunk)
                if size >= _WRITE_BATCH:
                    batch, pending, size = pending, [], 0
                    if in_flight is not None:
                        await in_flight  # in order, and its error (full disk) stops the body
                    in_flight = asyncio.ensure_future(run_in_threadpool(write.write_all, batch))
        except ClientDisconnect:
            pass
        if in_flight is not None:
            flight, in_flight = in_flight, None
            await flight
        if pending:
            await run_in_threadpool(write.write_all, pending)
    finally:
        if in_flight is not None:  # never close the file under a running write
            with contextlib.suppress(BaseException):
                await in_flight


@router.put(routes.UPLOAD_FILE_SHA256.path, response_model=None)
def declare_sha256(
    upload_id: str, index: str, body: JsonBody, user: User, session: SessionDep, archive: ArchiveDep
) -> UploadSession:
    """Declare the sha256 of a file declared without one (`{"sha256"}`); answers the session
    (the file `stored` when the caller may read content with that digest already)."""
    upload = uploads.declare_sha256(session, archive, user, upload_id, index, body)
    return _state(session, archive, upload)


@router.post(routes.UPLOAD_FINALIZE.path, response_model=None)
def finalize_upload(
    upload_id: str, user: User, session: SessionDep, archive: ArchiveDep
) -> dict[str, Any]:
    """Create the data object once every file is stored; answers its document."""
    dataset = uploads.finalize_upload(session, archive, user, upload_id)
    return datasets.dataset_documents(session, [dataset])[0]
