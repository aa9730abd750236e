"""brainlife's read and write rules (brainlife-server.md §2.1) as SQL clauses, so that they run
inside the query and `count` only counts what the caller may read (and a write only finds what
the caller may change: an update whose row is not matched is refused, with no separate check
that a later edit could forget)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true

from brainlife.server.engines import per_engine
from brainlife.server.models import (
    App,
    AppProject,
    Dataset,
    DatasetPublication,
    Instance,
    Project,
    ProjectRole,
    Resource,
    ResourceGroup,
    Task,
)
from brainlife.server.principal import Principal


def _has_role(sub: str, roles: tuple[str, ...]) -> ColumnElement[bool]:
    return exists().where(
        ProjectRole.project_id == Project.id,
        ProjectRole.sub == sub,
        ProjectRole.role.in_(roles),
    )


def readable_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects whose data objects the caller may read (public, or admin/member/guest)."""
    if principal is None:
        return Project.access == "public"
    if principal.is_admin("warehouse"):
        return true()
    return _readable_projects_of(principal.sub_str)


@lru_cache(maxsize=1024)
def _readable_projects_of(sub: str) -> ColumnElement[bool]:
    """`readable_projects` of a user who is not an archive admin. Built once per user and
    reused (SQL clauses are immutable): the clause names the user only, the database decides
    at each query which projects it admits. A listing used to build it three times (its page,
    its gate and its totals), ~0.5 ms of a 100-object page (issue #11)."""
    roles = ("admins", "members", "guests")
    return or_(Project.access == "public", _has_role(sub, roles))


