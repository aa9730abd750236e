"""The same path of many tasks: their names on disk, and the run that keeps going past a failed
task (``bl task download --path P`` with filters).

A folder extracted (``extract``) goes file by file through the bulk engine when the server has our
task manifest (:func:`plan_task_folders`); otherwise, and for archives saved as is, each task is
downloaded in turn, a failure recorded and the next one started, except failures that every other
task would meet too (a rejected token, a full disk), which stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brainlife.client._exceptions import AuthError, BrainlifeError, DiskFullError
from brainlife.wire.paths import safe_name

# `bl task query` prints `task_subject`: the download modules are imported where they are used
if TYPE_CHECKING:
    from brainlife.client._client import Client
    from brainlife.client.transfer.plan import Plan
    from brainlife.client.transfer.single import DownloadResult, Progress

__all__ = ["TaskRun", "download_tasks", "name_tasks", "plan_task_folders", "task_subject"]

Doc = dict[str, Any]
#: the codes of a plan's objects that mean "this server has no task manifest" (brainlife.io)
_NO_MANIFEST = ("not-found", "protocol")


def task_subject(task: Doc) -> str | None:
    """The subject of a task's first input that has one (``config._inputs[].meta.subject``)."""
    inputs = (task.get("config") or {}).get("_inputs") or []
    for entry in inputs:
        subject = (entry.get("meta") or {}).get("subject") if isinstance(entry, dict) else None
        if subject:
            return str(subject)
    return None


def name_tasks(tasks: Iterable[Doc], name_by: str) -> list[tuple[str, str]]:
    """``(task id, name)`` of each task: its subject (``name_by="subject"``) or id made a safe
    file name (other group members choose subjects: ``../../x`` or ``/tmp/x`` must not leave the
    folder), each name used once (a repeat gets ``.<task id>``), never the lockfile's."""
    from brainlife.client.transfer.lockfile import LOCK_NAME

    used: set[str] = set()
    names: list[tuple[str, str]] = []
    for t in tasks:
        tid = str(t["_id"])
        own = safe_name(tid) or "task"
        name = (safe_name(task_subject(t)) if name_by == "subject" else None) or own
        if name in used or name == LOCK_NAME:
            name = f"{name}.{own}"
        used.add(name)
        names.append((tid, name))
    return names


def plan_task_folders(
    client: Client, pairs: Sequence[tuple[str, str]], path: str, root: Path, existing: str
) -> Plan | None:
    """The plan that extracts ``path`` of each task into ``root``/<name> file by file, or None
    when the server has no task manifest (then the .tar.gz stream is the way)."""
    plan = client.plan_task_download(pairs, path, root=root, existing=existing)
    objects = plan.objects
    no_manifest = all(o.failure is not None and o.failure.code in _NO_MANIFEST for o in objects)
    return None if objects and no_manifest else plan


@dataclass
class TaskRun:
    """What :func:`download_tasks` did: a result per task downloaded, an error per task not."""

    results: list[DownloadResult] = field(default_factory=list)
    failed: dict[str, BrainlifeError] = field(default_factory=dict)

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.failed.values()}


#: ``progress(name)``: a context giving the progress callback of one task's download
ProgressFor = Callable[[str], "AbstractContextManager[Progress | None]"]


def download_tasks(
    client: Client,
    pairs: Sequence[tuple[str, str]],
    path: str,
    root: Path,
    *,
    extract: bool,
    existing: str = "skip",
    progress: ProgressFor | None = None,
    on_task: Callable[[str, str], None] | None = None,
    on_failed: Callable[[str, BrainlifeError], None] | None = None,
) -> TaskRun:
    """``path`` of each ``(task id, name)``, one after the other: extracted into ``root``/<name>
    (``extract``), else saved as ``root``/<name>.tar.gz and recorded in ``bl-lock.json``. A
    failed task is told to ``on_failed`` and the next one starts; a rejected token or a full
    disk raise (every other task would fail the same way)."""
    from brainlife.client.transfer.layout import inside

    run = TaskRun()
    for tid, name in pairs:
        if on_task is not None:
            on_task(tid, name)
        try:
            with progress(name) if progress is not None else nullcontext(None) as bar:
                if extract:
                    result = client.download_task_path(
                        tid, path, directory=inside(root, name), extract=True, progress=bar
                    )
                else:
                    result = client.download_task_archive(
                        tid, path, inside(root, f"{name}.tar.gz"), progress=bar, existing=existing
                    )
        except (AuthError, DiskFullError):
            raise
        except BrainlifeError as exc:
            run.failed[tid] = exc
            if on_failed is not None:
                on_failed(tid, exc)
            continue
        run.results.append(result)
    return run
