"""A project's participants table (brainlife's `/warehouse/participant/:projectid`): `subjects`,
one object per participant (`{"subject": "01", "age": "30", …}`), and `columns`, the BIDS
`participants.json` descriptions of its columns.

Who: whoever can read the project reads it (`access.readable_projects`; brainlife only shows it
to admins and members unless `publishParticipantsInfo`: here guests and, on a public project,
everyone read it as they read its data objects); its admins and members and archive admins
write it (`access.writable_projects`, brainlife's writers: the official `bl bids upload`, run by
any uploader, sends the table). Both checks run in the SQL that finds the project.

`PUT` replaces what it is sent (`subjects` and/or `columns`, as the official CLI's `bl project
update --participants/--participant_columns` sends one or both). Bounds: `MAX_SUBJECTS` rows,
`MAX_KEYS` columns, names of `MAX_NAME` characters, scalar values (strings, numbers, booleans,
null) of at most `MAX_VALUE` characters; a subject id is a non-empty string, unique. Key order is
kept, so a table reads back in its columns' order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_projects, writable_projects
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Participants, Project
from brainlife.server.principal import Principal

MAX_SUBJECTS = 20_000
MAX_KEYS = 200
MAX_NAME = 128
MAX_VALUE = 4096


def _project(session: Session, principal: Principal | None, project_id: str, write: bool) -> str:
    rule = writable_projects(principal) if write else readable_projects(principal)
    found = session.scalar(select(Project.id).where(Project.id == project_id, rule))
    if found is not None:
        return found
    if write and principal is not None:
        visible = session.scalar(
            select(Project.id).where(Project.id == project_id, readable_projects(principal))
        )
        if visible is not None:
            raise Forbidden(
                "Only the project's admins and members may change its participants table."
            )
    raise NotFound(f"No project {project_id[:40]!r} that you can see.")


@dataclass(frozen=True)
class Table:
    """A project's participants table (rendered by `documents.participants_doc`)."""

    project: str
    subjects: list[dict[str, Any]]
    columns: dict[str, Any]
    update_date: datetime | None


def get(session: Session, principal: Principal | None, project_id: str) -> Table:
    pid = _project(session, principal, project_id, write=False)
    row = session.get(Participants, pid)
    return Table(
        project=pid,
        subjects=row.subjects if row else [],
        columns=row.columns if row else {},
        update_date=row.update_date if row else None,
    )


def _scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, a number, true, false or null.")
    if len(value) > MAX_VALUE:
        raise BadRequest(f"{where} is too long (at most {MAX_VALUE} characters).")
    return value


def _subjects(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_SUBJECTS:
        raise BadRequest(f"subjects must be a list of at most {MAX_SUBJECTS} objects.")
    seen: set[str] = set()
    out = []
    for i, row in enumerate(value):
        where = f"subjects[{i}]"
        if not isinstance(row, dict) or len(row) > MAX_KEYS:
            raise BadRequest(f"{where} must be an object of at most {MAX_KEYS} columns.")
        subject = row.get("subject")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_NAME:
            raise BadRequest(f"{where}.subject must be a non-empty participant id.")
        if subject in seen:
            raise BadRequest(f"{where}: participant {subject!r} appears twice.")
        seen.add(subject)
        for key in row:
            if not key or len(key) > MAX_NAME:
                raise BadRequest(f"{where}: a column name must have 1 to {MAX_NAME} characters.")
        out.append({k: _scalar(v, f"{where}.{k[:40]}") for k, v in row.items()})
    return out


def _columns(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > MAX_KEYS:
        raise BadRequest(f"columns must be an object of at most {MAX_KEYS} column descriptions.")
    for key in value:
        if not key or len(key) > MAX_NAME:
            raise BadRequest(f"columns: a column name must have 1 to {MAX_NAME} characters.")
    return value


def put(session: Session, principal: Principal, project_id: str, body: Any) -> Table:
    if not isinstance(body, dict) or not ({"subjects", "columns"} & set(body)):
        raise BadRequest("Send {subjects: [...]} and/or {columns: {...}}.")
    pid = _project(session, principal, project_id, write=True)
    if not body.get("subjects") and not body.get("columns"):
        # the official `bl bids upload` sends `{subjects: []}` for a tree without
        # participants.tsv, on every upload: that must not wipe the table
        return get(session, principal, pid)
    # null is "not sent": the official `bl bids upload` sends `columns: null` for a tree with a
    # participants.tsv and no participants.json
    subjects = _subjects(body["subjects"]) if body.get("subjects") is not None else None
    columns = _columns(body["columns"]) if body.get("columns") is not None else None
    # read (and made if absent) under a lock: two first PUTs at once would both insert the row
    lock_writes(session, f"participants of project {pid}")
    row = session.get(Participants, pid, populate_existing=True)
    now = datetime.now(UTC)
    if row is None:
        row = Participants(project_id=pid, subjects=[], columns={}, update_date=now)
        session.add(row)
    if subjects is not None:
        row.subjects = subjects
    if columns is not None:
        row.columns = columns
    row.update_date = now
    session.flush()
    return get(session, principal, pid)
