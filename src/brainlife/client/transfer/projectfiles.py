"""A project's plain files (brainlife's "S3 project files"): list a folder following every
continuation token (the official CLI stops at the first 1,000 entries), download a file or a
folder tree file by file through `files.fetch_file` (resumable ``.part`` files, each checked
against the listing's size and sha256, a file already present and identical left alone), and
put or remove a file (a streamed ``PUT`` carrying the sha256 the server checks).

Server-given names become local paths only through `relative_path_problem` and `inside`: a key
such as ``../x`` is refused, never written outside the target folder.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client import _urls
from brainlife.client._exceptions import ConfigError, NotFound, ProtocolError
from brainlife.client._http import HttpClient, error_for_status
from brainlife.client.transfer.files import fetch_file, hash_file
from brainlife.client.transfer.layout import inside
from brainlife.wire.paths import relative_path_problem
from brainlife.wire.projectfiles import MAX_PAGE, SHA256_HEADER, project_path_problem

_CHUNK = 1024 * 1024


def list_folder(http: HttpClient, token: str, project_id: str, prefix: str = "") -> dict[str, Any]:
    """Every entry of one folder: ``{"prefix", "folders", "objects"}``, all pages joined."""
    folders: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": MAX_PAGE}
    route = _urls.project_files(project_id, prefix)
    seen: set[str] = set()
    while True:
        doc = http.request_json("GET", route, params=params, token=token)
        if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
            raise ProtocolError(f"The server's listing of {route} is not a file listing.")
        folders += doc.get("folders") or []
        objects += doc["objects"]
        token_next = doc.get("nextContinuationToken") or ""
        if not doc.get("isTruncated") or not token_next:
            break
        if token_next in seen:  # a server that loops would never end the listing
            raise ProtocolError(f"The server's listing of {route} repeats itself.")
        seen.add(token_next)
        params = {"limit": MAX_PAGE, "continuationToken": token_next}
    return {"prefix": doc.get("prefix", ""), "folders": folders, "objects": objects}


def walk(
    http: HttpClient, token: str, project_id: str, prefix: str = ""
) -> Iterator[dict[str, Any]]:
    """Every file under ``prefix`` (its listing entries), folder by folder."""
    pending = [prefix.strip("/")]
    while pending:
        folder = pending.pop(0)
        doc = list_folder(http, token, project_id, folder)
        yield from doc["objects"]
        pending += [str(f.get("Prefix") or "").strip("/") for f in doc["folders"]]


@dataclass
class FilesResult:
    """What a download of project files did."""

    directory: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "fetched": len(self.fetched),
            "present": len(self.present),
            "bytes": self.bytes,
        }


def _entry(doc: dict[str, Any]) -> tuple[str, int, str]:
    key, size, sha = doc.get("Key"), doc.get("Size"), str(doc.get("ETag") or "").strip('"')
    if not isinstance(key, str) or not isinstance(size, int) or len(sha) != 64:
        raise ProtocolError(f"The server listed a file without a path, size or sha256: {doc!r}")
    return key, size, sha


def download(
    http: HttpClient,
    token: str,
    project_id: str,
    path: str,
    directory: Path,
    *,
    jobs: int = 4,
    on_file: Callable[[str], None] | None = None,
) -> FilesResult:
    """``path`` (a file; a folder when it ends with ``/``; the whole tree when empty) into
    ``directory``: a file as ``directory/<its name>``, a folder's files at their paths relative
    to it."""
    clean = path.strip("/")
    wanted: list[tuple[str, int, str, str]] = []  # key, size, sha256, local relative path
    if path and not path.endswith("/"):
        parent = clean.rsplit("/", 1)[0] if "/" in clean else ""
        listing = list_folder(http, token, project_id, parent)
        match = [o for o in listing["objects"] if o.get("Key") == clean]
        if not match:
            raise NotFound(f"There is no file {clean!r} in this project's files.")
        key, size, sha = _entry(match[0])
        wanted.append((key, size, sha, clean.rsplit("/", 1)[-1]))
    else:
        base = clean + "/" if clean else ""
        for doc in walk(http, token, project_id, clean):
            key, size, sha = _entry(doc)
            if not key.startswith(base):
                raise ProtocolError(f"The server listed {key!r} under {base!r}.")
            wanted.append((key, size, sha, key[len(base) :]))
    result = FilesResult(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def one(item: tuple[str, int, str, str]) -> None:
        key, size, sha, rel = item
        problem = relative_path_problem(rel)
        if problem is not None:
            raise ConfigError(f"Refusing the server's file {key!r}: {problem}.")
        target = inside(directory, rel)
        if target.is_file() and target.stat().st_size == size:
            digest, _ = hash_file(target)
            if digest.hexdigest() == sha:
                with lock:
                    result.present.append(key)
                return
        fetch_file(
            http, token, _urls.project_file_download(project_id, key), target,
            size=size, sha256=sha,
        )  # fmt: skip
        with lock:
            result.fetched.append(key)
            result.bytes += size
        if on_file is not None:
            on_file(key)

    if len(wanted) == 1:
        one(wanted[0])
    else:
        http.ensure_pool_size(jobs)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for done in [pool.submit(one, item) for item in wanted]:
                done.result()
    return result


def put(http: HttpClient, token: str, project_id: str, local: Path, remote: str) -> dict[str, Any]:
    """Store the file ``local`` as ``remote``; the server keeps it only if the bytes it got
    have the sha256 computed here first."""
    problem = project_path_problem(remote)
    if problem is not None:
        raise ConfigError(f"Cannot put {local} there: {problem}.")
    if not local.is_file():
        raise ConfigError(f"{local} is not a file.")
    digest, size = hash_file(local)

    def chunks() -> Iterator[bytes]:
        with open(local, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    resp = http.send_once(
        "PUT",
        _urls.project_file(project_id, remote),
        body=chunks(),
        token=token,
        headers={
            SHA256_HEADER: digest.hexdigest(),
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        },
    )
    if resp.status >= 400:
        raise error_for_status(
            resp.status, resp.data, resp.headers.get("Content-Type", ""), http.base_url
        )
    doc: dict[str, Any] = json.loads(resp.data)
    return doc


def remove(http: HttpClient, token: str, project_id: str, remote: str) -> None:
    http.request_json("DELETE", _urls.project_file(project_id, remote), token=token)


__all__ = ["FilesResult", "download", "list_folder", "put", "remove", "walk"]
