"""Routes that create and change projects (`POST`/`PUT /api/warehouse/project`); the listing
is in `warehouse.py`. Rules: `services.project_writes`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import project_writes
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


@router.post(routes.PROJECTS.path)
def create_project(session: SessionDep, user: User, body: JsonBody) -> dict[str, Any]:
    """A new project; the caller is its admin. Refresh the token afterwards to carry the
    project's group in `gids` (`POST /api/auth/refresh`)."""
    project = project_writes.create_project(session, user, body)
    session.commit()
    return documents.project_doc(project)


@router.put(routes.PROJECT.path)
def update_project(
    session: SessionDep, user: User, project_id: str, body: JsonBody
) -> dict[str, Any]:
    """Change a project (its admins and archive admins only)."""
    project = project_writes.update_project(session, user, project_id, body)
    session.commit()
    return documents.project_doc(project)
