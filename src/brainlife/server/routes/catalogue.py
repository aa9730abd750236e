"""`POST /api/warehouse/datatype`: an admin adds a datatype (the listing is in `warehouse.py`).
Rules: `services.datatype_writes`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import datatype_writes
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


@router.post(routes.DATATYPES.path)
def add_datatype(session: SessionDep, user: User, body: JsonBody) -> dict[str, Any]:
    """Add a datatype (archive admins, or the `datatype.create` scope)."""
    row = datatype_writes.add_datatype(session, body, principal=user)
    session.commit()
    return documents.datatype_doc(row)
