"""amaretti instances and the upload task (`GET`/`POST /api/amaretti/instance`,
`POST /api/amaretti/task`): what the official CLI's `bl data upload` and `bl bids upload` need.

This archive runs no apps. The only task it takes is `brainlife/app-noop`, the empty task the
official CLI creates to upload into; it is `finished` as soon as it is submitted (the CLI polls
until it is), and its folder then receives the upload (`services.taskupload`).

Access (brainlife-server.md §3.2), enforced in SQL (`access.readable_instances`,
`access.writable_groups`): an instance may be created only for the group of a project the caller
may write (admins, members; archive admins), checked against the project's roles rather than
the token's `gids`, so a user just added to a project needs no new token; a task may be submitted
only to an instance the caller owns or one of a project it may write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_instances, writable_projects
from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.ids import int_id, new_object_id
from brainlife.server.models import Instance, Project, Task
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams
from brainlife.server.services.apps import refuse_to_run
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import INSTANCES
from brainlife.wire import is_object_id

#: the one service this archive takes: the official CLI's upload task
NOOP = "brainlife/app-noop"
MAX_NAME = 512
_Row = TypeVar("_Row", Instance, Task)


def list_instances(
    *, session: Session, principal: Principal, params: ListParams
) -> Listing[Instance]:
    """Instances the caller owns or that belong to a project it may write (no `count`, as
    amaretti)."""
    return run_listing(
        session, Instance, INSTANCES, readable_instances(principal), params, count=False
    )


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{key} must be a string of at most {limit} characters.")
    return value


def _created(
    model: type[_Row], principal: Principal, body: dict[str, Any], config: Any, group_id: int | None
) -> _Row:
    """A new instance or task of the caller in `group_id`, named and described by `body`,
    made (and changed) now."""
    if not isinstance(config, dict):
        raise BadRequest("config must be a JSON object.")
    now = datetime.now(UTC)
    return model(
        id=new_object_id(now),
        user_id=principal.sub_str,
        group_id=group_id,
        name=_text(body, "name", MAX_NAME),
        desc=_text(body, "desc", 10_000),
        config=config,
        create_date=now,
        update_date=now,
    )


def create_instance(*, session: Session, principal: Principal, body: Any) -> Instance:
    """`POST /instance {name, desc, config, group_id}`: `group_id` must be the group of a
    project the caller may write."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {name, desc, config, group_id}.")
    group_id = int_id(body.get("group_id"))
    upload = isinstance(body.get("name"), str) and body["name"].startswith("upload.")
    if not upload and group_id is None:
        refuse_to_run()  # an app run's instance (`bl app run`): nothing is created
    if group_id is None:
        raise BadRequest(
            "group_id (the project's group, a whole number) is required: this archive keeps "
            "every instance in a project."
        )
    project = session.scalar(
        select(Project.id).where(Project.group_id == group_id, writable_projects(principal))
    )
    if project is None:
        raise Forbidden(
            "not member of the group you have specified: only a project's admins and members "
            f"may upload to it (group {group_id})."
        )
    if body.get("name") != f"upload.{group_id}":
        # only the official CLI's upload instance (`upload.<group_id>`); any other is an app
        # run's (`bl app run`), refused before anything is created
        refuse_to_run()
    row = _created(Instance, principal, body, body.get("config") or {}, group_id=group_id)
    row.status = "requested"
    session.add(row)
    session.commit()
    return row


def submit_task(*, session: Session, principal: Principal, body: Any) -> Task:
    """`POST /task`: only the upload task (`brainlife/app-noop`), in an instance the caller
    may use; it is finished at once. An unknown instance and one the caller may not use are
    told apart from nothing (404), as tasks are."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {instance_id, service, name, config}.")
    if body.get("service") != NOOP:
        refuse_to_run()  # the only task taken is the upload's (NOOP)
    instance_id = body.get("instance_id")
    instance = None
    if is_object_id(instance_id):
        instance = session.scalar(
            select(Instance).where(and_(Instance.id == instance_id, readable_instances(principal)))
        )
    if instance is None:
        raise NotFound(f"couldn't find the instance {instance_id}")
    config = body.get("config")
    row = _created(
        Task, principal, body, {} if config is None else config, group_id=instance.group_id
    )
    row.instance_id = instance.id
    row.service = NOOP
    row.status = "finished"
    row.status_msg = "an upload task: finished at once, ready to receive the files"
    row.start_date = row.finish_date = row.create_date
    row.extra = {"gids": [g for g in (1, instance.group_id) if g is not None]}
    session.add(row)
    session.commit()
    return row
