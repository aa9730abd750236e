"""Creating and changing projects (brainlife's `POST`/`PUT /warehouse/project`).

Rules (brainlife-server.md §1.1, §2.2):
- any logged-in user may create a project and is always one of its admins;
- a project owns an auth group (`group_id`, a new id never used before) holding its admins (as
  group admins) and members (as group members); guests are not in the group. The group is
  what the `gids` claim of a token carries, so after creating a project, or being added to
  one, a client refreshes its token (`POST /auth/refresh`) to act through the group (tasks,
  uploads), as brainlife's UI does; `bl project create` does this itself;
- only the project's admins and archive admins may change it; the check is the SQL clause
  `access.administered_projects`, so a row that is not matched is not changed;
- `PUT` changes what it is sent (`name`, `desc`, `readme`, `access`, `listed`, `admins`,
  `members`, `guests`, `avatar`) and ignores the rest, as brainlife ignores `user_id`,
  `create_date` and `group_id` (clients send back whole documents); a project keeps at least
  one admin;
- every text is bounded (`MAX_*`); roles name existing accounts.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import administered_projects, readable_projects
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Group, Project, ProjectRole, User
from brainlife.server.principal import Principal
from brainlife.server.services import accounts

MAX_NAME = 512
MAX_DESC = 64 * 1024
MAX_README = 200 * 1024
MAX_AVATAR = 2048
MAX_ROLE = 1000
ROLES = ("admins", "members", "guests")


def new_oid() -> str:
    """A Mongo-like ObjectId: 4 bytes of seconds, then 8 random bytes."""
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"


def _text(body: dict[str, Any], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string.")
    if len(value) > limit:
        raise BadRequest(f"{key} is too long ({len(value)} characters; at most {limit}).")
    return value


def _access(body: dict[str, Any]) -> str | None:
    value = body.get("access")
    if value is None:
        return None
    if value not in ("public", "private"):
        raise BadRequest(f"access must be 'public' or 'private', not {str(value)[:40]!r}.")
    return str(value)


def _roles(session: Session, body: dict[str, Any]) -> dict[str, list[str]]:
    """The role lists sent, as sub strings of existing accounts, each sub once per list."""
    out: dict[str, list[str]] = {}
    for role in ROLES:
        subs = accounts.subs(body.get(role), role)
        if subs is None:
            continue
        if len(subs) > MAX_ROLE:
            raise BadRequest(f"{role}: at most {MAX_ROLE} people.")
        known = set(session.scalars(select(User.sub).where(User.sub.in_(set(subs)))))
        unknown = [s for s in subs if s not in known]
        if unknown:
            raise BadRequest(f"{role}: no user with sub {', '.join(map(str, unknown[:10]))}.")
        out[role] = [str(s) for s in dict.fromkeys(subs)]
    return out


def _set_roles(session: Session, project: Project, roles: dict[str, list[str]]) -> None:
    current = {r: [x.sub for x in project.roles if x.role == r] for r in ROLES}
    current.update(roles)
    if not current["admins"]:
        raise BadRequest("A project needs at least one admin.")
    project.roles.clear()
    session.flush()
    pos = 0
    for role in ROLES:
        for sub in current[role]:
            project.roles.append(ProjectRole(role=role, sub=sub, pos=pos))
            pos += 1
    group = session.get(Group, project.group_id)
    if group is None:
        group = Group(id=project.group_id, name=project.name, desc="")
        session.add(group)
        session.flush()
    accounts.set_members(
        session,
        group,
        admins=[int(s) for s in current["admins"]],
        members=[int(s) for s in current["members"] if s not in current["admins"]],
    )


def _apply(session: Session, project: Project, body: dict[str, Any]) -> None:
    name = _text(body, "name", MAX_NAME)
    if name is not None:
        if not name.strip():
            raise BadRequest("A project needs a name.")
        project.name = name.strip()
    desc = _text(body, "desc", MAX_DESC)
    if desc is not None:
        project.desc = desc
    access = _access(body)
    if access is not None:
        project.access = access
    if "listed" in body:
        project.listed = accounts.flag(body["listed"], "listed")
    extra = dict(project.extra or {})
    for key, limit in (("readme", MAX_README), ("avatar", MAX_AVATAR)):
        value = _text(body, key, limit)
        if value is not None:
            extra[key] = value
    project.extra = extra


def create_project(session: Session, principal: Principal, body: Any) -> Project:
    body = accounts.body_object(body)
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise BadRequest("A project needs a name (name: a non-empty string).")
    roles = _roles(session, body)
    admins = roles.setdefault("admins", [])
    if principal.sub_str not in admins:
        admins.insert(0, principal.sub_str)
    if session.get(User, principal.sub) is None:
        raise BadRequest("Your account no longer exists in this archive.")
    gid = accounts.next_group_id(session)
    now = datetime.now(UTC)
    project = Project(
        id=new_oid(),
        group_id=gid,
        user_id=principal.sub_str,
        name="",
        desc="",
        access="private",
        listed=False,
        removed=False,
        create_date=now,
        extra={},
    )
    _apply(session, project, body)
    session.add(Group(id=gid, name=project.name, desc=f"project {project.id}"))
    session.add(project)
    session.flush()
    _set_roles(session, project, roles)
    session.flush()
    return project


def administered(session: Session, principal: Principal, project_id: str) -> Project:
    """The project, if the caller may change it; else 403 (it can see it) or 404."""
    project = session.scalar(
        select(Project).where(Project.id == project_id, administered_projects(principal))
    )
    if project is not None:
        return project
    visible = session.scalar(
        select(Project.id).where(Project.id == project_id, readable_projects(principal))
    )
    if visible is not None:
        raise Forbidden("Only the project's admins may change it.")
    raise NotFound(f"No project {project_id[:40]!r} that you can see.")


def update_project(session: Session, principal: Principal, project_id: str, body: Any) -> Project:
    body = accounts.body_object(body)
    project = administered(session, principal, project_id)
    # one change of a project's people at a time: two replacing the roles at once both deleted
    # the old rows and inserted the new ones (on PostgreSQL, a 500 on the duplicate key)
    lock_writes(session, f"people of project {project.id}")
    session.expire(project)  # its roles as committed by the request before
    roles = _roles(session, body)
    _apply(session, project, body)
    if roles:
        _set_roles(session, project, roles)
    project.update_date = datetime.now(UTC)
    session.flush()
    return project
