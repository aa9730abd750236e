"""The plan of a bulk download: every object, its folder and files, what is already on disk, what
will be fetched, linked or resumed, and the problems that stop the run before any byte moves."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from brainlife.client import _jwt
from brainlife.client._exceptions import BrainlifeError, ConfigError
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.layout import Layout, LayoutProblem, check_paths, inside
from brainlife.client.transfer.lockfile import Lockfile
from brainlife.client.transfer.names import (
    FOLDER_PART_SUFFIX,
    atomic_write,
    part_path,
    sidecar_path,
)
from brainlife.client.transfer.tars import partial_tar_bytes
from brainlife.client.transfer.tarstream import safe_relpath
from brainlife.client.transfer.writes import human_size

__all__ = [
    "EXISTING",
    "RATE_ESTIMATE",
    "BatchManifests",
    "Plan",
    "PlanFile",
    "PlanObject",
    "PlanningProgress",
    "describe_plan",
    "resolve_files",
]

#: --existing policies
EXISTING = ("skip", "verify", "refresh", "overwrite")
#: the conservative transfer rate (bytes/s) and per-file cost (s) used to estimate a run's length
RATE_ESTIMATE = 10_000_000
PER_FILE_ESTIMATE = 0.05
Doc = dict[str, Any]


@dataclass
class PlanFile:
    rel: str
    size: int
    sha256: str
    #: fetch | present | link | resume
    state: str = "fetch"
    #: bytes of a partial file kept from an earlier run (state "resume")
    partial: int = 0
    #: for state "link": the root-relative path of the same content (fetched or present)
    link_from: str | None = None
    mtime_ns: int | None = None


@dataclass
class PlanObject:
    id: str
    folder: str
    kind: str = "dataset"
    doc: Doc | None = None
    #: None: not known in advance (no manifest route: the object arrives as a tar)
    files: list[PlanFile] | None = None
    size: int = 0
    #: the file route is ``route_prefix + quote_path(file.rel)``
    route_prefix: str = ""
    #: files we write ourselves (``_info.json``): relative path -> content
    generated: dict[str, bytes] = field(default_factory=dict)
    #: why the object cannot be downloaded (its message is ``error``)
    failure: BrainlifeError | None = None
    #: with ``files`` None: bytes of an interrupted tar download the next run keeps
    partial: int = 0
    #: files already at their place, different, and not recorded by any download (not replaced)
    foreign: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return None if self.failure is None else str(self.failure)

    @property
    def present(self) -> bool:
        return self.files is not None and all(f.state == "present" for f in self.files)

    def to_json(self) -> Doc:
        return {
            "id": self.id,
            "kind": self.kind,
            "folder": self.folder,
            "files": None if self.files is None else len(self.files),
            "bytes": self.size,
            "present": self.present,
            "error": self.error,
        }


@dataclass
class Plan:
    root: Path
    layout: Layout
    objects: list[PlanObject]
    existing: str = "skip"
    server: str = ""
    query: Doc = field(default_factory=dict)
    problems: list[LayoutProblem] = field(default_factory=list)
    #: root-relative path -> content (e.g. proj-<id>/dataset_description.json)
    generated: dict[str, bytes] = field(default_factory=dict)
    free: int | None = None
    token_expires: datetime | None = None

    # -- totals ---------------------------------------------------------------------------
    def _files(self) -> list[PlanFile]:
        return [f for o in self.objects if o.files for f in o.files]

    @property
    def ok_objects(self) -> list[PlanObject]:
        return [o for o in self.objects if o.error is None]

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.ok_objects)

    @property
    def present_bytes(self) -> int:
        return sum(f.size for f in self._files() if f.state == "present")

    @property
    def partial_bytes(self) -> int:
        in_files = sum(f.partial for f in self._files() if f.state == "resume")
        return in_files + sum(o.partial for o in self.ok_objects if o.files is None)

    @property
    def link_bytes(self) -> int:
        return sum(f.size for f in self._files() if f.state == "link")

    @property
    def fetch_bytes(self) -> int:
        """Bytes still to come over the network."""
        known = sum(f.size - f.partial for f in self._files() if f.state in ("fetch", "resume"))
        unknown = sum(max(o.size - o.partial, 0) for o in self.ok_objects if o.files is None)
        return known + unknown

    @property
    def file_count(self) -> int:
        return len(self._files())

    @property
    def blocking(self) -> list[LayoutProblem]:
        return [p for p in self.problems if p.kind != "case"]

    def estimate_seconds(self) -> float:
        to_fetch = [f for f in self._files() if f.state in ("fetch", "resume")]
        return self.fetch_bytes / RATE_ESTIMATE + PER_FILE_ESTIMATE * len(to_fetch)

    def token_warning(self) -> str | None:
        """A sentence when the token is expected to expire before the run can finish."""
        if self.token_expires is None:
            return None
        left = self.token_expires.timestamp() - time.time()
        need = self.estimate_seconds()
        if left >= need:
            return None
        days = max(1, int(need // 86400) + 1)
        return (
            f"Your access token expires at {self.token_expires.astimezone():%Y-%m-%d %H:%M} "
            f"but this download may take about {_duration(need)} (at a conservative "
            f"{RATE_ESTIMATE // 1_000_000} MB/s): get a token valid for {days} more day(s) "
            "first, or start anyway."
        )

    def to_json(self, preview: int = 10) -> Doc:
        failed = [o for o in self.objects if o.error is not None]
        return {
            "event": "plan",
            "root": str(self.root),
            "layout": self.layout.template,
            "existing": self.existing,
            "objects": len(self.objects),
            "objects_present": sum(1 for o in self.ok_objects if o.present),
            "objects_unavailable": len(failed),
            "files": self.file_count,
            "bytes": self.total_bytes,
            "bytes_present": self.present_bytes,
            "bytes_partial": self.partial_bytes,
            "bytes_linked": self.link_bytes,
            "bytes_to_fetch": self.fetch_bytes,
            "free": self.free,
            "token_expires": self.token_expires.isoformat() if self.token_expires else None,
            "estimate_seconds": round(self.estimate_seconds(), 1),
            "token_warning": self.token_warning(),
            "first_paths": [o.folder for o in self.ok_objects[:preview]],
            "problems": [p.to_json() for p in self.problems],
            "unavailable": [{"id": o.id, "error": o.error} for o in failed],
        }


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_plan(plan: Plan) -> list[str]:
    """The plan in a few lines for people."""
    j = plan.to_json()
    lines = [
        f"Plan: {j['objects']} data objects, {j['files']} files, {human_size(j['bytes'])} "
        f"into {plan.root} (layout {plan.layout.template})",
        f"  already present: {j['objects_present']} objects, {human_size(j['bytes_present'])}"
        + (
            f"; resumable partial files: {human_size(j['bytes_partial'])}"
            if j["bytes_partial"]
            else ""
        )
        + (
            f"; identical content linked: {human_size(j['bytes_linked'])}"
            if j["bytes_linked"]
            else ""
        ),
        f"  to fetch: {human_size(j['bytes_to_fetch'])}; free disk space: "
        + (human_size(j["free"]) if j["free"] is not None else "unknown"),
    ]
    if j["first_paths"]:
        lines.append("  first folders:")
        lines += [f"    {p}" for p in j["first_paths"]]
    for o in j["unavailable"]:
        lines.append(f"  unavailable: {o['id']}: {o['error']}")
    for p in plan.problems:
        lines.append(f"  {p.kind}: {p.message} ({', '.join(p.ids)})")
    if j["token_warning"]:
        lines.append(f"  warning: {j['token_warning']}")
    return lines


def _state_of(
    target: Path,
    f: PlanFile,
    existing: str,
    record: Doc | None,
) -> None:
    """Decide whether ``f`` (destined for ``target``) is already present, resumable or to fetch."""
    try:
        st = target.stat()
    except OSError:
        st = None
    if st is not None and existing != "overwrite" and st.st_size == f.size:
        fast = (
            existing in ("skip", "refresh")
            and record is not None
            and record.get("sha256") == f.sha256
            and record.get("size") == f.size
            and record.get("mtime_ns") == st.st_mtime_ns
        )
        if fast or hash_file(target)[0].hexdigest() == f.sha256:
            f.state, f.mtime_ns = "present", st.st_mtime_ns
            return
    part = part_path(target)
    side = sidecar_path(target)
    try:
        have = part.stat().st_size
        doc = json.loads(side.read_text())
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and doc.get("sha256") == f.sha256 and 0 < have <= f.size:
        f.state, f.partial = "resume", have


def _lock_files(lock: Lockfile | None, obj: PlanObject) -> list[PlanFile] | None:
    rec = lock.find(obj.id, obj.folder) if lock is not None else None
    if not rec or not isinstance(rec.get("files"), list):
        return None
    return [PlanFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in rec["files"]]


def _manifest_files(doc: Doc) -> list[PlanFile]:
    files = []
    for entry in doc.get("files") or []:
        rel = safe_relpath(str(entry.get("path", "")))
        if rel is None:
            continue
        files.append(PlanFile(rel.as_posix(), int(entry["size"]), str(entry["sha256"])))
    return files


#: objects per batch manifest request
MANIFEST_BATCH = 500
#: at most one planning-progress call per this many seconds (besides the first and the last)
PLANNING_INTERVAL = 0.5

#: ``manifests(objects)``: the answer for each object's id (its manifest, or the error the single
#: manifest route would raise), or None when the server has no batch route.
BatchManifests = Callable[[Sequence[PlanObject]], dict[str, Doc | BrainlifeError] | None]
#: ``progress(done, total)``: objects whose files are resolved so far
PlanningProgress = Callable[[int, int], None]


class _Ticker:
    """Counts resolved objects and calls ``progress`` at most every ``interval`` seconds: not
    at all when resolving takes less than that (quick plans stay silent), else also at the end."""

    def __init__(self, total: int, progress: PlanningProgress | None, interval: float) -> None:
        self.total, self.progress, self.interval = total, progress, interval
        self.done = 0
        self.last = time.monotonic()
        self.told = False
        self.lock = threading.Lock()

    def tick(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last >= self.interval or (self.done == self.total and self.told):
                self.last, self.told = now, True
                self.progress(self.done, self.total)


def resolve_files(
    objects: Sequence[PlanObject],
    root: Path,
    *,
    manifest: Callable[[PlanObject], Doc | None],
    existing: str,
    lock: Lockfile | None,
    pinned: Lockfile | None = None,
    jobs: int = 8,
    manifests: BatchManifests | None = None,
    progress: PlanningProgress | None = None,
    progress_interval: float | None = None,
) -> None:
    """Fill in each object's files (from ``pinned``, the lockfile of ``--lock``; from ``lock``
    when it proves the object complete; else from the server's manifest) and their states.

    With ``manifests`` the manifests are asked for ``MANIFEST_BATCH`` objects at a time; once it
    answers None (the server has no batch route) every remaining object asks ``manifest`` on its
    own, in parallel. ``progress(done, total)`` follows the objects resolved (see `_Ticker`)."""
    todo = [o for o in objects if o.error is None]
    interval = PLANNING_INTERVAL if progress_interval is None else progress_interval
    ticker = _Ticker(len(todo), progress, interval)

    def known(obj: PlanObject) -> list[PlanFile] | None:
        files = None
        if existing != "refresh":
            files = _lock_files(pinned, obj)
        if files is None and existing == "skip" and lock is not None:
            rec = lock.find(obj.id, obj.folder)
            if rec and rec.get("status") == "complete":
                files = _lock_files(lock, obj)
        return files

    def settle(obj: PlanObject, files: list[PlanFile]) -> None:
        base = root / obj.folder
        for f in files:
            record = lock.file_record(obj.folder, f.rel) if lock is not None else None
            _state_of(base / f.rel, f, existing, record)
            target = base / f.rel
            if (
                f.state != "present"
                and record is None
                and existing != "overwrite"
                and (target.exists() or target.is_symlink())
            ):
                obj.foreign.append(f.rel)
        obj.files = files
        obj.size = sum(f.size for f in files)

    def from_answer(obj: PlanObject, answer: Doc | BrainlifeError | None) -> None:
        if isinstance(answer, BrainlifeError):
            obj.failure = answer
        elif answer is None:
            obj.files = None
            obj.partial = partial_tar_bytes(root / (obj.folder + FOLDER_PART_SUFFIX))
        else:
            settle(obj, _manifest_files(answer))

    def one(obj: PlanObject, files: list[PlanFile] | None = None) -> None:
        try:
            if files is None:
                files = known(obj)
            if files is not None:
                settle(obj, files)
                return
            try:
                answer: Doc | BrainlifeError | None = manifest(obj)
            except BrainlifeError as exc:
                answer = exc
            from_answer(obj, answer)
        finally:
            ticker.tick()

    def answered(obj: PlanObject, answer: Doc | BrainlifeError) -> None:
        try:
            from_answer(obj, answer)
        finally:
            ticker.tick()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        if manifests is None:
            futures = [pool.submit(one, o) for o in todo]
        else:
            futures, pending = [], []
            for o in todo:
                files = known(o)
                if files is None:
                    pending.append(o)
                else:
                    futures.append(pool.submit(one, o, files))
            batch: BatchManifests | None = manifests
            for i in range(0, len(pending), MANIFEST_BATCH):
                chunk = pending[i : i + MANIFEST_BATCH]
                answers: dict[str, Doc | BrainlifeError] | None = {}
                if batch is not None:
                    try:
                        answers = batch(chunk)
                    except BrainlifeError:
                        answers = {}  # this chunk object by object: each gets its own error
                if answers is None:
                    batch = None  # not this server: one request per object from now on
                    answers = {}
                for o in chunk:
                    answer = answers.get(o.id)
                    if answer is None:
                        futures.append(pool.submit(one, o))
                    else:
                        futures.append(pool.submit(answered, o, answer))
        for future in futures:
            future.result()
    _plan_links(objects)


def _plan_links(objects: Sequence[PlanObject]) -> None:
    """Identical content (same sha256) is fetched once: every other copy becomes a link to a
    present copy, else to the first one fetched."""
    source: dict[str, str] = {}
    for obj in objects:
        for f in obj.files or []:
            if f.state == "present":
                source.setdefault(f.sha256, f"{obj.folder}/{f.rel}")
    for obj in objects:
        if obj.error is not None:
            continue
        for f in obj.files or []:
            if f.state == "present":
                continue
            src = source.get(f.sha256)
            if src is None:
                source[f.sha256] = f"{obj.folder}/{f.rel}"
            elif src != f"{obj.folder}/{f.rel}":
                f.state, f.link_from, f.partial = "link", src, 0


def finish_plan(plan: Plan, token: str | None) -> Plan:
    """Layout problems, free disk space and the token's expiry."""
    ok = plan.ok_objects
    plan.problems = check_paths(
        str(plan.root.resolve()),
        {o.id: o.folder for o in ok},
        {o.id: [f.rel for f in o.files or []] for o in ok},
    )
    root = plan.root.resolve()
    for o in ok:
        try:
            inside(root, o.folder)
        except ConfigError as exc:
            plan.problems.append(LayoutProblem("outside", o.folder, [o.id], str(exc)))
        if o.foreign:
            more = f" (and {len(o.foreign) - 1} more)" if len(o.foreign) > 1 else ""
            plan.problems.append(
                LayoutProblem(
                    "exists",
                    f"{o.folder}/{o.foreign[0]}",
                    [o.id],
                    f"{o.folder}/{o.foreign[0]}{more} already exists, differs, and was not "
                    "written by a download here: it is kept (move it away, or let the "
                    "download overwrite it)",
                )
            )
    probe = plan.root.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        plan.free = shutil.disk_usage(probe).free
    except OSError:
        plan.free = None
    claims = _jwt.decode_claims(token) if token else None
    plan.token_expires = _jwt.expires_at(claims) if claims else None
    return plan


def info_json(doc: Doc) -> bytes:
    """An object's ``_info.json`` (its document, as ``/dataset?single=true`` returns it)."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def dataset_description(project_id: str, project_name: str, server: str) -> bytes:
    doc = {
        "Name": project_name or f"brainlife project {project_id}",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainlife", "CodeURL": f"{server}/project/{project_id}"}],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def write_generated(path: Path, content: bytes) -> os.stat_result:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, content)
    return path.stat()
