"""A task's path saved as is (the .tar.gz of a folder, or a file), recorded for reruns.

`bl task download --path P` without ``-x`` saves each task's archive as ``<name>.tar.gz``. Each is
fetched with ``fetch_file`` (resumed with Range/If-Range when the server gave a strong ETag) and
recorded in ``bl-lock.json`` beside it as an object of kind ``task-archive``: the task path, the
file's size, sha256 and mtime, and the server's ETag. A rerun asks again with ``If-None-Match``
only for an archive that is still as recorded (same size and mtime): a 304 keeps it, anything else
is fetched anew. ``bl data verify`` checks these files like any other (no ``extra`` check: the
archives share their folder). Against brainlife.io (no ETag) every rerun fetches everything again,
as the official CLI does.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from brainlife.client._exceptions import ConfigError
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.lockfile import LOCK_NAME, Lockfile
from brainlife.client.transfer.single import Downloader, DownloadResult, Progress

__all__ = ["TASK_ARCHIVE", "download_task_archive"]

TASK_ARCHIVE = "task-archive"


def _current_etag(lock: Lockfile, task_id: str, rel: str, output: Path) -> str | None:
    """The recorded ETag when ``output`` is still the file the lockfile records."""
    rec = lock.at(rel)
    if (
        not rec
        or rec.get("id") != task_id
        or rec.get("kind") != TASK_ARCHIVE
        or rec.get("status") != "complete"
    ):
        return None
    files = rec.get("files") or []
    if len(files) != 1 or files[0].get("path") != rel:
        return None
    try:
        st = output.stat()
    except OSError:
        return None
    if st.st_size != files[0].get("size") or st.st_mtime_ns != files[0].get("mtime_ns"):
        return None
    etag = rec.get("etag")
    return str(etag) if etag else None


def download_task_archive(
    downloader: Downloader,
    task_id: str,
    path: str,
    output: Path,
    *,
    server: str = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    existing: str = "skip",
) -> DownloadResult:
    """Save ``path`` of task ``task_id`` as ``output`` (see the module's docstring); a failure is
    recorded in the lockfile (status ``failed``) and raised. A file at ``output`` that no earlier
    run recorded is not replaced (ConfigError) unless ``existing`` is ``overwrite``."""
    root = output.parent
    lock_path = root / LOCK_NAME
    rel = output.name
    if rel == LOCK_NAME:
        raise ConfigError(f"{output} is the lockfile: choose another name for the download.")
    lock = Lockfile.open(lock_path)
    ours = (lock.at(rel) or {}).get("kind") == TASK_ARCHIVE
    if (output.exists() or output.is_symlink()) and not ours and existing != "overwrite":
        raise ConfigError(
            f"{output} already exists and was not written by a download into {root}: it is "
            "left as it is. Move it away.",
            hint="existing-overwrite",
        )
    etag = _current_etag(lock, task_id, rel, output)
    entry: dict[str, Any] = {
        "id": task_id,
        "kind": TASK_ARCHIVE,
        "folder": "",
        "path": rel,
        "task_path": path,
        "generated": [],
    }
    try:
        result = downloader.task_path(
            task_id,
            path,
            output=output,
            progress=progress,
            cancel=cancel,
            if_none_match=etag,
        )
    except Exception as exc:
        _record(lock_path, server, {**entry, "status": "failed", "files": [], "error": str(exc)})
        raise
    if result.method == "present":
        return result
    st = output.stat()
    digest, _ = hash_file(output)
    _record(
        lock_path,
        server,
        {
            **entry,
            "status": "complete",
            "files": [
                {
                    "path": rel,
                    "size": st.st_size,
                    "sha256": digest.hexdigest(),
                    "mtime_ns": st.st_mtime_ns,
                }
            ],
            "etag": result.etag,
        },
    )
    return result


def _record(lock_path: Path, server: str, entry: dict[str, Any]) -> None:
    lock = Lockfile.open(lock_path)  # read again: other runs may have written meanwhile
    lock.server = lock.server or server
    lock.put(entry)
    os.makedirs(lock_path.parent, exist_ok=True)
    lock.save()
