"""``bl-lock.json``: what a bulk download holds, so it can be verified offline and fetched again.

```json
{"version": 1, "tool": "brainlife-python 0.1.0", "server": "https://brainlife.io",
 "created": "...", "updated": "...", "query": {...}, "layout": "{id}",
 "objects": [{"id": "...", "kind": "dataset", "folder": "5a05…", "status": "complete",
              "files": [{"path": "t1.nii.gz", "size": 123, "sha256": "…", "mtime_ns": 1}],
              "generated": [{"path": "_info.json", "size": 10, "sha256": "…"}]}],
 "generated": [{"path": "proj-…/dataset_description.json", "size": 1, "sha256": "…"}]}
```

Entries are keyed by where their files lie (an object's folder; a task archive's file), so every
run into the same root adds to the lockfile: the same object in another layout, or another task
archive, is one more entry, and ``bl data verify`` checks every file any run placed. Written
atomically (temporary file + rename, merged with entries another run saved meanwhile) at the
download root, and rewritten as objects complete. ``bl data verify`` checks a tree against it;
``bl data download --lock`` fetches it again.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brainlife import __version__
from brainlife.client._exceptions import ConfigError, DiskFullError
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.names import FILE_PART_SUFFIX, SIDECAR_SUFFIX, atomic_write
from brainlife.client.transfer.writes import human_size
from brainlife.wire.tarnames import UnsafeMember, member_path

__all__ = [
    "LOCK_NAME",
    "Lockfile",
    "VerifyProblem",
    "VerifyReport",
    "entry_key",
    "verify_tree",
]

LOCK_NAME = "bl-lock.json"
VERSION = 1


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry_key(entry: dict[str, Any]) -> str:
    """Where an entry's files lie, relative to the root: the object's folder, or for a task
    archive (kind ``task-archive``, beside the lockfile) the file itself. Entries are keyed by
    this, not by id: one object in two layouts, or two archives of one task, are two entries."""
    if entry.get("kind") == "task-archive":
        path = entry.get("path")
        files = entry.get("files") or []
        if not path and files and isinstance(files[0], dict):
            path = files[0].get("path")
        if path:
            return str(path)
        return f"task-archive:{entry.get('id')}"
    return str(entry.get("folder") or entry.get("id"))


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """What makes an entry unusable: not the shape a download writes, or a folder or file that
    lies outside the lockfile's folder (a damaged or hostile lockfile); None when it is fine."""
    files = entry.get("files")
    if files is not None and not (
        isinstance(files, list)
        and all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files)
    ):
        return "has a 'files' that is not a list of {path, size, sha256}"
    folder = entry.get("folder") or ""
    try:
        for name in (str(folder), *(f["path"] for f in files or [])):
            member_path(name)
    except UnsafeMember as exc:
        return f"names a place outside the lockfile's folder ({exc})"
    return None


