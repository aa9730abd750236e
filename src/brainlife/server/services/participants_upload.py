"""`PUT /api/warehouse/participant/:project` as `bl bids upload` (official) sends it: the
project's phenotype table `{subjects: [{subject, ...}], columns: {...}}` from participants.tsv
and participants.json. The official CLI sends it on every BIDS upload (an empty list when the
tree has no participants.tsv) before any object, so the upload fails without this route.

A minimal keeper, until the archive has a participants table of its own: the document is kept
in the project's `extra["participants"]` (what `bl project participants` would read). Only a
project's admins and members may write it (`access.writable_projects`, in SQL); the body is
bounded by the request body limit. An empty `subjects` with no `columns` changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import writable_projects
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Project
from brainlife.server.principal import Principal
from brainlife.wire import is_object_id


@dataclass(frozen=True)
class Participants:
    project_id: str
    subjects: list[dict[str, Any]]
    columns: dict[str, Any]


def put_participants(
    *, session: Session, principal: Principal, project_id: str, body: Any
) -> Participants:
    row = None
    if is_object_id(project_id):
        row = session.execute(
            select(Project, writable_projects(principal).label("writable")).where(
                Project.id == project_id
            )
        ).first()
    if row is None:
        raise NotFound(f"couldn't find the project {project_id}")
    project, writable = row
    if not writable:
        raise Forbidden("only the project's admins and members may change its participants")
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {subjects, columns}.")
    subjects = body.get("subjects") or []
    columns = body.get("columns")
    if not isinstance(subjects, list) or not all(isinstance(s, dict) for s in subjects):
        raise BadRequest("subjects must be a list of objects (one per participant).")
    if columns is not None and not isinstance(columns, dict):
        raise BadRequest("columns must be an object (participants.json).")
    kept = Participants(project.id, subjects, columns or {})
    if subjects or columns:
        table = {"subjects": kept.subjects, "columns": kept.columns}
        project.extra = {**(project.extra or {}), "participants": table}
        project.update_date = datetime.now(UTC)
        session.commit()
    return kept
