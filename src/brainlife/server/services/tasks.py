"""amaretti tasks: `GET /api/amaretti/task` and `GET /api/amaretti/task/:id`."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_tasks
from brainlife.server.errors import NotFound
from brainlife.server.models import Task
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import TASKS
from brainlife.wire import is_object_id


def list_tasks(*, session: Session, principal: Principal, params: ListParams) -> Listing[Task]:
    """Tasks the caller owns or that belong to a group in its token (amaretti admins: all).

    brainlife overwrites a non-admin's top-level `$or` with its access clause, losing the
    caller's own `$or`; we AND the access clause with the whole `find` instead, so a caller's
    `$or` keeps its meaning and access is still enforced. No `count` (amaretti dropped it).
    """
    return run_listing(session, Task, TASKS, readable_tasks(principal), params, count=False)


def get_task(*, session: Session, principal: Principal | None, task_id: str) -> Task:
    """One task, if the caller may read it.

    brainlife serves `GET /task/:id` with no authentication at all (warehouse provenance relies
    on it). A task document carries its config, inputs and the paths of its files, so we ask
    for the same right as the listing (owner, group in the token, or amaretti admin) and answer
    404, not 403, to anyone else so that task ids cannot be probed.
    """
    if principal is None or not is_object_id(task_id):
        raise NotFound(f"couldn't find the task {task_id}")
    row = session.scalars(
        select(Task).where(and_(Task.id == task_id, readable_tasks(principal)))
    ).first()
    if row is None:
        raise NotFound(f"couldn't find the task {task_id}")
    return row
