"""`GET`/`PUT /api/warehouse/participant/:projectid`: a project's participants table.
Rules: `services.participants`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import JsonBody, MaybeUser, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import participants
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


@router.get(routes.PARTICIPANTS.path)
def get_participants(session: SessionDep, user: MaybeUser, project_id: str) -> dict[str, Any]:
    """The project's participants table (whoever can read the project)."""
    return documents.participants_doc(participants.get(session, user, project_id))


@router.put(routes.PARTICIPANTS.path)
def put_participants(
    session: SessionDep, user: User, project_id: str, body: JsonBody
) -> dict[str, Any]:
    """Replace its `subjects` and/or `columns` (project admins)."""
    table = participants.put(session, user, project_id, body)
    session.commit()
    return documents.participants_doc(table)
