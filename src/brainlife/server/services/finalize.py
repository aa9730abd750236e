"""Turning an upload into a data object: `POST /api/warehouse/dataset/finalize-upload` (the
official `bl data upload`) and `POST /api/warehouse/dataset` from a task's output (the official
`bl bids upload`), and the job that stores the files (`FinalizeRunner`).

Checked before anything is recorded (a refusal leaves nothing behind): the task is the caller's
(else 404, as an unknown one) and has received its upload; its project (the project whose
`group_id` is the task's) is one the caller may write (`access.writable_projects`, in SQL; else
403); the datatype exists (else 400); the files the datatype requires are in the folder (else
400 naming them); `desc`/`tags`/`datatype_tags`/`meta` are within bounds (`objectfields`).

Then one transaction records the data object (`status: storing`, `prov.task_id` = the task, so
the official CLI's polling finds it) and its `FinalizeJob`. The job runner stores every file of
the folder in the content store and only then marks the object `stored`, in one commit
(`ingest.store_dataset_files`: blobs first, commit last); a failure marks it `failed` with a
`status_msg` the official CLI prints. The job is in the database, so a server killed mid-way
resumes it when it starts again: a job whose runner died (its claim is free) is run again
from the start (content already stored is deduplicated by digest).

Several server processes (`--workers`, replicas on one database, docs/deploy.md) each run a
job runner; a job is claimed before it runs, so one of them runs it (`_claim`). On PostgreSQL
the claim is a session-level advisory lock of the job held on its own connection: taken by one
backend at a time whatever machine the runner is on, and released by the server when the
runner's connection ends, so a killed replica's job is taken over by another replica's next
pass (every `FinalizeRunner.poll` seconds) instead of being lost. On SQLite (one machine by
nature) it is a lock file in the data directory, released by the kernel when its process dies.

Nothing is half-registered: an object is `stored` only with every file in the store.

Finalizing the same task twice answers the first object again (a retried request creates no
duplicate).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, select, text, true
from sqlalchemy.orm import Session

from brainlife.server.access import writable_projects
from brainlife.server.archive import Archive
from brainlife.server.db import lock_writes
from brainlife.server.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from brainlife.server.ids import new_object_id
from brainlife.server.models import (
    Dataset,
    Datatype,
    FinalizeJob,
    Project,
    Task,
)
from brainlife.server.principal import Principal
from brainlife.server.services import objectfields
from brainlife.server.services.ingest import PUT_JOBS, store_dataset_files, storing_dataset
from brainlife.server.services.taskfiles import normalize_task_path
from brainlife.wire import format_date, is_object_id

log = logging.getLogger("brainlife.server.finalize")

_Row = TypeVar("_Row", FinalizeJob, Dataset)

#: seconds between two sweeps of abandoned upload staging folders (`TaskFiles.clean_uploads`)
CLEAN_EVERY = 600.0
#: a job started this many times without finishing (its runner died each time) is failed
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Finalized:
    dataset_id: str
    job_id: str


# --- the requests -------------------------------------------------------------------------------


def _caller_task(session: Session, principal: Principal, task_id: Any) -> Task:
    owned = true() if principal.is_admin("amaretti") else Task.user_id == principal.sub_str
    task = None
    if is_object_id(task_id):
        task = session.scalar(select(Task).where(and_(Task.id == task_id, owned)))
    if task is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    if not (task.extra or {}).get("upload"):
        raise BadRequest(
            f"Nothing was uploaded to task {task_id}: upload the files first "
            "(POST /api/amaretti/task/upload/<task>)."
        )
    return task


def _writable_project(session: Session, principal: Principal, where: Any, what: str) -> Project:
    row = session.execute(
        select(Project, writable_projects(principal).label("writable")).where(where)
    ).first()
    if row is None:
        raise NotFound(f"couldn't find the project {what}")
    project, writable = row
    if not writable:
        raise Forbidden(
            f"You may not add data objects to the project {project.name!r} ({project.id}): "
            "only its admins and members may."
        )
    return project


def _datatype(session: Session, value: Any) -> Datatype:
    row = None
    if is_object_id(value):
        row = session.get(Datatype, value)
    elif isinstance(value, str) and value:
        row = session.scalar(select(Datatype).where(Datatype.name == value))
    if row is None:
        raise BadRequest(
            f"Unknown datatype {value!r}: `bl datatype query` lists the datatypes of this archive."
        )
    return row


def _check_required(archive: Archive, task_id: str, folder: str, datatype: Datatype) -> None:
    try:
        path = archive.task_files.stat(task_id, folder)
    except NotFound:
        raise BadRequest(
            f"The task has no folder {folder!r}: the upload did not put any file there."
        ) from None
    if not path.is_dir:
        raise BadRequest(f"{folder!r} in the task is a file, not a folder of files.")
    missing = []
    for spec in (datatype.extra or {}).get("files") or []:
        name = spec.get("filename") or spec.get("dirname")
        if not spec.get("required") or not isinstance(name, str):
            continue
        rel = f"{folder}/{name}" if folder else name
        try:
            archive.task_files.stat(task_id, normalize_task_path(rel))
        except (NotFound, BadRequest):
            missing.append(name)
    if missing:
        raise BadRequest(
            f"The upload lacks what datatype {datatype.name} requires: {', '.join(missing)}. "
            "Nothing was registered."
        )


def _existing(session: Session, task_id: str) -> Finalized | None:
    """The object already registered from the task, if any. Read under the task's lock, held
    until the caller commits what it registers: two requests for one task at once (a client
    retrying, two runs of `bl data upload` finalizing) would otherwise both register an object
    and a job, one of which then fails on the files the other moved to the store."""
    lock_writes(session, f"finalize of task {task_id}")
    job = session.scalar(select(FinalizeJob).where(FinalizeJob.task_id == task_id))
    if job is None:
        return None
    found = Finalized(job.dataset_id, job.id)
    session.rollback()  # nothing written: the lock goes now, not after the wait for the job
    return found


def _register(
    session: Session,
    *,
    principal: Principal,
    task: Task,
    project: Project,
    datatype: Datatype,
    folder: str,
    output_id: str,
    fields: objectfields.ObjectFields,
) -> Finalized:
    now = datetime.now(UTC)
    dataset = storing_dataset(
        now,
        principal.sub_str,
        project.id,
        datatype.id,
        fields,
        status_msg="Waiting for the archiver ..",
        prov={
            "task_id": task.id,
            "instance_id": task.instance_id,
            "output_id": output_id,
            "subdir": folder,
            "task": {
                "_id": task.id,
                "name": task.name,
                "service": task.service,
                "instance_id": task.instance_id,
                "user_id": task.user_id,
                "create_date": format_date(task.create_date),
                "finish_date": format_date(task.finish_date),
            },
        },
        extra={},
    )
    job = FinalizeJob(
        id=new_object_id(now),
        dataset_id=dataset.id,
        task_id=task.id,
        folder=folder,
        state="pending",
        attempts=0,
        create_date=now,
        update_date=now,
    )
    session.add(dataset)
    session.flush()
    session.add(job)
    session.commit()
    return Finalized(dataset.id, job.id)


def _object_fields(
    body: dict[str, Any], defaults: dict[str, Any] | None = None
) -> objectfields.ObjectFields:
    defaults = defaults or {}
    meta = {
        **objectfields.clean_meta(defaults.get("meta")),
        **objectfields.clean_meta(body.get("meta")),
    }
    return objectfields.ObjectFields(
        desc=objectfields.clean_desc(body.get("desc") or defaults.get("desc")),
        tags=objectfields.clean_tags(
            body.get("tags") if body.get("tags") is not None else defaults.get("tags"), "tags"
        ),
        datatype_tags=objectfields.clean_tags(
            body.get("datatype_tags")
            if body.get("datatype_tags") is not None
            else defaults.get("datatype_tags"),
            "datatype_tags",
        ),
        meta=objectfields.clean_meta(meta),
    )


def finalize_upload(
    *, session: Session, archive: Archive, principal: Principal, body: Any
) -> Finalized:
    """`POST /dataset/finalize-upload {task, datatype, subdir, fileids, datatype_tags, meta,
    tags, desc}`: check, then record the object and its job (see the module docstring)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {task, datatype, subdir, meta, ...}.")
    task = _caller_task(session, principal, body.get("task"))
    existing = _existing(session, task.id)
    if existing is not None:
        return existing
    if task.group_id is None:
        raise BadRequest(f"Task {task.id} belongs to no project.")
    project = _writable_project(
        session, principal, Project.group_id == task.group_id, f"of group {task.group_id}"
    )
    datatype = _datatype(session, body.get("datatype"))
    subdir = body.get("subdir")
    if subdir is not None and not isinstance(subdir, str):
        raise BadRequest("subdir must be a path in the task folder.")
    folder = normalize_task_path(subdir or "")
    fields = _object_fields(body)
    _check_required(archive, task.id, folder, datatype)
    return _register(
        session,
        principal=principal,
        task=task,
        project=project,
        datatype=datatype,
        folder=folder,
        output_id=folder or "upload",
        fields=fields,
    )


