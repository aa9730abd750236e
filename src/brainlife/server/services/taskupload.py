"""Receiving an upload into a task's folder: `POST /api/amaretti/task/upload/:id?p=&untar=true`,
the raw (chunked) body the official CLI streams, usually a tar.gz.

Who: the task's owner only (as amaretti; amaretti admins too); anyone else, like an unknown id,
gets the same 404 (task ids are not probed). The owner must still be able to write the task's
project (`access.writable_groups`, in SQL; else 403): someone removed from a project uploads
nothing more into it. The task must be `finished` and not have received
an upload yet (amaretti locks a task after its upload; a second one is a 409, so a finalized
object's files cannot be swapped under it).

Where: `p` is a path inside the task folder (no `..`, not absolute, no hidden component). With
`untar=true` the archive is unpacked into the folder of `p` (`upload/upload.tar.gz` → `upload/`,
`upload.tar.gz` → the task folder), safely (`uploadtar`), and the archive itself is not kept.

The bytes go through `Archive.task_files` (`taskstore.TaskFiles.begin_upload`): spooled into a
hidden staging folder, put in place only once complete and checked, so a task never shows half an
upload and a refused one leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, true

from brainlife.server.access import writable_groups
from brainlife.server.archive import Archive
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Conflict, Forbidden, NotFound
from brainlife.server.models import Task
from brainlife.server.principal import Principal
from brainlife.server.services.taskfiles import normalize_task_path
from brainlife.server.taskstore import TaskUpload
from brainlife.server.uploadtar import Unpacked, UnpackLimits
from brainlife.wire import is_object_id
from brainlife.wire.paths import relative_path_problem

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Received:
    """An upload put in place: where, how many bytes came, and what they unpacked to."""

    task_id: str
    path: str
    bytes: int
    unpacked: Unpacked | None


@dataclass(frozen=True)
class UploadTarget:
    task_id: str
    rel: str
    untar: bool
    limits: UnpackLimits


_RECEIVED = (
    "Task {task_id} has already received its upload (or is receiving one); submit a new task "
    "to upload again (bl data upload does)."
)


#: how long a claim (`extra.receiving`) holds: a server killed while it put an upload in place
#: leaves its claim behind, which no restart clears (another replica may be receiving); past this
#: age (far more than unpacking the largest upload the limits allow takes) it no longer counts
CLAIM_STALE = timedelta(hours=1)


def _taken(extra: dict[str, Any] | None) -> bool:
    """Whether the task has its upload, or is receiving one now (a claim younger than
    `CLAIM_STALE`; a claim that cannot be read counts as stale)."""
    extra = extra or {}
    if extra.get("upload"):
        return True
    claim = extra.get("receiving")
    if not isinstance(claim, dict) or not isinstance(claim.get("since"), str):
        return False
    try:
        since = datetime.fromisoformat(claim["since"])
    except ValueError:
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return datetime.now(UTC) - since < CLAIM_STALE


def _owned(principal: Principal) -> Any:
    if principal.is_admin("amaretti"):
        return true()
    return Task.user_id == principal.sub_str


def open_upload(
    *, archive: Archive, principal: Principal, task_id: str, p: str | None, untar: bool
) -> tuple[UploadTarget, TaskUpload]:
    """Check who, which task and where; start receiving (no byte has been read yet)."""
    row = None
    if is_object_id(task_id):
        writable = Task.group_id.in_(writable_groups(principal))
        with archive.request_session() as session:
            row = session.execute(
                select(Task, writable.label("writable")).where(
                    and_(Task.id == task_id, _owned(principal))
                )
            ).first()
            if row is not None:
                session.expunge(row[0])
    if row is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    task, may_write = row
    if not may_write:
        raise Forbidden(
            "You may no longer add data to this task's project: only its admins and members may."
        )
    if task.status != "finished":
        raise Conflict(f"Task {task_id} is {task.status}: only a finished task takes an upload.")
    if _taken(task.extra):
        raise Conflict(_RECEIVED.format(task_id=task_id))
    if not p:
        raise BadRequest("p (where the upload goes in the task folder) is required.")
    rel = normalize_task_path(p)
    if not rel or any(part.startswith(".") for part in rel.split("/")):
        raise BadRequest(f"The path {p!r} is not allowed (empty, or a hidden name).")
    # what an uploaded archive's members obey (and the file system: names of 255 bytes), so
    # that what lands in the task folder can become a data object's file
    problem = relative_path_problem(rel)
    if problem is not None:
        raise BadRequest(f"p: {problem}.")
    if untar and not rel.endswith(ARCHIVE_SUFFIXES):
        raise BadRequest(f"untar=true needs an archive name ending in .tar.gz, .tgz or .tar: {p!r}")
    settings = archive.settings
    limits = UnpackLimits(settings.max_upload_members, settings.max_upload_unpacked_bytes)
    return UploadTarget(task.id, rel, untar, limits), archive.task_files.begin_upload(task.id)


def _claim(archive: Archive, task_id: str) -> None:
    """Mark the task as receiving its upload (`extra.receiving`), or refuse (409) if it has
    one or is receiving one: two uploads sent at once both pass `open_upload`'s check, and
    without the claim both were put in place (the task folder then held the files of both)."""
    with archive.session() as session:
        lock_writes(session, f"upload into task {task_id}")
        task = session.get(Task, task_id)
        if task is None:  # removed meanwhile
            raise NotFound(f"couldn't find the task specified: {task_id}")
        if _taken(task.extra):
            raise Conflict(_RECEIVED.format(task_id=task_id))
        now = datetime.now(UTC)
        task.extra = {**(task.extra or {}), "receiving": {"since": now.isoformat()}}
        session.commit()


def _settle(archive: Archive, task_id: str, record: dict[str, Any] | None) -> None:
    """End the claim: with the upload's record, or without (a refused archive: the task may
    take a good upload after)."""
    with archive.session() as session:
        task = session.get(Task, task_id)
        if task is None:
            return
        extra = {k: v for k, v in (task.extra or {}).items() if k != "receiving"}
        if record is not None:
            extra["upload"] = record
            task.update_date = datetime.now(UTC)
        task.extra = extra
        session.commit()


def finish_upload(*, archive: Archive, target: UploadTarget, upload: TaskUpload) -> Received:
    """Put the received bytes in place (unpacked, with `untar`) and mark the task as having
    received its upload; one upload per task, also when several arrive at once (`_claim`).
    Blocking (it unpacks): run it off the event loop."""
    _claim(archive, target.task_id)
    try:
        unpacked = upload.finish(target.rel, untar=target.untar, limits=target.limits)
    except BaseException:
        _settle(archive, target.task_id, None)
        raise
    received = Received(target.task_id, target.rel, upload.received, unpacked)
    record = {
        "path": received.path,
        "bytes": received.bytes,
        "date": datetime.now(UTC).isoformat(),
    }
    _settle(archive, target.task_id, record)
    return received
