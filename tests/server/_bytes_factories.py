"""Small helpers for the download / ingest / task-file tests: rows made with the ORM directly."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brainlife.server.archive import Archive
from brainlife.server.ids import new_object_id
from brainlife.server.models import (
    Dataset,
    DatasetPublication,
    Datatype,
    Project,
    ProjectRole,
    Task,
)
from brainlife.server.services.ingest import store_dataset_files
from brainlife.server.storetaskfiles import StoreTaskFiles

WHEN = datetime(2024, 5, 17, 12, 30, 0, tzinfo=UTC)
MEMBER_SUB = 5
MEMBER_GID = 851
_group_ids = itertools.count(9000)


def token(
    archive: Archive,
    sub: int = MEMBER_SUB,
    gids: list[int] | None = None,
    scopes: dict[str, Any] | None = None,
    ttl_ms: int = 3600_000,
) -> str:
    claims = {
        "sub": sub,
        "gids": [MEMBER_GID] if gids is None else gids,
        "scopes": scopes or {},
        "profile": {"username": f"user{sub}"},
    }
    return archive.signer.sign(claims, ttl_ms=ttl_ms)


def auth(archive: Archive, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(archive, **kwargs)}"}


def make_project(
    archive: Archive, *, access: str = "private", members: tuple[str, ...] = ("5",)
) -> str:
    with archive.session() as s:
        project = Project(
            id=new_object_id(), group_id=next(_group_ids), name="p", access=access, create_date=WHEN
        )
        project.roles = [ProjectRole(role="members", sub=m, pos=i) for i, m in enumerate(members)]
        s.add(project)
        if s.get(Datatype, "0" * 24) is None:
            s.add(Datatype(id="0" * 24, name="neuro/anat/t1w", create_date=WHEN))
        s.commit()
        return project.id


def make_dataset(
    archive: Archive,
    project_id: str,
    files: list[tuple[str, Any]] | None = None,
    *,
    status: str = "storing",
    published: bool = False,
) -> str:
    """A data object; with `files`, stored through `store_dataset_files`."""
    with archive.session() as s:
        ds = Dataset(
            id=new_object_id(),
            project_id=project_id,
            datatype_id="0" * 24,
            status=status,
            create_date=WHEN,
            meta={"subject": "01"},
            extra={},
        )
        if published:
            ds.publications = [DatasetPublication(release_id="1" * 24, pos=0)]
        s.add(ds)
        s.commit()
        if files is not None:
            store_dataset_files(s, archive, ds, files)
        return ds.id


def make_task(
    archive: Archive,
    *,
    user_id: str = "5",
    group_id: int | None = MEMBER_GID,
    files: dict[str, bytes] | None = None,
) -> tuple[str, Path]:
    """A task row and its folder under `tasks_dir` (filled with `files`; with an object store,
    the files are also put there: later changes to the folder are not)."""
    with archive.session() as s:
        task = Task(
            id=new_object_id(),
            user_id=user_id,
            group_id=group_id,
            instance_id="a" * 24,
            service="brainlife/app-freesurfer",
            status="finished",
            create_date=WHEN,
        )
        s.add(task)
        s.commit()
        task_id = task.id
    folder = archive.settings.tasks_dir / task_id
    folder.mkdir(parents=True)
    for rel, data in (files or {}).items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if files and isinstance(archive.task_files, StoreTaskFiles):  # BL_TEST_STORE_URL
        archive.task_files.import_folder(task_id, folder)
    return task_id, folder