def register_output(
    *, session: Session, archive: Archive, principal: Principal, body: Any
) -> Finalized:
    """`POST /dataset {project, task_id, output_id, meta, desc, tags}`: a data object from an
    output of a task (`task.config._outputs[id == output_id]`: its datatype, datatype tags and
    meta). The files are the output's `subdir`, else its `<output_id>` folder if there is one,
    else the whole task folder (where `bl bids upload` unpacks)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {project, task_id, output_id, ...}.")
    project_id = body.get("project")
    if not is_object_id(project_id):
        raise BadRequest(f"project must be a project id; got {project_id!r}.")
    project = _writable_project(session, principal, Project.id == project_id, str(project_id))
    task = _caller_task(session, principal, body.get("task_id"))
    if task.group_id != project.group_id:
        raise BadRequest(f"Task {task.id} does not belong to the project {project.id}.")
    existing = _existing(session, task.id)
    if existing is not None:
        return existing
    output_id = body.get("output_id")
    outputs = (task.config or {}).get("_outputs") or []
    output = next((o for o in outputs if isinstance(o, dict) and o.get("id") == output_id), None)
    if output is None:
        raise BadRequest(f"Task {task.id} has no output {output_id!r} (config._outputs).")
    datatype = _datatype(session, output.get("datatype"))
    subdir = output.get("subdir")
    if isinstance(subdir, str) and subdir:
        folder = normalize_task_path(subdir)
    else:
        folder = ""
        if isinstance(output_id, str) and output_id:
            with contextlib.suppress(NotFound, BadRequest):
                if archive.task_files.stat(task.id, normalize_task_path(output_id)).is_dir:
                    folder = normalize_task_path(output_id)
    fields = _object_fields(body, output)
    _check_required(archive, task.id, folder, datatype)
    return _register(
        session,
        principal=principal,
        task=task,
        project=project,
        datatype=datatype,
        folder=folder,
        output_id=str(output_id),
        fields=fields,
    )


# --- the job ------------------------------------------------------------------------------------


class JobFailed(Exception):
    """A finalize job that cannot succeed; the message becomes the object's `status_msg`."""