def _disk_full(path: Path, exc: OSError) -> DiskFullError:
    try:
        free: int | None = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    has = f" ({human_size(free)} free)" if free is not None else ""
    return DiskFullError(
        f"The disk is full: no space left while saving the lockfile {path}{has}. The downloaded "
        "files are kept; free some space and run the same command again to record them.",
        free=free,
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass
class Lockfile:
    path: Path
    server: str = ""
    query: dict[str, Any] = field(default_factory=dict)
    layout: str = ""
    created: str = field(default_factory=_now)
    #: entry_key(entry) -> entry
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (mtime_ns, size) of the file as this object last read or wrote it: another run's save
    #: changes it, and only then does `save` read the file again to merge
    _seen: tuple[int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @classmethod
    def load(cls, path: Path) -> Lockfile:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"No lockfile at {path}: it is written by a bulk 'bl data download'."
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read the lockfile {path} ({exc}).") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
            raise ConfigError(f"{path} is not a brainlife lockfile (no 'objects' list).")
        lock = cls(
            path=path,
            server=str(doc.get("server") or ""),
            query=doc.get("query") or {},
            layout=str(doc.get("layout") or ""),
            created=str(doc.get("created") or _now()),
        )
        for n, obj in enumerate(doc["objects"], 1):
            if isinstance(obj, dict) and obj.get("id"):
                problem = _entry_problem(obj)
                if problem:
                    raise ConfigError(
                        f"{path} is not a usable lockfile: its entry {n} ({obj['id']}) {problem}. "
                        "Download again into a new folder to write a new one."
                    )
                lock.put(obj)
        for gen in doc.get("generated") or []:
            if isinstance(gen, dict) and gen.get("path"):
                lock.generated[str(gen["path"])] = gen
        lock._seen = _stamp(path)
        return lock

    @classmethod
    def open(cls, path: Path) -> Lockfile:
        """The lockfile at ``path``, or a new empty one."""
        return cls.load(path) if path.exists() else cls(path=path)

    def put(self, entry: dict[str, Any]) -> None:
        """Record an entry, replacing only the one at the same place."""
        self.objects[entry_key(entry)] = entry

    def at(self, key: str) -> dict[str, Any] | None:
        """The entry at ``key`` (an object's folder, or a task archive's file)."""
        return self.objects.get(key)

    def find(self, oid: str, folder: str | None = None) -> dict[str, Any] | None:
        """The entry of object ``oid`` (in ``folder`` when given; else the last recorded)."""
        if folder is not None:
            entry = self.objects.get(folder)
            return entry if entry is not None and str(entry.get("id")) == oid else None
        found = None
        for entry in self.objects.values():
            if str(entry.get("id")) == oid:
                found = entry
        return found

    def ids(self, kind: str = "dataset") -> list[str]:
        """The ids of the entries of ``kind``, each once, in order."""
        out = [
            str(e["id"]) for e in self.objects.values() if str(e.get("kind") or "dataset") == kind
        ]
        return list(dict.fromkeys(out))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "tool": f"brainlife-python {__version__}",
            "server": self.server,
            "created": self.created,
            "updated": _now(),
            "query": self.query,
            "layout": self.layout,
            "objects": list(self.objects.values()),
            "generated": list(self.generated.values()),
        }

    def _merge_disk(self) -> None:
        """Entries another run saved meanwhile (at places this one did not record) are kept."""
        try:
            other = Lockfile.load(self.path)
        except ConfigError:
            return
        for key, entry in other.objects.items():
            self.objects.setdefault(key, entry)
        for rel, gen in other.generated.items():
            self.generated.setdefault(rel, gen)

    def save(self) -> None:
        """Write atomically (temporary file + rename), merged with what is on disk; a temporary
        file is never left behind, and a full disk is a DiskFullError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = _stamp(self.path)
        if stamp is not None and stamp != self._seen:
            self._merge_disk()
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        try:
            atomic_write(self.path, text.encode())
            self._seen = _stamp(self.path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(self.path, exc) from exc
            raise

    def file_record(self, folder: str, rel: str) -> dict[str, Any] | None:
        """The record of file ``rel`` of the entry at ``folder``."""
        obj = self.objects.get(folder)
        if not obj:
            return None
        for f in obj.get("files") or []:
            if f.get("path") == rel:
                return dict(f)
        return None


@dataclass
class VerifyProblem:
    kind: str  # corrupt | missing | extra | incomplete
    path: str
    id: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "id": self.id, "message": self.message}


@dataclass
class VerifyReport:
    root: Path
    objects: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "objects": self.objects,
            "files": self.files,
            "bytes": self.bytes,
            "corrupt": self.count("corrupt"),
            "missing": self.count("missing"),
            "extra": self.count("extra"),
            "incomplete": self.count("incomplete"),
            "problems": [p.to_json() for p in self.problems],
        }


def _check(
    report: VerifyReport, path: Path, rel: str, oid: str | None, rec: dict[str, Any], fast: bool
) -> None:
    try:
        st = path.stat()
    except OSError:
        report.problems.append(VerifyProblem("missing", rel, oid, f"{rel} is missing"))
        return
    size = int(rec.get("size", -1))
    report.files += 1
    report.bytes += max(size, 0)
    if st.st_size != size:
        report.problems.append(
            VerifyProblem(
                "corrupt", rel, oid, f"{rel} has {st.st_size} bytes, the lockfile says {size}"
            )
        )
        return
    if fast and rec.get("mtime_ns") == st.st_mtime_ns:
        return
    digest, _ = hash_file(path)
    if digest.hexdigest() != str(rec.get("sha256", "")).lower():
        report.problems.append(
            VerifyProblem("corrupt", rel, oid, f"{rel} does not match its sha256")
        )


def verify_tree(root: Path, lock: Lockfile | None = None, *, fast: bool = False) -> VerifyReport:
    """Check every file the lockfile records, whichever run placed it (size and sha256; with
    ``fast``, size and mtime when the mtime is unchanged), and report files in object folders that
    no entry records."""
    lock = lock or Lockfile.load(root / LOCK_NAME)
    report = VerifyReport(root=root)
    tracked = _tracked(lock)
    walked: set[str] = set()
    for obj in lock.objects.values():
        oid = str(obj.get("id"))
        report.objects += 1
        folder = str(obj.get("folder") or "")
        if obj.get("status") != "complete":
            report.problems.append(_incomplete(obj, oid, folder))
            continue
        for rec in list(obj.get("files") or []) + list(obj.get("generated") or []):
            rel = str(rec.get("path"))
            shown = f"{folder}/{rel}" if folder else rel
            _check(report, root / folder / rel, shown, oid, rec, fast)
        if not folder or folder in walked or not (root / folder).is_dir():
            continue  # task archives lie beside the lockfile, among other files
        walked.add(folder)
        report.problems += _extra(root, root / folder, tracked, oid)
    for rel, rec in lock.generated.items():
        _check(report, root / rel, rel, None, rec, fast)
    return report


def _tracked(lock: Lockfile) -> set[str]:
    """Every root-relative path a lockfile entry records (and the lockfile)."""
    tracked: set[str] = {LOCK_NAME, *lock.generated}
    for obj in lock.objects.values():
        folder = str(obj.get("folder") or "")
        for rec in list(obj.get("files") or []) + list(obj.get("generated") or []):
            tracked.add(f"{folder}/{rec.get('path')}" if folder else str(rec.get("path")))
    return tracked


def _incomplete(obj: dict[str, Any], oid: str, folder: str) -> VerifyProblem:
    where = folder or entry_key(obj)
    return VerifyProblem(
        "incomplete",
        where,
        oid,
        f"{obj.get('kind') or 'dataset'} {oid} ({where}) was not completely downloaded "
        f"({obj.get('error') or obj.get('status')}); run the download again",
    )


def _extra(root: Path, base: Path, tracked: set[str], oid: str) -> list[VerifyProblem]:
    """Files under ``base`` that no entry records (parts and sidecars aside)."""
    found = []
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            if name.endswith((FILE_PART_SUFFIX, SIDECAR_SUFFIX)):
                continue
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel not in tracked:
                found.append(
                    VerifyProblem("extra", rel, oid, f"{rel} is not part of data object {oid}")
                )
    return found
