"""The names a download gives what is not finished yet, in one place (docs/downloads.md lists them).

- ``<dest>.bl-partial/``: a folder being assembled beside its destination (one data object or
  an extracted task folder), moved into place once complete; ``<dest>.bl-partial.json`` beside it
  is the journal of a tar being extracted into it (what a rerun continues).
- ``<file>.bl-part``: the bytes of one file so far; ``<file>.bl-part.json`` says what they are a
  prefix of (size, sha256, ETag). Renamed to ``<file>`` once verified.
- ``.bl-task-<hash>``: a task file whose name the server gives in its answer (so unknown until
  then); its bytes are ``.bl-task-<hash>.bl-part`` like any file's.
- ``.<name>.<pid>.bl-tmp``: a small file (lockfile, sidecar, ``_info.json``) written whole and
  renamed over ``<name>``: never seen half-written, one per process.

Every name ends in a suffix a download never takes (:data:`RESERVED_SUFFIXES`). Older versions
wrote ``<file>.bl-part.json.tmp``, ``.<name>.bl-tmp`` and ``.bl-lock.json.<pid>.tmp``: they are
removed when the file they were meant for is written again (:func:`atomic_write`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "FILE_PART_SUFFIX",
    "FOLDER_PART_SUFFIX",
    "RESERVED_SUFFIXES",
    "SIDECAR_SUFFIX",
    "TMP_SUFFIX",
    "atomic_write",
    "journal_path",
    "part_path",
    "partial_path",
    "sidecar_path",
    "task_file_path",
]

#: a folder being assembled (``brainlife.client.PARTIAL_SUFFIX``)
FOLDER_PART_SUFFIX = ".bl-partial"
#: the bytes of one file so far
FILE_PART_SUFFIX = ".bl-part"
SIDECAR_SUFFIX = ".bl-part.json"
TMP_SUFFIX = ".bl-tmp"
#: what no downloaded file may be called (a server-given name ending so is refused)
RESERVED_SUFFIXES = (FILE_PART_SUFFIX, SIDECAR_SUFFIX, FOLDER_PART_SUFFIX, TMP_SUFFIX, ".tmp")


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + FOLDER_PART_SUFFIX)


def journal_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def part_path(target: Path) -> Path:
    return target.with_name(target.name + FILE_PART_SUFFIX)


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + SIDECAR_SUFFIX)


def task_file_path(folder: Path, key: str) -> Path:
    return folder / f".bl-task-{key}"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def _legacy_tmp_paths(path: Path) -> list[Path]:
    """What older versions left for ``path`` when killed mid-write: never anyone's live file
    (no version writes these names any more), so they are removed."""
    old = [path.with_name(path.name + ".tmp"), path.with_name(f".{path.name}{TMP_SUFFIX}")]
    with contextlib.suppress(OSError):
        old += path.parent.glob(f".{path.name}.*[0-9].tmp")
    return old


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` whole through its temporary name (removed on failure), so a reader never
    sees it half-written; leftovers of the older names go too."""
    tmp = _tmp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for old in _legacy_tmp_paths(path):
        with contextlib.suppress(OSError):
            old.unlink(missing_ok=True)
