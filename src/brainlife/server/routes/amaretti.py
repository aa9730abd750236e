"""Routes under the /api/amaretti prefix: task listing and reading, and the compute
resources (`/resource`: none run here, see `services.apps`).

Task file routes (`/task/download`, `/task/manifest`) live in `taskfiles.py`; the instances
and `POST /task` (which take only the official CLI's upload and refuse app runs) in
`amaretti_upload.py`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from brainlife.server import documents
from brainlife.server.deps import ReadSession, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.routes.params import list_params
from brainlife.server.services import apps, tasks
from brainlife.wire import Document, routes

router = APIRouter(route_class=OneCallRoute)


@router.get(routes.TASKS.path, openapi_extra=params.LIST)
def list_tasks(request: Request, session: ReadSession, user: User) -> dict[str, Any]:
    params = list_params(request)
    page = tasks.list_tasks(session=session, principal=user, params=params)
    return documents.listing("tasks", page, documents.task_doc, params.select, counted=False)


@router.get(routes.TASK.path)
def get_task(task_id: str, session: ReadSession, user: User) -> Document:
    return documents.task_doc(tasks.get_task(session=session, principal=user, task_id=task_id))


@router.get(routes.RESOURCES.path, openapi_extra=params.LIST)
def list_resources(request: Request, session: ReadSession, user: User) -> dict[str, Any]:
    params = list_params(request)
    page = apps.list_resources(session=session, principal=user, params=params)
    return documents.listing("resources", page, documents.resource_doc, params.select)
