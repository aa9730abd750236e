"""Small helpers that create ORM rows for tests (no HTTP, no validation)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetPublication,
    DatasetTag,
    Datatype,
    Project,
    ProjectRole,
    Publication,
    Release,
    Task,
)

_counter = itertools.count(1)
BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def oid() -> str:
    """A fresh, increasing 24-hex id (so `_id` order is creation order)."""
    return f"{0x65000000 + next(_counter):08x}{'0' * 16}"


def when(days: int = 0) -> datetime:
    return BASE_DATE + timedelta(days=days)


def project(
    session: Session,
    *,
    name: str = "proj",
    access: str = "public",
    listed: bool = False,
    admins: list[int] = (),  # type: ignore[assignment]
    members: list[int] = (),  # type: ignore[assignment]
    guests: list[int] = (),  # type: ignore[assignment]
    group_id: int | None = None,
    removed: bool = False,
    desc: str = "",
    days: int = 0,
    **extra: Any,
) -> Project:
    pid = oid()
    row = Project(
        id=pid,
        group_id=group_id if group_id is not None else 1000 + next(_counter),
        user_id=str(admins[0]) if admins else "1",
        name=name,
        desc=desc,
        access=access,
        listed=listed,
        removed=removed,
        create_date=when(days),
        extra=extra,
    )
    pos = 0
    for role, subs in (("admins", admins), ("members", members), ("guests", guests)):
        for sub in subs:
            row.roles.append(ProjectRole(role=role, sub=str(sub), pos=pos))
            pos += 1
    session.add(row)
    session.flush()
    return row


def datatype(session: Session, *, name: str = "neuro/anat/t1w", **extra: Any) -> Datatype:
    extra.setdefault("files", [{"id": "t1", "filename": "t1.nii.gz", "required": True}])
    row = Datatype(id=oid(), name=name, desc=f"{name} desc", create_date=when(), extra=extra)
    session.add(row)
    session.flush()
    return row


def dataset(
    session: Session,
    proj: Project,
    dtype: Datatype,
    *,
    meta: dict[str, Any] | None = None,
    tags: list[str] = (),  # type: ignore[assignment]
    datatype_tags: list[str] = (),  # type: ignore[assignment]
    publications: list[str] = (),  # type: ignore[assignment]
    status: str = "stored",
    removed: bool = False,
    size: int | None = 100,
    desc: str = "",
    prov: dict[str, Any] | None = None,
    days: int = 0,
    user_id: str = "1",
    **extra: Any,
) -> Dataset:
    meta = dict(meta or {})
    row = Dataset(
        id=oid(),
        project_id=proj.id,
        datatype_id=dtype.id,
        user_id=user_id,
        desc=desc,
        storage="local" if status == "stored" else None,
        status=status,
        removed=removed,
        size=size,
        subject=_str(meta.get("subject")),
        session=_str(meta.get("session")),
        run=_str(meta.get("run")),
        create_date=when(days),
        meta=meta,
        prov=prov,
        extra=extra,
    )
    row.tags = [DatasetTag(tag=t, pos=i) for i, t in enumerate(tags)]
    row.datatype_tags = [DatasetDatatypeTag(tag=t, pos=i) for i, t in enumerate(datatype_tags)]
    row.publications = [DatasetPublication(release_id=r, pos=i) for i, r in enumerate(publications)]
    session.add(row)
    session.flush()
    return row


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def publication(
    session: Session,
    proj: Project,
    *,
    name: str = "pub",
    releases: list[str] = ("1",),  # type: ignore[assignment]
    removed: bool = False,
    **extra: Any,
) -> Publication:
    extra.setdefault("authors", ["1"])
    row = Publication(
        id=oid(),
        project_id=proj.id,
        user_id="1",
        name=name,
        desc=f"{name} desc",
        doi="10.0000/bl.p.1",
        license="cc0",
        removed=removed,
        create_date=when(),
        extra=extra,
    )
    for i, rname in enumerate(releases):
        row.releases.append(
            Release(id=oid(), pos=i, name=rname, desc="", removed=False, create_date=when(i))
        )
    session.add(row)
    session.flush()
    return row


def task(
    session: Session,
    *,
    user_id: int = 1,
    group_id: int | None = None,
    service: str = "brainlife/app-freesurfer",
    status: str = "finished",
    config: dict[str, Any] | None = None,
    days: int = 0,
    **extra: Any,
) -> Task:
    row = Task(
        id=oid(),
        user_id=str(user_id),
        group_id=group_id,
        instance_id=oid(),
        service=service,
        name="task",
        desc="",
        status=status,
        create_date=when(days),
        config=config or {},
        extra=extra,
    )
    session.add(row)
    session.flush()
    return row
