"""Curating data objects: `PUT /api/warehouse/dataset/:id` (desc, tags, datatype_tags, meta;
`removed: false` restores) and `DELETE /api/warehouse/dataset/:id` (brainlife's soft delete:
`removed: true`), as the official `bl data update`/`bl data delete` and ours send them.

Rules (brainlife-server.md §2.3, `canedit`, with our decisions in docs/decisions.md):

- who may change or remove an object: the admins and members of its project, and archive
  admins (`access.writable_projects`, in SQL). brainlife also lets the uploader edit after they
  left the project; here write access follows the project's roles only. Restoring a removed
  object takes a project admin (or an archive admin). Unknown ids are 404; others 403;
- an object in a release (published) can be neither changed nor removed: 409. A release is
  immutable, and its objects with it;
- a removed object is changed only by restoring it first (409 otherwise);
- `PUT` replaces each field it is given, whole (the official CLI sends the whole arrays and
  `meta` back); other fields of the body are ignored, as brainlife does; `prov` is never changed;
- every change appends a `DatasetEvent` (who, when, what: old and new values) and sets
  `update_date`; a request that changes nothing records nothing.

The listing's aggregates (`dataset_counts`, `dataset_tag_search`) follow by their triggers: tags
are replaced by deleting and inserting their rows, `removed` by an UPDATE.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_datasets, writable_projects
from brainlife.server.errors import BadRequest, Conflict, Forbidden, NotFound
from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetEvent,
    DatasetPublication,
    DatasetTag,
    Project,
    ProjectRole,
)
from brainlife.server.principal import Principal
from brainlife.server.services import objectfields
from brainlife.server.services.releases import lock_project_objects, released_among
from brainlife.wire import format_date, is_object_id

NOT_FOUND = "couldn't find the dataset specified"
EDITABLE = ("desc", "tags", "datatype_tags", "meta")


def _project_admin(principal: Principal) -> Any:
    if principal.is_admin("warehouse"):
        return exists().where(Project.id == Dataset.project_id)
    return exists().where(
        ProjectRole.project_id == Dataset.project_id,
        ProjectRole.sub == principal.sub_str,
        ProjectRole.role == "admins",
    )


def _load(session: Session, principal: Principal, dataset_id: str) -> tuple[Dataset, bool]:
    """The object, if the caller may change it; and whether the caller is a project admin."""
    row = None
    if is_object_id(dataset_id):
        writable = Dataset.project_id.in_(select(Project.id).where(writable_projects(principal)))
        row = session.execute(
            select(
                Dataset,
                readable_datasets(principal).label("readable"),
                writable.label("writable"),
                _project_admin(principal).label("admin"),
                exists().where(DatasetPublication.dataset_id == Dataset.id).label("published"),
            ).where(Dataset.id == dataset_id)
        ).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    dataset, readable, writable, admin, published = row
    if not writable:
        raise Forbidden(
            "You may not change this data object: only its project's admins and members may."
            if readable
            else "you don't have access to the project that the dataset belongs"
        )
    if not published:
        # checked again, and changed, under the lock a release of the project holds while it
        # freezes: a release committed since the read above has the object now
        lock_project_objects(session, dataset.project_id)
        session.refresh(dataset)
    releases = released_among(session, [dataset.id]).get(dataset.id)
    if releases:
        raise Conflict(
            f"The data object {dataset.id} is in a release ({', '.join(sorted(releases))}): "
            "released objects cannot be changed or removed. To correct it, upload a corrected "
            "copy as a new data object (it can go in a later release)."
        )
    return dataset, bool(admin)


def _tags(rows: Any) -> list[str]:
    return [t.tag for t in sorted(rows, key=lambda t: t.pos)]


def _record(
    session: Session, principal: Principal, dataset: Dataset, action: str, changes: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    dataset.update_date = now
    session.add(
        DatasetEvent(
            dataset_id=dataset.id, sub=principal.sub_str, at=now, action=action, changes=changes
        )
    )


def _set_removed(session: Session, principal: Principal, dataset: Dataset, removed: bool) -> bool:
    if dataset.removed == removed:
        return False
    extra = dict(dataset.extra or {})
    if removed:
        extra["remove_date"] = format_date(datetime.now(UTC))
    else:
        extra.pop("remove_date", None)
    dataset.extra = extra
    dataset.removed = removed
    _record(
        session,
        principal,
        dataset,
        "remove" if removed else "restore",
        {"removed": {"from": not removed, "to": removed}},
    )
    return True


def update_dataset(
    *, session: Session, principal: Principal, dataset_id: str, body: Any
) -> Dataset:
    """`PUT /dataset/:id`: see the module docstring."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {desc, tags, datatype_tags, meta}.")
    restore = "removed" in body
    if restore and not isinstance(body["removed"], bool):
        raise BadRequest("removed must be true or false.")
    wanted: dict[str, Any] = {}
    if "desc" in body:
        wanted["desc"] = objectfields.clean_desc(body["desc"])
    for key in ("tags", "datatype_tags"):
        if key in body:
            wanted[key] = objectfields.clean_tags(body[key], key)
    if "meta" in body:
        wanted["meta"] = objectfields.clean_meta(body["meta"])
    dataset, admin = _load(session, principal, dataset_id)
    if restore and body["removed"] is True:
        _set_removed(session, principal, dataset, True)
        session.commit()
        return dataset
    if restore and dataset.removed:
        if not admin:
            raise Forbidden("Only a project admin can restore a removed data object.")
        _set_removed(session, principal, dataset, False)
    elif dataset.removed and wanted:
        raise Conflict(
            f"The data object {dataset.id} was removed: a project admin must restore it "
            "(bl data update --restore) before it can be changed."
        )
    old = {
        "desc": dataset.desc,
        "meta": _meta(dataset),
        "tags": _tags(dataset.tags),
        "datatype_tags": _tags(dataset.datatype_tags),
    }
    changes = {k: {"from": old[k], "to": v} for k, v in wanted.items() if old[k] != v}
    if "desc" in changes:
        dataset.desc = wanted["desc"]
    if "meta" in changes:
        meta = wanted["meta"]
        dataset.meta = meta
        dataset.subject, dataset.session, dataset.run = (
            meta.get("subject"),
            meta.get("session"),
            meta.get("run"),
        )
    for key, model in (("tags", DatasetTag), ("datatype_tags", DatasetDatatypeTag)):
        if key in changes:
            # rows deleted, then inserted: the tag index's triggers see both
            session.execute(delete(model).where(model.dataset_id == dataset.id))
            session.add_all(
                model(dataset_id=dataset.id, tag=t, pos=i) for i, t in enumerate(wanted[key])
            )
    if changes:
        _record(session, principal, dataset, "update", changes)
    session.commit()
    session.expire(dataset)
    return dataset


def _meta(dataset: Dataset) -> dict[str, Any]:
    meta = dict(dataset.meta or {})
    for key in objectfields.PROMOTED:
        value = getattr(dataset, key)
        if value is not None and key not in meta:
            meta[key] = value
    return meta


def remove_dataset(*, session: Session, principal: Principal, dataset_id: str) -> int:
    """`DELETE /dataset/:id`: how many objects this request removed (0 if it already was)."""
    dataset, _admin = _load(session, principal, dataset_id)
    removed = _set_removed(session, principal, dataset, True)
    session.commit()
    return int(removed)


def history(*, session: Session, principal: Principal, dataset_id: str) -> list[DatasetEvent]:
    """The changes of an object the caller may read, oldest first."""
    row = None
    if is_object_id(dataset_id):
        row = session.execute(
            select(Dataset.id, readable_datasets(principal).label("readable")).where(
                Dataset.id == dataset_id
            )
        ).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    if not row.readable:
        raise Forbidden("you don't have access to the project that the dataset belongs")
    return list(
        session.scalars(
            select(DatasetEvent)
            .where(DatasetEvent.dataset_id == dataset_id)
            .order_by(DatasetEvent.id)
        )
    )
