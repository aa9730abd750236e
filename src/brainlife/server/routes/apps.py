"""Routes of the apps catalogue under /api/warehouse (`/app`), and the refusal of
`/dataset/stage` (this archive runs no apps, see `services.apps`). Resources, instances and
`POST /task` are under /api/amaretti, in `amaretti.py` and `amaretti_upload.py`.

Thin: parse the brainlife list parameters, call the service, render the documents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from brainlife.server import documents
from brainlife.server.deps import JsonBody, MaybeUser, ReadSession, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.routes.params import list_params
from brainlife.server.services import apps
from brainlife.wire import Document, routes

router = APIRouter(route_class=OneCallRoute)


@router.get(routes.APPS.path, openapi_extra=params.LIST)
def list_apps(request: Request, session: ReadSession, user: MaybeUser) -> dict[str, Any]:
    params = list_params(request)
    page = apps.list_apps(session=session, principal=user, params=params)

    def app_doc(row: Any) -> Document:
        return documents.app_doc(row, canedit=apps.can_edit(user, row))

    return documents.listing("apps", page, app_doc, params.select)


@router.post(routes.APPS.path, openapi_extra=params.APP)
def add_app(payload: JsonBody, session: SessionDep, user: User) -> Document:
    row = apps.create_app(session=session, principal=user, body=payload)
    return documents.app_doc(row, canedit=True)


@router.post(routes.DATASET_STAGE.path)
def stage_datasets(_user: User) -> None:
    apps.refuse_to_run()
