"""Bulk uploads: a tree of folders, one data object each, named by a layout template (the
download's templates read backwards: ``{subject}/{session}`` → ``sub01/ses1`` is subject
``sub01``, session ``ses1``), planned whole before a byte moves, run in parallel, idempotent.

- :func:`scan_tree` finds the folders at the template's depth and reads their fields; a folder
  that does not match is reported, not guessed at.
- :func:`plan_bulk_upload` matches each folder's files against the datatype (``match_files``),
  hashes them, and asks the archive which objects are **already there**: an object of the same
  project and datatype, not removed, with the same subject, session and run, whose files have
  the same paths and sha256 (compared through the manifests). Those are skipped, so a rerun
  uploads only what is missing, whatever stopped the previous run.
- :func:`run_bulk_upload` uploads the rest on ``jobs`` workers (each object resumable as a single
  upload is), one failure not stopping the others; events as the download engine's
  (``plan``, ``object-done``, ``object-failed``, ``summary``).
"""

from __future__ import annotations

import functools
import re
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client import _urls
from brainlife.client._exceptions import (
    AuthError,
    BrainlifeError,
    Cancelled,
    ConfigError,
    DiskFullError,
    GaveUp,
)
from brainlife.client._http import HttpClient
from brainlife.client.transfer.layout import PRESETS
from brainlife.client.transfer.upload import UploadPlan, hash_sources, match_files
from brainlife.client.transfer.workers import run_parallel

__all__ = ["BulkUpload", "BulkUploadItem", "layout_fields", "scan_tree"]

Doc = dict[str, Any]
#: the fields a folder name may carry into an upload (the others name server-side things)
UPLOAD_FIELDS = ("subject", "session", "run", "tags", "datatype_tags", "desc")


def layout_fields(spec: str) -> tuple[str, re.Pattern[str]]:
    """The template of ``--layout`` (a preset name or a template) and the pattern that reads
    its fields back from a relative folder path."""
    if spec == "bids":
        raise ConfigError(
            "The bids layout is for downloads; upload a BIDS tree with 'bl bids upload'.",
            hint="layout",
        )
    template = PRESETS.get(spec, spec)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"The layout {spec!r} is not a valid template ({exc}).") from None
    pattern = ""
    seen: set[str] = set()
    for literal, name, _spec, _conv in parts:
        pattern += re.escape(literal)
        if name is None:
            continue
        if name not in UPLOAD_FIELDS:
            raise ConfigError(
                f"The layout {spec!r} uses {{{name}}}, which an upload cannot take from a folder "
                f"name; fields: {', '.join('{' + f + '}' for f in UPLOAD_FIELDS)}.",
                hint="layout",
            )
        if name in seen:
            pattern += f"(?P={name})"
        else:
            pattern += f"(?P<{name}>[^/]+?)"
            seen.add(name)
    if not seen:
        raise ConfigError(f"The layout {spec!r} has no {{field}}.", hint="layout")
    if template.startswith("/"):
        raise ConfigError(f"The layout {spec!r} must be relative.", hint="layout")
    return template, re.compile(pattern)