def _fail(session: Session, job_id: str, message: str) -> None:
    session.rollback()
    job = session.get(FinalizeJob, job_id)
    if job is None:
        return
    dataset = session.get(Dataset, job.dataset_id)
    now = datetime.now(UTC)
    job.state, job.error, job.update_date = "failed", message, now
    if dataset is not None and dataset.status != "stored":
        dataset.status = "failed"
        dataset.status_msg = message
        dataset.update_date = now
    session.commit()
    log.warning("finalize job %s failed: %s", job_id, message)


def run_job(archive: Archive, job_id: str) -> str:
    """Run one job to its end (the caller holds its lock); returns its final state."""
    with archive.session() as session:
        job = session.get(FinalizeJob, job_id)
        if job is None or job.state in ("done", "failed"):
            return job.state if job is not None else "missing"
        dataset = session.get(Dataset, job.dataset_id)
        if dataset is None:
            job.state, job.error = "failed", "the data object was removed"
            session.commit()
            return "failed"
        if dataset.status == "stored":  # stored, then the server died before this was noted
            job.state = "done"
            session.commit()
            return "done"
        if job.attempts >= MAX_ATTEMPTS:
            _fail(
                session,
                job_id,
                f"Storing the files was interrupted {job.attempts} times; giving up. "
                "Upload the data again.",
            )
            return "failed"
        job.state, job.attempts, job.update_date = "running", job.attempts + 1, datetime.now(UTC)
        session.commit()
        if archive.settings.finalize_pause:  # test servers only (serve.FINALIZE_PAUSE_ENV)
            time.sleep(archive.settings.finalize_pause)
        files = archive.task_files
        try:
            path = files.stat(job.task_id, job.folder)
            entries = list(files.files(path))
            if not entries:
                raise JobFailed("No file was uploaded: the data object would be empty.")
            store_dataset_files(
                session,
                archive,
                dataset,
                [(e.rel, files.chunks(e)) for e in entries],  # each file read on its own
                jobs=PUT_JOBS,
            )
        except (JobFailed, ApiError) as exc:
            _fail(session, job_id, str(exc) if isinstance(exc, JobFailed) else exc.message)
            return "failed"
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = "The archive's disk is full: the files could not be stored."
            else:
                message = f"The files could not be stored: {exc.strerror or exc}."
            _fail(session, job_id, message)
            return "failed"
        job = session.get(FinalizeJob, job_id)
        assert job is not None
        job.state, job.update_date = "done", datetime.now(UTC)
        task_id, folder = job.task_id, job.folder
        session.commit()
    if folder:  # the bytes are in the store now: the task's copy is freed
        files.remove(task_id, folder)
    return "done"


