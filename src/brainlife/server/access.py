"""brainlife's read rules (brainlife-server.md §2.1) as SQL clauses, so that they run inside the
query and `count` only counts what the caller may read."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from brainlife.server.models import Dataset, DatasetPublication, Project, ProjectRole, Task
from brainlife.server.principal import Principal


def _has_role(principal: Principal, roles: tuple[str, ...]) -> ColumnElement[bool]:
    return exists().where(
        ProjectRole.project_id == Project.id,
        ProjectRole.sub == principal.sub_str,
        ProjectRole.role.in_(roles),
    )


def readable_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects whose data objects the caller may read (public, or admin/member/guest)."""
    if principal is None:
        return Project.access == "public"
    if principal.is_admin("warehouse"):
        return true()
    return or_(Project.access == "public", _has_role(principal, ("admins", "members", "guests")))


def writable_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects into which the caller may put data objects: its admins and members (not
    guests), and archive (warehouse) admins; never a removed project."""
    if principal is None:
        return false()
    if principal.is_admin("warehouse"):
        return Project.removed.is_(False)
    return and_(Project.removed.is_(False), _has_role(principal, ("admins", "members")))


def listable_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects the caller may see in `GET /project`: readable ones plus private `listed` ones."""
    if principal is None:
        return Project.access == "public"
    if principal.is_admin("warehouse"):
        return true()
    return or_(readable_projects(principal), Project.listed.is_(True))


def readable_datasets(principal: Principal | None) -> ColumnElement[bool]:
    """Data objects the caller may read: in a readable project, or published (any token)."""
    if principal is None:
        # brainlife requires a token for /dataset and downloads; the anonymous listing of a
        # release (/pub/datasets/:id) applies its own rule.
        return false()
    if principal.is_admin("warehouse"):
        return true()
    in_readable = Dataset.project_id.in_(select(Project.id).where(readable_projects(principal)))
    published = exists().where(DatasetPublication.dataset_id == Dataset.id)
    return or_(in_readable, published)


def readable_tasks(principal: Principal | None) -> ColumnElement[bool]:
    """Tasks the caller owns or that belong to one of the groups in its token."""
    if principal is None:
        return false()
    if principal.is_admin("amaretti"):
        return true()
    clauses = [Task.user_id == principal.sub_str]
    if principal.gids:
        clauses.append(Task.group_id.in_([g for g in principal.gids if g]))
    return or_(*clauses) if len(clauses) > 1 else and_(clauses[0])
