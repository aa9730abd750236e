"""The amaretti routes the official CLI's uploads use (`bl data upload`, `bl bids upload`): its
instances, the upload task and the raw upload into the task's folder. Thin: parse, call a service
(`instances`, `taskupload`), render. The warehouse half is `warehouse_upload`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from brainlife.server import documents
from brainlife.server.deps import ArchiveDep, JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.routes.params import list_params
from brainlife.server.services import instances, taskupload
from brainlife.wire import Document, routes

router = APIRouter(route_class=OneCallRoute)


@router.get(routes.INSTANCES.path, openapi_extra=params.LIST)
def list_instances(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    params = list_params(request)
    page = instances.list_instances(session=session, principal=user, params=params)
    return documents.listing(
        "instances", page, documents.instance_doc, params.select, counted=False
    )


@router.post(routes.INSTANCES.path)
def create_instance(body: JsonBody, session: SessionDep, user: User) -> Document:
    row = instances.create_instance(session=session, principal=user, body=body)
    return documents.instance_doc(row)


@router.post(routes.TASKS.path)
def submit_task(body: JsonBody, session: SessionDep, user: User) -> Document:
    """Only the upload task (`brainlife/app-noop`), finished at once."""
    task = instances.submit_task(session=session, principal=user, body=body)
    return documents.task_submitted_doc(task)


@router.post(routes.TASK_UPLOAD.path)
async def upload_task_file(
    task_id: str,
    request: Request,
    user: User,
    archive: ArchiveDep,
    p: str | None = None,
    untar: str | None = None,
) -> Document:
    """Receive the raw body into the task's folder (unpacked with `untar=true`)."""
    unpack = (untar or "").lower() in ("1", "true", "yes")
    target, upload = await run_in_threadpool(
        lambda: taskupload.open_upload(
            archive=archive, principal=user, task_id=task_id, p=p, untar=unpack
        )
    )
    try:
        async for chunk in request.stream():
            if chunk:
                upload.write(chunk)
        received = await run_in_threadpool(
            lambda: taskupload.finish_upload(archive=archive, target=target, upload=upload)
        )
    finally:
        upload.abort()
    return documents.task_upload_doc(received)
