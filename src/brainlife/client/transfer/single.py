"""One download: a data object into a folder, a task path into a folder or a file.

Everything is written into a temporary sibling (``<dest>.bl-partial``) and moved into place only
when complete and verified, so a failed or interrupted download never leaves a folder that looks
finished. With our server's manifest route every file is fetched on its own and checked against its
size and sha256; against brainlife.io (no manifest route) the archive is streamed and extracted
safely. Both are units (``units``: a :class:`FileUnit` per file, a :class:`TarUnit` per archive)
run by the same runner and counted by a :class:`Meter`; the bulk engine (`engine.Engine`) uses
:class:`Downloader` for objects that arrive as a tar, with its own run-wide meter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from brainlife.client import _urls
from brainlife.client._exceptions import (
    ApiError,
    BrainlifeError,
    ChecksumMismatch,
    ConfigError,
    DiskFullError,
    NotFound,
    PermissionDenied,
    ProtocolError,
)
from brainlife.client._http import (
    HttpClient,
    Response,
    content_range,
    error_for_status,
    quote_path,
)
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.layout import inside, safe_name
from brainlife.client.transfer.lockfile import LOCK_NAME
from brainlife.client.transfer.names import (
    FILE_PART_SUFFIX,
    RESERVED_SUFFIXES,
    SIDECAR_SUFFIX,
    journal_path,
    part_path,
    partial_path,
    sidecar_path,
    task_file_path,
)
from brainlife.client.transfer.tarstream import check_archive_start, safe_relpath
from brainlife.client.transfer.units import FileUnit, Meter, TarUnit, run_file, run_files, run_tar
from brainlife.client.transfer.writes import human_size
from brainlife.wire import parse_date

__all__ = ["DownloadResult", "Downloader", "Progress"]

#: progress(bytes_done, bytes_total or None)
Progress = Callable[[int, int | None], None]
_TAR_NAMES = (".tar", ".tar.gz", ".tgz")


@dataclass
class DownloadResult:
    """What one download wrote."""

    id: str
    path: Path
    bytes: int
    files: list[str] = field(default_factory=list)
    #: "manifest" (verified per file), "tar" (archive extracted) or "file" (saved as is)
    method: str = "tar"
    #: body bytes received in this run (None: not counted)
    transferred: int | None = None
    #: bytes kept from an interrupted run and not fetched again
    resumed: int = 0
    #: the server's ETag of what was saved (task files and archives), when it gave one
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "bytes": self.bytes,
            "files": self.files,
            "method": self.method,
            "bytes_transferred": self.transferred,
            "bytes_resumed": self.resumed,
        }


class _NotModified(Exception):
    """The server answered 304 to ``If-None-Match``: the saved copy is current."""


def object_mtime(doc: dict[str, Any] | None) -> float | None:
    """The modification time to give an object's files: its `create_date`, the mtime its tar
    carries too (so our files match what `tar -x` of the official CLI leaves)."""
    value = (doc or {}).get("create_date")
    if not isinstance(value, str):
        return None
    try:
        return parse_date(value).timestamp()
    except ValueError:
        return None


def _prepare(dest: Path, *, is_dir: bool, keep_partial: bool = False) -> Path:
    if is_dir and dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} exists and is not a folder: choose another destination.")
    if not is_dir and dest.is_dir():
        raise ConfigError(f"{dest} is a folder: choose a file name for the download.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder {dest.parent}: {exc.strerror}.") from exc
    partial = partial_path(dest)
    if not keep_partial:
        _remove(partial)
    return partial


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _commit_dir(partial: Path, dest: Path) -> None:
    """Move a finished partial folder into place; an existing folder gets the files merged in,
    each one replaced atomically."""
    if not dest.exists():
        os.rename(partial, dest)
        return
    for dirpath, dirnames, filenames in os.walk(partial):
        rel = Path(dirpath).relative_to(partial)
        names = filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in names:
            target = dest / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(Path(dirpath) / name, target)
    shutil.rmtree(partial, ignore_errors=True)


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove files under ``folder`` that are not in ``keep`` (relative paths), except the parts
    and sidecars of those files."""
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            for suffix in (FILE_PART_SUFFIX, SIDECAR_SUFFIX):
                if rel.endswith(suffix) and rel[: -len(suffix)] in keep:
                    break
            else:
                if rel not in keep:
                    path.unlink()