@contextlib.contextmanager
def _job_lock(lock_dir: Path, job_id: str) -> Iterator[bool]:
    """An exclusive lock on the job (held by the process running it, released by the kernel
    when that process dies, so a restart finds it free); yields whether it was taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _advisory_key(job_id: str) -> int:
    """The job's PostgreSQL advisory lock key: 63 bits of a digest of the job id (in a namespace
    of its own, so no other advisory lock of the archive can collide with it)."""
    digest = hashlib.sha256(b"brainlife finalize job\x00" + job_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@contextlib.contextmanager
def _claim(archive: Archive, lock_dir: Path, job_id: str) -> Iterator[bool]:
    """Claim the job for this process while the block runs; yields whether it was claimed (see
    the module docstring: an advisory lock on PostgreSQL, a lock file on SQLite)."""
    if archive.engine.dialect.name != "postgresql":
        with _job_lock(lock_dir, job_id) as taken:
            yield taken
        return
    key = _advisory_key(job_id)
    with archive.engine.connect() as conn:
        taken = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        conn.commit()
        try:
            yield taken
        finally:
            if taken:  # a connection back in the pool must hold no lock
                try:
                    conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except Exception:  # a broken connection: the server dropped the lock with it
                    conn.invalidate()


class FinalizeRunner:
    """Runs the pending finalize jobs in a background thread of the server process: at start
    (jobs a killed server left), when `kick`ed by a request, and every `poll` seconds (jobs of
    another worker process or replica that died). Several processes may run one each: a job's
    claim (`_claim`) makes sure one runs it."""

    def __init__(self, archive: Archive, *, poll: float = 5.0) -> None:
        self.archive = archive
        self.poll = poll
        self.lock_dir = archive.settings.data_dir / "jobs"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ended: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="finalize-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def kick(self) -> None:
        self._wake.set()

    def wait_for(self, job_id: str, timeout: float) -> bool:
        """Wait until this process has run `job_id` to its end (or `timeout` seconds)."""
        with self._cond:
            return self._cond.wait_for(lambda: job_id in self._ended, timeout)

    def _loop(self) -> None:
        cleaned = time.monotonic()
        while not self._stop.is_set():
            try:
                self.run_pending()
                if time.monotonic() - cleaned > CLEAN_EVERY:
                    # what uploads cut off by a killed server (another worker) left behind
                    self.archive.task_files.clean_uploads()
                    cleaned = time.monotonic()
            except Exception:  # the loop must survive a database hiccup
                log.exception("finalize runner: a pass failed")
            self._wake.wait(self.poll)
            self._wake.clear()

    def run_pending(self) -> int:
        """Run every pending (or abandoned) job whose lock is free; returns how many ran."""
        with self.archive.session() as session:
            ids = session.scalars(
                select(FinalizeJob.id)
                .where(FinalizeJob.state.in_(("pending", "running")))
                .order_by(FinalizeJob.create_date)
            ).all()
        ran = 0
        for job_id in ids:
            if self._stop.is_set():
                break
            with _claim(self.archive, self.lock_dir, job_id) as taken:
                if not taken:
                    continue
                try:
                    state = run_job(self.archive, job_id)
                    if state in ("done", "failed", "missing"):  # never run again
                        (self.lock_dir / f"{job_id}.lock").unlink(missing_ok=True)
                except Exception:
                    log.exception("finalize job %s: unexpected error", job_id)
                    with self.archive.session() as session:
                        _fail(session, job_id, "The server failed storing the files (see its log).")
                ran += 1
            with self._cond:
                self._ended.add(job_id)
                if len(self._ended) > 10_000:
                    self._ended.clear()
                    self._ended.add(job_id)
                self._cond.notify_all()
        return ran


def job_of(session: Session, finalized: Finalized) -> FinalizeJob:
    return _fresh(session, FinalizeJob, finalized.job_id)


def dataset_of(session: Session, finalized: Finalized) -> Dataset:
    return _fresh(session, Dataset, finalized.dataset_id)


def _fresh(session: Session, model: type[_Row], key: str) -> _Row:
    """The row as the finalize worker left it (re-read: it was written in another session)."""
    row = session.get(model, key)
    if row is None:
        raise Conflict("the data object was removed meanwhile")
    session.refresh(row)
    return row
