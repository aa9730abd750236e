"""Publishing under /api/warehouse: `POST /pub`, `PUT /pub/:id` (brainlife's) and ours,
`POST /pub/release/:id`. Thin: the body goes to `services.publishing`, which holds every rule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.services import publishing
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


@router.post(routes.PUBS.path, openapi_extra=params.PUB_CREATE)
def create_pub(session: SessionDep, user: User, body: JsonBody) -> dict[str, Any]:
    pub = publishing.create_pub(session=session, principal=user, body=body)
    return documents.pub_doc(pub)


@router.put(routes.PUB.path, openapi_extra=params.PUB_UPDATE)
def update_pub(pub_id: str, session: SessionDep, user: User, body: JsonBody) -> dict[str, Any]:
    pub = publishing.update_pub(session=session, principal=user, pub_id=pub_id, body=body)
    return documents.pub_doc(pub)


@router.post(routes.PUB_RELEASE.path, openapi_extra=params.PUB_RELEASE)
def release_pub(pub_id: str, session: SessionDep, user: User, body: JsonBody) -> dict[str, Any]:
    outcome = publishing.release_pub(session=session, principal=user, pub_id=pub_id, body=body)
    return documents.release_outcome_doc(outcome)