def scan_tree(root: Path, spec: str) -> tuple[list[tuple[Path, dict[str, str]]], list[str]]:
    """(folder, fields) of every folder of ``root`` at the template's depth that matches it,
    sorted; and the relative paths of those that do not match."""
    template, pattern = layout_fields(spec)
    depth = template.count("/") + 1
    found: list[tuple[Path, dict[str, str]]] = []
    unmatched: list[str] = []
    level = [root]
    for _ in range(depth):
        level = sorted(
            p for d in level for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    for folder in level:
        rel = folder.relative_to(root).as_posix()
        m = pattern.fullmatch(rel)
        if m is None:
            unmatched.append(rel)
        else:
            found.append((folder, {k: v for k, v in m.groupdict().items() if v is not None}))
    return found, unmatched


@dataclass
class BulkUploadItem:
    """One folder: its plan, or why it is refused; ``existing`` is the id of the object that
    already holds it."""

    folder: Path
    fields: dict[str, str]
    plan: UploadPlan | None = None
    refused: str | None = None
    existing: str | None = None
    dataset: str | None = None
    error: str | None = None
    error_code: str | None = None

    def to_json(self) -> Doc:
        doc: Doc = {"folder": str(self.folder), "fields": self.fields}
        if self.plan is not None:
            doc["files"] = len(self.plan.files)
            doc["bytes"] = self.plan.size
        for key in ("refused", "existing", "dataset", "error"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


@dataclass
class BulkUpload:
    """A planned bulk upload (``--dry-run`` prints it)."""

    project: str
    datatype: str
    datatype_name: str
    items: list[BulkUploadItem] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[BulkUploadItem]:
        return [i for i in self.items if i.plan is not None and i.existing is None]

    def summary(self) -> Doc:
        todo = self.todo
        return {
            "objects": len(self.items),
            "to_upload": len(todo),
            "files": sum(len(i.plan.files) for i in todo if i.plan),
            "bytes": sum(i.plan.size for i in todo if i.plan),
            "already_there": sum(1 for i in self.items if i.existing),
            "refused": sum(1 for i in self.items if i.refused) + len(self.unmatched),
        }


def item_plan(
    project: str,
    datatype: Mapping[str, Any],
    folder: Path,
    fields: Mapping[str, str],
    *,
    tags: Sequence[str] = (),
    datatype_tags: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    desc: str = "",
) -> UploadPlan:
    """The plan of one object from its folder and the fields its path gave."""
    merged: Doc = dict(meta or {})
    for key in ("subject", "session", "run"):
        if fields.get(key):
            merged[key] = fields[key]
    all_tags = [*tags, *[t for t in fields.get("tags", "").split(".") if t]]
    if fields.get("run"):
        all_tags.append(f"run-{fields['run']}")
    dtags = [*datatype_tags, *[t for t in fields.get("datatype_tags", "").split(".") if t]]
    return UploadPlan(
        project=project,
        datatype=str(datatype["_id"]),
        datatype_name=str(datatype.get("name") or datatype["_id"]),
        files=match_files(datatype, {}, folder),
        meta=merged,
        tags=list(dict.fromkeys(all_tags)),
        datatype_tags=list(dict.fromkeys(dtags)),
        desc=fields.get("desc", desc),
    )


def _meta_key(meta: Mapping[str, Any]) -> tuple[str, str, str]:
    return tuple(str(meta.get(k) or "") for k in ("subject", "session", "run"))  # type: ignore[return-value]


def find_existing(
    http: HttpClient,
    token: str,
    items: Sequence[BulkUploadItem],
    objects: Sequence[Doc],
) -> None:
    """Set ``existing`` on each item that an object of ``objects`` (same project and datatype,
    not removed) already holds: same subject/session/run and the same files (path, sha256)."""
    by_meta: dict[tuple[str, str, str], list[str]] = {}
    for o in objects:
        if o.get("status") == "stored" and not o.get("removed"):
            by_meta.setdefault(_meta_key(o.get("meta") or {}), []).append(str(o["_id"]))
    wanted = [(i, by_meta.get(_meta_key(i.plan.meta), [])) for i in items if i.plan is not None]
    ids = sorted({x for _i, v in wanted for x in v})
    files: dict[str, frozenset[tuple[str, str]]] = {}
    for start in range(0, len(ids), 500):
        doc = http.request_json(
            "POST",
            _urls.DATASET_MANIFESTS,
            json_body={"ids": ids[start : start + 500]},
            token=token,
        )
        for m in doc.get("manifests") or []:
            files[str(m["_id"])] = frozenset((f["path"], f["sha256"]) for f in m["files"])
    for item, candidates in wanted:
        assert item.plan is not None
        mine = frozenset((f.name, str(f.sha256)) for f in item.plan.files)
        item.existing = next((c for c in candidates if files.get(c) == mine), None)


#: errors that stop the whole run (the others fail one object)
_FATAL = (AuthError, GaveUp, DiskFullError, Cancelled)


def run_bulk_upload(
    upload_one: Callable[[UploadPlan, threading.Event], Doc],
    bulk: BulkUpload,
    *,
    jobs: int,
    on_event: Callable[[str, Doc], None],
) -> Doc:
    """Upload every item still to do on ``jobs`` workers; the summary."""
    cancel = threading.Event()
    started = time.monotonic()
    lock = threading.Lock()

    def one(item: BulkUploadItem) -> None:
        assert item.plan is not None
        try:
            doc = upload_one(item.plan, cancel)
        except _FATAL:
            raise
        except BrainlifeError as exc:
            item.error, item.error_code = str(exc), exc.code
            with lock:
                on_event("object-failed", item.to_json())
            return
        item.dataset = str(doc["_id"])
        with lock:
            on_event("object-done", item.to_json())

    on_event("plan", bulk.summary())
    failure = run_parallel([functools.partial(one, i) for i in bulk.todo], jobs=jobs, cancel=cancel)
    summary = {
        **bulk.summary(),
        "uploaded": sum(1 for i in bulk.items if i.dataset),
        "failed": sum(1 for i in bulk.items if i.error),
        "seconds": round(time.monotonic() - started, 3),
    }
    on_event("summary", summary)
    if failure is not None:
        raise failure
    return summary


def plan_items(
    found: Sequence[tuple[Path, dict[str, str]]],
    project: str,
    datatype: Mapping[str, Any],
    *,
    tags: Sequence[str],
    datatype_tags: Sequence[str],
    meta: Mapping[str, Any] | None,
    desc: str,
) -> list[BulkUploadItem]:
    """Each folder planned and hashed; a folder whose files do not fit is refused, with why."""
    items: list[BulkUploadItem] = []
    for folder, fields in found:
        item = BulkUploadItem(folder, fields)
        try:
            item.plan = item_plan(
                project,
                datatype,
                folder,
                fields,
                tags=tags,
                datatype_tags=datatype_tags,
                meta=meta,
                desc=desc,
            )
            hash_sources(item.plan.files)
        except BrainlifeError as exc:
            if isinstance(exc, _FATAL):
                raise
            item.refused = str(exc)
            item.plan = None
        items.append(item)
    return items
