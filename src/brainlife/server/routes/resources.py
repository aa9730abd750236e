"""Routes under /api/amaretti for what runs apps: the compute resources (`/resource`). The
instances and `POST /task` (which take only the official CLI's upload and refuse app runs: this
archive runs no apps, see `services.apps`) are `routes.amaretti_upload`.

Thin: parse the brainlife list parameters, call the service, render the documents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from brainlife.server import documents
from brainlife.server.deps import SessionDep, User
from brainlife.server.routes import params
from brainlife.server.routes.params import list_params
from brainlife.server.services import apps
from brainlife.wire import routes

router = APIRouter()


@router.get(routes.RESOURCES.path, openapi_extra=params.LIST)
def list_resources(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    params = list_params(request)
    page = apps.list_resources(session=session, principal=user, params=params)
    return documents.listing("resources", page, documents.resource_doc, params.select)
