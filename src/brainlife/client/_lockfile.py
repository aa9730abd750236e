"""``bl-lock.json``: what a bulk download holds, so it can be verified offline and fetched again.

```json
{"version": 1, "tool": "brainlife-python 0.1.0", "server": "https://brainlife.io",
 "created": "...", "updated": "...", "query": {...}, "layout": "{id}",
 "objects": [{"id": "...", "kind": "dataset", "folder": "5a05…", "status": "complete",
              "files": [{"path": "t1.nii.gz", "size": 123, "sha256": "…", "mtime_ns": 1}],
              "generated": [{"path": "_info.json", "size": 10, "sha256": "…"}]}],
 "generated": [{"path": "proj-…/dataset_description.json", "size": 1, "sha256": "…"}]}
```

Written atomically (temporary file + rename) at the download root, and rewritten as objects
complete. ``bl data verify`` checks a tree against it; ``bl data download --lock`` fetches it again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brainlife import __version__
from brainlife.client._exceptions import ConfigError
from brainlife.client._transfer import PART_SUFFIX, SIDECAR_SUFFIX, hash_file

__all__ = [
    "LOCK_NAME",
    "Lockfile",
    "VerifyProblem",
    "VerifyReport",
    "verify_tree",
]

LOCK_NAME = "bl-lock.json"
VERSION = 1


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Lockfile:
    path: Path
    server: str = ""
    query: dict[str, Any] = field(default_factory=dict)
    layout: str = ""
    created: str = field(default_factory=_now)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        for obj in doc["objects"]:
            if isinstance(obj, dict) and obj.get("id"):
                lock.objects[str(obj["id"])] = obj
        for gen in doc.get("generated") or []:
            if isinstance(gen, dict) and gen.get("path"):
                lock.generated[str(gen["path"])] = gen
        return lock

    @classmethod
    def open(cls, path: Path) -> Lockfile:
        """The lockfile at ``path``, or a new empty one."""
        return cls.load(path) if path.exists() else cls(path=path)

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

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def file_record(self, oid: str, rel: str) -> dict[str, Any] | None:
        obj = self.objects.get(oid)
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
    """Check every file the lockfile records (size and sha256; with ``fast``, size and mtime
    when the mtime is unchanged), and report files in object folders it does not know."""
    lock = lock or Lockfile.load(root / LOCK_NAME)
    report = VerifyReport(root=root)
    for oid, obj in lock.objects.items():
        report.objects += 1
        folder = str(obj.get("folder") or "")
        base = root / folder
        if obj.get("status") != "complete":
            report.problems.append(
                VerifyProblem(
                    "incomplete",
                    folder,
                    oid,
                    f"data object {oid} ({folder}) was not completely downloaded "
                    f"({obj.get('error') or obj.get('status')}); run the download again",
                )
            )
            continue
        known: set[str] = set()
        for rec in list(obj.get("files") or []) + list(obj.get("generated") or []):
            rel = str(rec.get("path"))
            known.add(rel)
            _check(report, base / rel, f"{folder}/{rel}", oid, rec, fast)
        if base.is_dir() and obj.get("kind") != "task-archive":  # archives share a folder
            for dirpath, _dirs, names in os.walk(base):
                for name in names:
                    if name.endswith((PART_SUFFIX, SIDECAR_SUFFIX)):
                        continue
                    rel = (Path(dirpath) / name).relative_to(base).as_posix()
                    if rel not in known:
                        report.problems.append(
                            VerifyProblem(
                                "extra",
                                f"{folder}/{rel}",
                                oid,
                                f"{folder}/{rel} is not part of data object {oid}",
                            )
                        )
    for rel, rec in lock.generated.items():
        _check(report, root / rel, rel, None, rec, fast)
    return report