def writable_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects the caller may write data objects into (upload, update, delete): their admins
    and members (brainlife's "writable projects"), and archive admins (`warehouse` admin).

    Unlike reads, a removed project is never writable, not even by an archive admin: data must
    not flow into a project that no longer shows (restoring the project comes first)."""
    if principal is None:
        return false()
    live = Project.removed.is_(False)
    if principal.is_admin("warehouse"):
        return live
    return and_(live, _has_role(principal.sub_str, ("admins", "members")))


def administered_projects(principal: Principal | None) -> ColumnElement[bool]:
    """Projects whose own document the caller may edit (name, access, roles …): their admins
    and archive admins (brainlife's `common.isadmin`). Removed projects included, so that an
    admin can still see and restore them."""
    if principal is None:
        return false()
    if principal.is_admin("warehouse"):
        return true()
    return _has_role(principal.sub_str, ("admins",))


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
    if principal.datasets is not None:
        # a download script's token: its objects only, and only while its user may read them
        user = Principal(sub=principal.sub)
        return and_(Dataset.id.in_(sorted(principal.datasets)), readable_datasets(user))
    if principal.is_admin("warehouse"):
        return true()
    return _readable_datasets_of(principal.sub_str)


@lru_cache(maxsize=1024)
def _readable_datasets_of(sub: str) -> ColumnElement[bool]:
    """`readable_datasets` of a user who is neither an archive admin nor a download script
    (built once per user, as `_readable_projects_of`)."""
    in_readable = Dataset.project_id.in_(select(Project.id).where(_readable_projects_of(sub)))
    return or_(in_readable, _published())


def readable_rows(
    principal: Principal, project_id: Any, dataset_id: Any
) -> ColumnElement[bool] | None:
    """`readable_datasets` stated over another table's copy of an object's id, for rows of one
    project (`project_id`: one value, e.g. a bound parameter; `dataset_tag_search`'s range
    totals): in a readable project, or published. None for a download script's token (its list
    of objects needs the object row).

    The project test is an uncorrelated EXISTS, which the database runs once per statement
    (PostgreSQL: an InitPlan, then a parameter per row). `project_id IN (SELECT …)` was planned
    as a hashed subplan probed for every row: ~7 ms of a 29,000-row count at 10,000,000
    objects (issue #11)."""
    if principal.datasets is not None:
        return None
    if principal.is_admin("warehouse"):
        return true()
    in_readable = exists(
        select(Project.id).where(Project.id == project_id, readable_projects(principal))
    )
    return or_(in_readable, _published(dataset_id))


def _published(dataset_id: Any = None) -> ColumnElement[bool]:
    """The object is in a release. On PostgreSQL the EXISTS has `OFFSET 0`, which keeps the
    planner from turning it into a hashed subplan: that reads every publication row of the
    archive (80,000 at 1,000,000 objects) for each statement, before the first row, where a
    probe of the primary key per candidate row is what a page of 100 needs."""
    if dataset_id is None:
        dataset_id = Dataset.id
    probe = exists().where(DatasetPublication.dataset_id == dataset_id)
    fenced = exists(
        select(DatasetPublication.dataset_id)
        .where(DatasetPublication.dataset_id == dataset_id)
        .offset(0)
    )
    return per_engine(sqlite=probe, postgresql=fenced)


def browsable_datasets(principal: Principal | None) -> ColumnElement[bool]:
    """What the web pages show and let download: `readable_datasets` for a signed-in visitor; an
    anonymous one sees what brainlife.io shows without an account, the data objects of public
    projects and published ones (the API keeps asking for a token: `readable_datasets`)."""
    if principal is not None:
        return readable_datasets(principal)
    public = Dataset.project_id.in_(select(Project.id).where(Project.access == "public"))
    return or_(public, _published())


def readable_tasks(principal: Principal | None) -> ColumnElement[bool]:
    """Tasks the caller owns or that belong to one of the groups in its token."""
    if principal is None or principal.scoped:
        return false()
    if principal.is_admin("amaretti"):
        return true()
    clauses = [Task.user_id == principal.sub_str]
    if principal.gids:
        clauses.append(Task.group_id.in_([g for g in principal.gids if g]))
    return or_(*clauses) if len(clauses) > 1 else and_(clauses[0])


def readable_apps(principal: Principal | None) -> ColumnElement[bool]:
    """Apps the caller may see: public ones (no `projects`), and those of a project whose data
    the caller may read (brainlife's `GET /app` rule)."""
    restricted = exists().where(AppProject.app_id == App.id)
    if principal is None:
        return not_(restricted)
    if principal.is_admin("warehouse"):
        return true()
    in_readable = exists().where(
        AppProject.app_id == App.id,
        AppProject.project_id.in_(select(Project.id).where(readable_projects(principal))),
    )
    return or_(not_(restricted), in_readable)


#: the group every user belongs to: a resource shared with it is public
PUBLIC_GID = 1


def readable_resources(principal: Principal) -> ColumnElement[bool]:
    """Resources the caller may see: its own, public ones (group 1) and those shared with one of
    the groups in its token (amaretti's rule)."""
    if principal.is_admin("amaretti"):
        return true()
    gids = [PUBLIC_GID, *(g for g in principal.gids if g)]
    shared = exists().where(ResourceGroup.resource_id == Resource.id, ResourceGroup.gid.in_(gids))
    return or_(Resource.user_id == principal.sub_str, shared)


def writable_groups(principal: Principal | None) -> Any:
    """The `group_id`s of the projects the caller may write (a sub-select)."""
    return select(Project.group_id).where(writable_projects(principal))


def readable_instances(principal: Principal | None) -> ColumnElement[bool]:
    """amaretti instances the caller may see and submit tasks to: its own, those of a group in
    its token (as tasks), and those of a project it may write (an upload instance
    `upload.<group_id>` is shared by the project's uploaders, as on brainlife)."""
    if principal is None:
        return false()
    if principal.is_admin("amaretti"):
        return true()
    gids = [g for g in principal.gids if g]
    return or_(
        Instance.user_id == principal.sub_str,
        Instance.group_id.in_(gids),
        Instance.group_id.in_(writable_groups(principal)),
    )