def _placed(result: DownloadResult, partial: Path, dest: Path) -> DownloadResult:
    """Move a complete extraction into place (the partial folder goes if that fails)."""
    try:
        _commit_dir(partial, dest)
    except BaseException:
        _remove(partial)
        raise
    result.path = dest
    return result


def _check_space(folder: Path, needed: int | None) -> None:
    if not needed:
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise DiskFullError(
            f"Not enough disk space in {folder}: the download needs {human_size(needed)} but only "
            f"{human_size(free)} is free. Free some space or download to another folder.",
            needed=needed,
            free=free,
            hint="directory",
        )


def _part_bytes(unit: FileUnit) -> int:
    """Disk space ``unit``'s partial file from an earlier run holds already: continued or
    discarded, its bytes need no new room."""
    try:
        st = part_path(unit.target).stat()
    except OSError:
        return 0
    held = min(st.st_size, getattr(st, "st_blocks", st.st_size // 512 + 1) * 512)
    return min(held, unit.size) if unit.size is not None else held


def _verified(unit: FileUnit) -> bool:
    """Whether an earlier run left ``unit``'s file complete: its size and sha256 match."""
    target = unit.target
    if not target.is_file() or target.stat().st_size != unit.size:
        return False
    return hash_file(target)[0].hexdigest() == unit.sha256


def _content_length(resp: Response) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _local_name(name: str | None) -> str | None:
    """A server-supplied file name made safe (`safe_name`), None when unusable or one of ours."""
    safe = safe_name(name)
    if safe is None or safe == LOCK_NAME or safe.endswith(RESERVED_SUFFIXES):
        return None
    return safe


def _filename_from(resp: Response) -> str | None:
    """The file name of ``Content-Disposition``, made safe: the server chooses it, so it may be
    ``.bashrc``, ``bl-lock.json``, ``..`` or ``/etc/passwd``."""
    disposition = resp.headers.get("Content-Disposition", "")
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition, re.I)
    if not match:
        return None
    raw = match.group(1).strip()
    return _local_name(unquote(raw) if "'" in disposition else raw)


def _place_named(target: Path, name: str, existing: str) -> Path:
    """Rename the finished hidden ``target`` to ``name`` beside it: never outside its folder,
    never over a folder, and over an existing file only when it holds the same bytes or
    ``existing`` is ``overwrite`` (the download never replaces a file it did not create)."""
    try:
        dest = inside(target.parent, name)
    except ConfigError:
        target.unlink(missing_ok=True)
        raise
    problem, hint = None, None
    if dest.is_dir() and not dest.is_symlink():
        problem, hint = f"{dest} is a folder: choose a file name for the download.", "output"
    elif (dest.exists() or dest.is_symlink()) and existing != "overwrite":
        same = dest.is_file() and not dest.is_symlink()
        same = same and dest.stat().st_size == target.stat().st_size
        if same and hash_file(dest)[0].digest() == hash_file(target)[0].digest():
            target.unlink()
            return dest
        problem = (
            f"{dest} already exists and differs from the download: it is left as it is. Move it "
            "away, or save under another name."
        )
        hint = "existing-overwrite"
    if problem is not None:
        target.unlink(missing_ok=True)
        raise ConfigError(problem, hint=hint)
    os.replace(target, dest)
    return dest


#: the status the single manifest route answers for each reason of a batch's `missing`
_MISSING_STATUS = {"not-found": 404, "forbidden": 403, "not-stored": 409, "removed": 410}


class Downloader:
    """Fetches bytes for a client: ``http`` is its pooled connection, ``token`` its JWT."""

    def __init__(self, http: HttpClient, token: str) -> None:
        self.http = http
        self.token = token

    # -- data objects ---------------------------------------------------------------------
    def manifest(self, dataset_id: str) -> dict[str, Any] | None:
        """Our manifest of a data object, or None when the server has no manifest route."""
        path = _urls.dataset_manifest(dataset_id)
        try:
            doc = self.http.request_json("GET", path, token=self.token)
        except (NotFound, ProtocolError):
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            return None
        return doc

    def manifests(self, ids: Sequence[str]) -> dict[str, dict[str, Any] | BrainlifeError] | None:
        """Our manifests of many data objects in one request (at most the server's limit, 1000):
        each id's manifest, or the error its single manifest request would raise (not found,
        access denied, not stored). None when the server has no batch route (brainlife.io: 404
        or 405); other errors raise. An id the answer leaves out is left out here too."""
        try:
            doc = self.http.request_json(
                "POST",
                _urls.DATASET_MANIFESTS,
                json_body={"ids": list(ids)},
                token=self.token,
            )
        except (NotFound, ProtocolError):
            return None
        except ApiError as exc:
            if exc.status in (405, 501):
                return None
            raise
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            return None
        out: dict[str, dict[str, Any] | BrainlifeError] = {}
        for m in doc["manifests"]:
            if isinstance(m, dict) and isinstance(m.get("files"), list):
                out[str(m.get("_id"))] = m
        for miss in doc.get("missing") or []:
            status = (
                _MISSING_STATUS.get(str(miss.get("reason"))) if isinstance(miss, dict) else None
            )
            if status is not None:
                body = json.dumps({"message": str(miss.get("message") or "")}).encode()
                out[str(miss.get("_id"))] = error_for_status(
                    status, body, "application/json", self.http.base_url
                )
        return out

    def dataset(
        self,
        dataset_id: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        use_manifest: bool = True,
        mtime: float | None = None,
        cancel: threading.Event | None = None,
        meter: Meter | None = None,
        jobs: int = 8,
    ) -> DownloadResult:
        """Download a data object into ``dest``: file by file from our manifest (``jobs`` files
        at a time), else (brainlife.io) as a tar, continuing an interrupted tar download where
        the server allows (`tars`).

        The bytes are counted by ``meter`` (the bulk engine's, for all its objects), else by a
        meter of this object that tells ``progress``."""
        partial = _prepare(dest, is_dir=True, keep_partial=True)
        meter = meter or Meter(progress)
        manifest = self.manifest(dataset_id) if use_manifest else None
        if manifest is None:
            unit = TarUnit(_urls.dataset_download(dataset_id), partial)
            result = self._by_tar(dataset_id, unit, meter, cancel)
            return _placed(result, partial, dest)
        journal_path(partial).unlink(missing_ok=True)  # a tar attempt's: not ours to continue
        try:
            result = self._dataset_by_manifest(dataset_id, manifest, partial, meter, cancel, jobs)
            if mtime is not None:
                for rel in result.files:
                    os.utime(partial / rel, (mtime, mtime))
            _commit_dir(partial, dest)
        except (ChecksumMismatch, NotFound, PermissionDenied, ProtocolError):
            _remove(partial)  # nothing worth continuing
            raise
        except BaseException:
            # Ctrl-C, a dropped connection, a full disk, an expired token: the partial folder
            # stays when it holds bytes (the same command continues it, verifying what is there)
            if not any(p.is_file() for p in partial.rglob("*")):
                _remove(partial)
            raise
        result.path = dest
        return result

    def _dataset_by_manifest(
        self,
        dataset_id: str,
        manifest: dict[str, Any],
        partial: Path,
        meter: Meter,
        cancel: threading.Event | None = None,
        jobs: int = 8,
    ) -> DownloadResult:
        """Each file of the manifest into ``partial`` as a :class:`FileUnit`, ``jobs`` at a time
        (``run_files``): a file an earlier run completed is kept when its size and sha256 still
        match, a part is continued with Range, anything else in the folder is removed before it
        is moved into place."""
        prefix = _urls.dataset_files(dataset_id)
        units = []
        for f in manifest["files"]:
            safe = safe_relpath(str(f["path"]))
            if safe is not None:
                rel = safe.as_posix()
                units.append(
                    FileUnit(
                        prefix + quote_path(rel),
                        partial / rel,
                        int(f["size"]),
                        str(f["sha256"]).lower(),
                    )
                )
        total = sum(u.size or 0 for u in units)
        partial.mkdir(parents=True, exist_ok=True)
        kept = [u for u in units if _verified(u)]
        todo = [u for u in units if u not in kept]
        files = [u.target.relative_to(partial).as_posix() for u in units]
        _prune(partial, set(files))
        kept_bytes = sum(u.size or 0 for u in kept)
        _check_space(partial, total - kept_bytes - sum(_part_bytes(u) for u in todo))
        if meter.total is None:
            meter.total = total
        meter.kept(kept_bytes)
        resumed, transferred = meter.resumed, meter.transferred
        run_files(self.http, self.token, todo, meter, jobs=jobs, cancel=cancel or threading.Event())
        return DownloadResult(
            id=dataset_id,
            path=partial,
            bytes=total,
            files=files,
            method="manifest",
            transferred=meter.transferred - transferred,
            resumed=meter.resumed - resumed,
        )

    def _by_tar(
        self, oid: str, unit: TarUnit, meter: Meter, cancel: threading.Event | None
    ) -> DownloadResult:
        """A :class:`TarUnit` into its folder (``run_tar``), its bytes counted by ``meter``."""
        done = meter.done
        fetched = run_tar(
            self.http, self.token, unit, meter, cancel=cancel, check_space=_check_space
        )
        return DownloadResult(
            id=oid,
            path=unit.folder,
            bytes=meter.done - done,
            files=fetched.files,
            method="tar",
            transferred=fetched.transferred,
            resumed=fetched.resumed,
        )

    # -- task files -----------------------------------------------------------------------
    def task_path(
        self,
        task_id: str,
        path: str,
        *,
        output: Path | None = None,
        directory: Path | None = None,
        extract: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        if_none_match: str | None = None,
        existing: str = "skip",
    ) -> DownloadResult:
        """A task's file or folder: extracted into ``directory`` (``extract``: the folder's
        .tar.gz), else saved as is into ``output`` or ``directory``/<the server's file name>.
        With ``if_none_match`` (the ETag ``output`` was saved with) a server that answers 304
        leaves ``output`` as it is: the result's method is then ``"present"``. A file the server
        names is never put over a different file already there unless ``existing`` is
        ``overwrite``."""
        route = _urls.task_path(task_id, path)
        if not extract:
            return self._task_file(
                task_id, path, route, output, directory, progress, cancel, if_none_match, existing
            )
        dest = directory or Path(os.path.basename(path.rstrip("/")) or task_id)
        partial = _prepare(dest, is_dir=True, keep_partial=True)
        unit = TarUnit(route, partial, "a tar archive of the task folder")
        result = self._by_tar(task_id, unit, Meter(progress), cancel)
        return _placed(result, partial, dest)

    def _task_file(
        self,
        task_id: str,
        path: str,
        route: str,
        output: Path | None,
        directory: Path | None,
        progress: Progress | None,
        cancel: threading.Event | None,
        if_none_match: str | None = None,
        existing: str = "skip",
    ) -> DownloadResult:
        """A task's file, or a folder's .tar.gz, saved as is: through ``fetch_file``, so an
        interrupted download continues with Range/If-Range when the server gave a strong ETag
        (ours does, for files and folders). Without ``output`` the file takes the server's name
        (Content-Disposition), known only from the answer: the bytes go to a hidden name made
        from the task and path first, and are renamed once complete."""
        if output is not None:
            target = output
            _prepare(output, is_dir=False)
        else:
            folder = directory or Path(".")
            key = hashlib.sha256(f"{task_id}/{path}".encode()).hexdigest()[:16]
            target = task_file_path(folder, key)
        fallback = _local_name(os.path.basename(path.rstrip("/"))) or _local_name(task_id) or "task"
        state: dict[str, Any] = {"name": None, "etag": None}
        meter = Meter(progress)

        def on_response(resp: Response) -> None:
            if resp.status == 304:
                raise _NotModified
            state["name"] = _filename_from(resp)
            state["etag"] = resp.headers.get("ETag") or None
            length = _content_length(resp)
            if resp.status == 206:
                first, total = content_range(resp.headers.get("Content-Range", ""))
                meter.at(first or 0, total)
            else:
                _check_space(target.parent, length)
                meter.at(0, length)

        def check_head(head: bytes) -> None:
            name = output.name if output is not None else (state["name"] or fallback)
            if name.endswith(_TAR_NAMES):
                check_archive_start(head, what=f"an archive for {name}")

        conditional = output is not None and if_none_match and output.is_file()
        unit = FileUnit(route, target, etag=if_none_match if conditional else None)
        try:
            res = run_file(
                self.http,
                self.token,
                unit,
                meter,
                cancel=cancel,
                on_response=on_response,
                check_head=check_head,
            )
        except _NotModified:
            assert output is not None
            for leftover in (part_path(output), sidecar_path(output)):
                leftover.unlink(missing_ok=True)
            size = output.stat().st_size
            meter.at(size, size)
            return DownloadResult(
                id=task_id,
                path=output,
                bytes=size,
                files=[output.name],
                method="present",
                transferred=0,
                etag=if_none_match,
            )
        dest = target
        if output is None:
            dest = _place_named(target, state["name"] or fallback, existing)
        return DownloadResult(
            id=task_id,
            path=dest,
            bytes=res.size,
            files=[dest.name],
            method="file",
            transferred=res.transferred,
            resumed=res.resumed,
            etag=state["etag"],
        )
