"""Rows → brainlife wire documents (the JSON objects brainlife.io's API returns).

Field names and types follow brainlife (brainlife-server.md §1, §3.1): `_id`, `__v: 0`, ISO
dates, subs as strings in `admins`/`members`/`guests`/`user_id`, a dataset's `project` and
`datatype` as id strings, a task's `_group_id` as a number. Each row's `extra` JSON (the rest of
brainlife's document) is merged in without overriding the modelled fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from brainlife.server.models import Dataset, Datatype, Project, Publication, Release, Task
from brainlife.server.query import Projection
from brainlife.wire import Document, format_date


@dataclass
class DatasetArrays:
    tags: list[str] = field(default_factory=list)
    datatype_tags: list[str] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)


def _merge(doc: Document, extra: dict[str, Any] | None) -> Document:
    for key, value in (extra or {}).items():
        doc.setdefault(key, value)
    return doc


def project_doc(row: Project) -> Document:
    roles: dict[str, list[str]] = {"admins": [], "members": [], "guests": []}
    for role in sorted(row.roles, key=lambda r: r.pos):
        roles.setdefault(role.role, []).append(role.sub)
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "name": row.name,
        "desc": row.desc,
        "access": row.access,
        "listed": row.listed,
        "group_id": row.group_id,
        "admins": roles["admins"],
        "members": roles["members"],
        "guests": roles["guests"],
        "removed": row.removed,
        "create_date": format_date(row.create_date),
        "update_date": format_date(row.update_date),
        "__v": 0,
    }
    if doc["update_date"] is None:
        del doc["update_date"]
    return _merge(doc, row.extra)


def dataset_doc(row: Dataset, arrays: DatasetArrays | None = None) -> Document:
    """A data object's document. `arrays` (tags, datatype_tags, publications) may be given
    when they were fetched in bulk; otherwise they are read from the row's relationships."""
    if arrays is None:
        arrays = DatasetArrays(
            tags=[t.tag for t in sorted(row.tags, key=lambda t: t.pos)],
            datatype_tags=[t.tag for t in sorted(row.datatype_tags, key=lambda t: t.pos)],
            publications=[p.release_id for p in sorted(row.publications, key=lambda p: p.pos)],
        )
    meta = dict(row.meta or {})
    for key in ("subject", "session", "run"):
        value = getattr(row, key)
        if value is not None and key not in meta:
            meta[key] = value
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "project": row.project_id,
        "datatype": row.datatype_id,
        "datatype_tags": arrays.datatype_tags,
        "tags": arrays.tags,
        "meta": meta,
        "desc": row.desc,
        "storage": row.storage,
        "status": row.status,
        "removed": row.removed,
        "size": row.size,
        "publications": arrays.publications,
        "create_date": format_date(row.create_date),
        "__v": 0,
    }
    if row.status_msg is not None:
        doc["status_msg"] = row.status_msg
    if row.update_date is not None:
        doc["update_date"] = format_date(row.update_date)
    if row.prov is not None:
        doc["prov"] = row.prov
    if doc["storage"] is None:
        del doc["storage"]
    return _merge(doc, row.extra)


def datatype_doc(row: Datatype) -> Document:
    doc: Document = {
        "_id": row.id,
        "name": row.name,
        "desc": row.desc,
        "create_date": format_date(row.create_date),
        "__v": 0,
    }
    _merge(doc, row.extra)
    for key in ("files", "datatype_tags", "admins", "uis"):
        doc.setdefault(key, [])
    return doc


def release_doc(row: Release) -> Document:
    # Key order as brainlife.io serves releases (the document's `jq .[0].releases` shows it);
    # `desc` only when set, like mongoose leaves out unset fields.
    doc: Document = {
        "removed": row.removed,
        "_id": row.id,
        "name": row.name,
        "create_date": format_date(row.create_date),
    }
    if row.desc:
        doc["desc"] = row.desc
    return _merge(doc, row.extra)


def pub_doc(row: Publication) -> Document:
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "project": row.project_id,
        "name": row.name,
        "desc": row.desc,
        "doi": row.doi,
        "license": row.license,
        "removed": row.removed,
        "create_date": format_date(row.create_date),
        "releases": [release_doc(r) for r in sorted(row.releases, key=lambda r: r.pos)],
        "__v": 0,
    }
    _merge(doc, row.extra)
    for key in ("authors", "contributors", "fundings", "tags"):
        doc.setdefault(key, [])
    return doc


def task_doc(row: Task) -> Document:
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "_group_id": row.group_id,
        "instance_id": row.instance_id,
        "service": row.service,
        "service_branch": row.service_branch,
        "name": row.name,
        "desc": row.desc,
        "status": row.status,
        "status_msg": row.status_msg,
        "config": row.config,
        "create_date": format_date(row.create_date),
        "start_date": format_date(row.start_date),
        "finish_date": format_date(row.finish_date),
        "update_date": format_date(row.update_date),
        "__v": 0,
    }
    for key in ("start_date", "finish_date", "update_date", "service_branch", "status_msg"):
        if doc[key] is None:
            del doc[key]
    return _merge(doc, row.extra)


def render(
    rows: Iterable[Any], to_doc: Any, projection: Projection | None = None
) -> list[Document]:
    """Documents for rows, with a `select` projection applied."""
    docs = [to_doc(row) for row in rows]
    if projection is not None:
        docs = [projection.apply(d) for d in docs]
    return docs
