"""The bulk download engine: runs a :class:`~brainlife.client.transfer.plan.Plan` on the worker
pool (``workers``) over the client's one connection pool, and reports what happens as a stream of
events.

Events (``event.to_json()`` gives one JSON object, ``{"event": <kind>, ...}``): ``plan``,
``object-start``, ``progress`` (throttled), ``file-done``, ``object-done``, ``object-failed``,
``waiting`` (a retry waits: ``reason``, ``since``, ``retry_in``, ``gives_up_in``, ``message``),
``waiting-over`` (the server answers again) and ``summary``. One failed object never stops the
others; a full disk, a rejected token, Ctrl-C or a server that stays away (:class:`GaveUp`, after
the client's ``give_up_after`` seconds without a success, shared by all workers) stop the run:
no new file starts, partial files are kept for the next run, and a :class:`GaveUp` names the
data objects left.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client._exceptions import AuthError, BrainlifeError, Cancelled, DiskFullError, GaveUp
from brainlife.client._http import HttpClient, RetryPolicy, Waiting, quote_path
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.lockfile import Lockfile
from brainlife.client.transfer.names import part_path
from brainlife.client.transfer.plan import Plan, PlanFile, PlanObject, write_generated
from brainlife.client.transfer.single import Downloader, object_mtime
from brainlife.client.transfer.units import FileUnit, Meter, run_file
from brainlife.client.transfer.workers import run_parallel

__all__ = ["BulkResult", "Engine", "Event", "EventHandler"]

Doc = dict[str, Any]


@dataclass
class Event:
    """One thing that happened: ``kind`` and its fields (``to_json`` adds ``"event": kind``)."""

    kind: str
    data: Doc = field(default_factory=dict)

    def to_json(self) -> Doc:
        return {"event": self.kind, **self.data}


EventHandler = Callable[[Event], None]


@dataclass
class BulkResult:
    """The summary of a run (also sent as the ``summary`` event)."""

    root: Path
    objects: int = 0
    downloaded: int = 0
    present: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    #: the error code (``BrainlifeError.code``) of each failed object
    failed_codes: dict[str, str] = field(default_factory=dict)
    files_fetched: int = 0
    files_linked: int = 0
    files_present: int = 0
    bytes_total: int = 0
    bytes_transferred: int = 0
    bytes_resumed: int = 0
    seconds: float = 0.0
    lockfile: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> Doc:
        rate = self.bytes_transferred / self.seconds if self.seconds > 0 else 0.0
        return {
            "root": str(self.root),
            "objects": self.objects,
            "downloaded": self.downloaded,
            "present": self.present,
            "failed": [{"id": k, "error": v} for k, v in self.failed.items()],
            "files_fetched": self.files_fetched,
            "files_linked": self.files_linked,
            "files_present": self.files_present,
            "bytes_total": self.bytes_total,
            "bytes_transferred": self.bytes_transferred,
            "bytes_resumed": self.bytes_resumed,
            "seconds": round(self.seconds, 3),
            "rate": round(rate),
            "lockfile": str(self.lockfile) if self.lockfile else None,
        }


@dataclass
class _Job:
    """One job on the pool: fetch ``primary`` once as a :class:`FileUnit` (or link it from
    ``source``) and link ``copies`` to it (same sha256); or, with ``tar``, a whole object as a
    :class:`~brainlife.client.transfer.units.TarUnit` (no manifest)."""

    primary: tuple[PlanObject, PlanFile] | None = None
    copies: list[tuple[PlanObject, PlanFile]] = field(default_factory=list)
    source: Path | None = None
    tar: PlanObject | None = None


class Engine:
    def __init__(
        self,
        http: HttpClient,
        token: str,
        plan: Plan,
        lock: Lockfile,
        *,
        jobs: int = 8,
        on_event: EventHandler | None = None,
        policy: RetryPolicy | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        self.http = http
        self.token = token
        self.plan = plan
        self.lock = lock
        self.jobs = max(1, jobs)
        self.on_event = on_event
        self.policy = policy or http.policy
        self.interval = progress_interval
        self.cancel = threading.Event()
        self.fatal: BaseException | None = None
        self._mutex = threading.RLock()
        self._pending: dict[str, int] = {}
        self._started: set[str] = set()
        self._last_progress = 0.0
        self._last_save = 0.0
        #: every byte of the run, from every worker (``progress`` events read it)
        self.meter = Meter(self._on_meter, plan.total_bytes)
        self._finished: set[str] = set()
        self.result = BulkResult(root=plan.root, lockfile=lock.path)

    # -- events ---------------------------------------------------------------------------
    def emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            with self._mutex:
                self.on_event(Event(kind, data))

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.interval:
            return
        self._last_progress = now
        r = self.result
        r.bytes_transferred, r.bytes_resumed = self.meter.transferred, self.meter.resumed
        self.emit(
            "progress",
            bytes_done=self.meter.done,
            bytes_total=r.bytes_total,
            bytes_transferred=r.bytes_transferred,
            objects_done=r.downloaded + r.present,
            objects_failed=len(r.failed),
            objects=r.objects,
            seconds=round(time.monotonic() - self._t0, 3),
        )

    def _on_meter(self, _done: int, _total: int | None) -> None:
        with self._mutex:
            self._progress()

    def _on_waiting(self, waiting: Waiting | None) -> None:
        if waiting is None:
            self.emit("waiting-over")
        else:
            self.emit("waiting", **waiting.to_json())

    # -- bookkeeping ----------------------------------------------------------------------
    def _record(self, obj: PlanObject, status: str, error: str | None = None) -> None:
        files = []
        for f in obj.files or []:
            rec: Doc = {"path": f.rel, "size": f.size, "sha256": f.sha256}
            if f.mtime_ns is not None:
                rec["mtime_ns"] = f.mtime_ns
            files.append(rec)
        generated = []
        for rel, content in obj.generated.items():
            generated.append(
                {
                    "path": rel,
                    "size": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
        entry: Doc = {
            "id": obj.id,
            "kind": obj.kind,
            "folder": obj.folder,
            "status": status,
            "files": files,
            "generated": generated,
        }
        if error:
            entry["error"] = error
        self.lock.put(entry)

    def _save(self, force: bool = False) -> None:
        with self._mutex:
            now = time.monotonic()
            if force or now - self._last_save >= 1.0:
                self._last_save = now
                self.lock.save()

    def _start(self, obj: PlanObject) -> None:
        with self._mutex:
            if obj.id in self._started:
                return
            self._started.add(obj.id)
        self.emit(
            "object-start",
            id=obj.id,
            folder=obj.folder,
            files=len(obj.files or []),
            bytes=obj.size,
        )

    def _complete(self, obj: PlanObject, how: str) -> None:
        for rel, content in obj.generated.items():
            write_generated(self.plan.root / obj.folder / rel, content)
        with self._mutex:
            self._record(obj, "complete")
            self._finished.add(obj.id)
            if how == "present":
                self.result.present += 1
            else:
                self.result.downloaded += 1
        self.emit("object-done", id=obj.id, folder=obj.folder, status=how, bytes=obj.size)
        self._progress(force=True)
        self._save()

    def _fail(self, obj: PlanObject, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        with self._mutex:
            if obj.id in self.result.failed:
                return
            self.result.failed[obj.id] = message
            self.result.failed_codes[obj.id] = _code(exc)
            if obj.files is not None:
                self._record(obj, "failed", message)
        self.emit(
            "object-failed",
            id=obj.id,
            folder=obj.folder,
            error=message,
            code=_code(exc),
            error_class=type(exc).__name__,  # kept for existing --json consumers; prefer code
        )
        self._save()

    def _file_done(self, obj: PlanObject, f: PlanFile, how: str, target: Path) -> None:
        mtime = object_mtime(obj.doc)
        if mtime is not None and how != "linked":  # a link shares its source's inode
            os.utime(target, (mtime, mtime))
        f.mtime_ns = target.stat().st_mtime_ns
        f.state = "present"
        with self._mutex:
            if how == "fetched":
                self.result.files_fetched += 1
            else:
                self.result.files_linked += 1
            self._pending[obj.id] -= 1
            finished = self._pending[obj.id] == 0 and obj.id not in self.result.failed
        if how != "fetched":
            self.meter.present(f.size)
        self.emit("file-done", id=obj.id, path=f"{obj.folder}/{f.rel}", bytes=f.size, how=how)
        if finished:
            self._complete(obj, "downloaded")

    # -- work -----------------------------------------------------------------------------
    def _jobs(self) -> list[_Job]:
        units: dict[str, _Job] = {}
        out: list[_Job] = []
        root = self.plan.root
        for obj in self.plan.ok_objects:
            if obj.files is None:
                out.append(_Job(tar=obj))
                continue
            for f in obj.files:
                if f.state == "present":
                    continue
                if f.state == "link" and f.link_from and f.sha256 not in units:
                    # the source is a file already present (not one fetched in this run)
                    units[f.sha256] = _Job(source=root / f.link_from)
                    out.append(units[f.sha256])
                unit = units.get(f.sha256)
                if unit is None:
                    unit = units[f.sha256] = _Job(primary=(obj, f))
                    out.append(unit)
                else:
                    unit.copies.append((obj, f))
        return out

    def _fetch(self, obj: PlanObject, f: PlanFile) -> Path:
        target = self.plan.root / obj.folder / f.rel
        self._start(obj)
        unit = FileUnit(obj.route_prefix + quote_path(f.rel), target, f.size, f.sha256)
        run_file(self.http, self.token, unit, self.meter, cancel=self.cancel, policy=self.policy)
        self._file_done(obj, f, "fetched", target)
        return target

    def _link(self, src: Path, obj: PlanObject, f: PlanFile) -> None:
        self._start(obj)
        target = self.plan.root / obj.folder / f.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = part_path(target)
        tmp.unlink(missing_ok=True)
        how = "linked"
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            how = "copied"
        os.replace(tmp, target)
        self._file_done(obj, f, how, target)

    def _run_job(self, unit: _Job) -> None:
        if unit.tar is not None:
            self._run_tar(unit.tar)
            return
        src = unit.source
        if unit.primary is not None:
            obj, f = unit.primary
            try:
                src = self._fetch(obj, f)
            except (Cancelled, DiskFullError, AuthError, GaveUp):
                raise
            except (BrainlifeError, OSError) as exc:
                self._fail(obj, exc)
                src = None
        for obj, f in unit.copies:
            if self.cancel.is_set():
                raise Cancelled("Interrupted.")
            try:
                if src is not None:
                    self._link(src, obj, f)
                else:  # the first copy failed: each fetches its own
                    src = self._fetch(obj, f)
            except (Cancelled, DiskFullError, AuthError, GaveUp):
                raise
            except (BrainlifeError, OSError) as exc:
                self._fail(obj, exc)

    def _run_tar(self, obj: PlanObject) -> None:
        self._start(obj)
        try:
            res = Downloader(self.http, self.token).dataset(
                obj.id,
                self.plan.root / obj.folder,
                use_manifest=False,
                cancel=self.cancel,
                meter=self.meter,
            )
        except (Cancelled, DiskFullError, AuthError, GaveUp):
            raise
        except (BrainlifeError, OSError) as exc:
            self._fail(obj, exc)
            return
        base = self.plan.root / obj.folder
        obj.files = []
        for rel in res.files:
            path = base / rel
            if path.is_file():
                st = path.stat()
                sha = hash_file(path)[0].hexdigest()
                obj.files.append(PlanFile(rel, st.st_size, sha, "present", 0, None, st.st_mtime_ns))
        obj.size = sum(f.size for f in obj.files)
        with self._mutex:
            self.result.files_fetched += len(obj.files)
        self._complete(obj, "downloaded")

    def run(self) -> BulkResult:
        """Write the generated files, record every object, run the units in the pool; raise
        what stopped the run (a :class:`GaveUp` naming what is left)."""
        self._t0 = time.monotonic()
        r = self.result
        r.objects = len(self.plan.objects)
        r.bytes_total = self.plan.total_bytes
        self._start_run()
        units = self._jobs()
        liveness = self.http.liveness
        liveness.reset()
        listener, liveness.listener = liveness.listener, self._on_waiting
        interrupted = False
        try:
            self._work(units)
        except BaseException:
            interrupted = True
            raise
        finally:
            liveness.listener = listener
            r.seconds = time.monotonic() - self._t0
            r.bytes_transferred, r.bytes_resumed = self.meter.transferred, self.meter.resumed
            for obj in self.plan.ok_objects:
                if self._pending.get(obj.id, 0) > 0 and obj.id not in r.failed:
                    self._record(obj, "incomplete")
            self._save_lock(stopping=interrupted or self.fatal is not None)
        if isinstance(self.fatal, GaveUp):
            raise self._stopped(self.fatal)
        if self.fatal is not None:
            raise self.fatal
        self._progress(force=True)
        self.emit("summary", **r.to_json())
        return r

    def _save_lock(self, *, stopping: bool) -> None:
        """Save the lockfile at the end of a run; when the run is stopping on an error of its
        own (a full disk while a file arrived, Ctrl-C), a lockfile that cannot be saved either
        does not replace that error: it is what the user must hear (the rerun saves the lock)."""
        try:
            self.lock.save()
        except (DiskFullError, OSError):
            if not stopping:
                raise

    def _start_run(self) -> None:
        """The root's generated files, the unavailable objects failed, every other object
        recorded as incomplete (or complete, when all its files are present)."""
        plan, r = self.plan, self.result
        for rel, content in plan.generated.items():
            write_generated(plan.root / rel, content)
            self.lock.generated[rel] = {
                "path": rel,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        for obj in plan.objects:
            if obj.failure is not None:
                self._fail(obj, obj.failure)
        with_files = [o for o in plan.ok_objects if o.files is not None]
        for obj in with_files:
            files = obj.files or []
            self._pending[obj.id] = sum(1 for f in files if f.state != "present")
            r.files_present += len(files) - self._pending[obj.id]
            self.meter.present(sum(f.size for f in files if f.state == "present"))
            self._record(obj, "incomplete")
        self.lock.save()
        for obj in with_files:
            if self._pending[obj.id] == 0:
                self._complete(obj, "present")

    def _work(self, units: list[_Job]) -> None:
        """Run ``units`` on ``jobs`` workers; the first fatal error cancels the rest."""
        self.http.ensure_pool_size(self.jobs)
        work = [functools.partial(self._run_job, u) for u in units]
        self.fatal = run_parallel(work, jobs=self.jobs, cancel=self.cancel)

    def _stopped(self, exc: GaveUp) -> GaveUp:
        """``exc`` with what the run leaves undone named (ids; the first 20 in the message)."""
        r = self.result
        left = [
            o.id
            for o in self.plan.ok_objects
            if o.id not in self._finished and o.id not in r.failed
        ]
        shown = " ".join(left[:20]) + (f" (and {len(left) - 20} more)" if len(left) > 20 else "")
        failed = f"; {len(r.failed)} failed" if r.failed else ""
        return GaveUp(
            f"{exc} Stopped with {len(left)} of {r.objects} data objects not downloaded"
            f"{': ' + shown if left else ''}{failed}. Run the same command again to continue "
            "where it stopped.",
            left=left,
            hint=exc.hint,
        )


def _code(exc: BaseException) -> str:
    """The error code of a failure (an OSError while writing is a plain error)."""
    return exc.code if isinstance(exc, BrainlifeError) else BrainlifeError.code
