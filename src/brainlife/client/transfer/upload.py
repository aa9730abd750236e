"""Uploads: one data object's files to the server's resumable upload API (*ours*,
``brainlife.wire.uploads``), planned and checked before a byte moves, sent in constant memory,
resumed from what the server holds.

- :func:`match_files` maps the user's files (``--t1 t1.nii.gz``, or a folder holding the
  datatype's ``filename``/``dirname`` entries) onto the datatype's file list, and refuses
  (:class:`UploadRefused`) unknown ids, missing required files, unsafe names, a folder given for
  a file and the reverse.
- :func:`hash_sources` computes each file's sha256 (the server checks it, and skips content it
  can show the caller already has); digests are kept in the state file with each file's size,
  mtime and inode, so a resumed run does not read the files again. A large file
  (``HASH_WHILE_SENDING`` bytes or more) is left unhashed when planned: :func:`run_upload`
  declares it without a digest, hashes it in a thread while its first bytes go in growing
  pieces, declares the digest as soon as it is known (the server may hold that content already:
  the rest is not sent) and sends the rest: hashing overlaps sending instead of coming before
  it (bench/RESULTS.md, "Uploads").
- :func:`run_upload` creates (or resumes) the session, sends every file the server does not hold
  as one ``PUT`` from where the server's bytes end, and finalizes. A cut connection or a server
  restart is retried under the client's :class:`RetryPolicy` and run-wide give-up clock, each
  time from what ``GET /upload/<id>`` says the server holds; bytes go through the one
  :class:`Meter`.

**The state file** ``~/.config/<BLHOST>/uploads/<key>.json`` (next to the token; ``key`` is a
hash of the server, project, datatype, metadata and every file's path, size and mtime) holds the
session id and the digests. A rerun of the same command after Ctrl-C, kill -9, a network drop or
a server restart finds it and resumes; it is removed once the object exists. Changing a file
changes the key: the old session is left to expire on the server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client import _urls
from brainlife.client._exceptions import (
    ApiError,
    BrainlifeError,
    Cancelled,
    ServerUnavailable,
    SourceChanged,
    UploadRefused,
)
from brainlife.client._http import RETRY_STATUSES, HttpClient, error_for_status
from brainlife.client.transfer.files import hash_file
from brainlife.client.transfer.names import atomic_write
from brainlife.client.transfer.units import Meter
from brainlife.wire.paths import relative_path_problem
from brainlife.wire.uploads import UPLOAD_INLINE_MAX

__all__ = [
    "UploadPlan",
    "UploadResult",
    "UploadSource",
    "hash_sources",
    "match_files",
    "run_upload",
]

Doc = dict[str, Any]
#: bytes read from a file and handed to the socket at a time
SEND_CHUNK = 1024 * 1024
#: files at least this large are hashed while they are sent rather than before (module docstring)
HASH_WHILE_SENDING = 64 * 1024 * 1024
#: the first piece of a file sent while it is hashed; each next one is twice as large, up to
#: `LAST_PIECE` (every piece is one `PUT`; the server keeps its running sha256 between them)
FIRST_PIECE = 16 * 1024 * 1024
LAST_PIECE = 256 * 1024 * 1024


@dataclass
class UploadSource:
    """One local file and the path it gets inside the data object."""

    path: Path
    name: str
    file_id: str | None
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None = None

    def stat_key(self) -> list[int]:
        return [self.size, self.mtime_ns, self.inode]


@dataclass
class UploadPlan:
    """A data object to upload: where, as what, and its files (in the datatype's order)."""

    project: str
    datatype: str
    datatype_name: str
    files: list[UploadSource]
    meta: Doc = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    datatype_tags: list[str] = field(default_factory=list)
    desc: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def key(self, base_url: str) -> str:
        """Names the state file: the same upload (server, object, files as they are) → the
        same key."""
        doc = {
            "server": base_url,
            "project": self.project,
            "datatype": self.datatype,
            "meta": self.meta,
            "tags": self.tags,
            "datatype_tags": self.datatype_tags,
            "desc": self.desc,
            "files": [[str(f.path), f.name, f.file_id, *f.stat_key()] for f in self.files],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]

    def request(self) -> Doc:
        """The ``POST /upload`` body (``wire.UploadRequest``)."""
        files = []
        for f in self.files:
            entry: Doc = {"name": f.name, "size": f.size}
            if f.sha256 is not None:  # else declared while it is sent (`HASH_WHILE_SENDING`)
                entry["sha256"] = f.sha256
            if f.file_id is not None:
                entry["id"] = f.file_id
            files.append(entry)
        return {
            "project": self.project,
            "datatype": self.datatype,
            "desc": self.desc,
            "meta": self.meta,
            "tags": self.tags,
            "datatype_tags": self.datatype_tags,
            "files": files,
        }


@dataclass
class UploadResult:
    """What an upload did: the new object's document, and its bytes: ``size`` in all,
    ``sent`` (what the network carried, resends included), ``resumed`` (kept on the server from
    an interrupted run), ``present`` (content the server had already: not sent at all)."""

    dataset: Doc
    size: int
    sent: int
    resumed: int
    present: int

    def to_json(self) -> Doc:
        return {
            "dataset": self.dataset,
            "size": self.size,
            "sent": self.sent,
            "resumed": self.resumed,
            "present": self.present,
        }


# --- planning ----------------------------------------------------------------------------------


def _source(path: Path, name: str, file_id: str | None) -> UploadSource:
    problem = relative_path_problem(name)
    if problem:
        raise UploadRefused(f"Cannot upload {path}: {problem}.")
    st = path.stat()
    return UploadSource(path, name, file_id, st.st_size, st.st_mtime_ns, st.st_ino)


def _folder_files(folder: Path, prefix: str, file_id: str | None) -> list[UploadSource]:
    """Every regular file under ``folder`` (sorted), named ``prefix/<relative path>``; a
    symbolic link or a special file is refused (its target could be anything)."""
    out: list[UploadSource] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for entry in sorted(names) + [d for d in dirs if (Path(root) / d).is_symlink()]:
            path = Path(root) / entry
            if path.is_symlink() or not path.is_file():
                raise UploadRefused(
                    f"Cannot upload {path}: only regular files are uploaded (it is a symbolic "
                    "link or a special file); copy its target in instead."
                )
            rel = path.relative_to(folder).as_posix()
            out.append(_source(path, f"{prefix}/{rel}" if prefix else rel, file_id))
    return out


def _describe(spec: Mapping[str, Any]) -> str:
    name = spec.get("filename") or f"{spec.get('dirname')}/"
    required = "required" if spec.get("required") else "optional"
    desc = f": {spec['desc']}" if spec.get("desc") else ""
    return f"--{spec.get('id')} {name} ({required}{desc})"


def _undeclared_files(name: Any, given: Mapping[str, Any], base: Path | None) -> list[UploadSource]:
    """A datatype without a file list: the folder's files as they are."""
    if given:
        raise UploadRefused(f"Datatype {name} declares no file ids; upload a folder instead.")
    if base is None or not base.is_dir():
        raise UploadRefused(f"Datatype {name} declares no files: give a folder to upload.")
    return _folder_files(base, "", None)


def _found_in(base: Path | None, target: str) -> Path | None:
    """``base/target`` if it exists (where the official CLI looks for a file not given)."""
    return base / target if base is not None and (base / target).exists() else None


def _spec_sources(sid: str, spec: Mapping[str, Any], path: Path) -> list[UploadSource]:
    """The files the datatype's file ``sid`` takes from ``path``: the file its ``filename``
    names, or the files of the folder its ``dirname`` names."""
    if not path.exists():
        raise UploadRefused(f"--{sid} {path}: no such file or folder.")
    if path.is_symlink() and not path.resolve().exists():
        raise UploadRefused(f"--{sid} {path}: a broken symbolic link.")
    if spec.get("filename"):
        if not path.is_file():
            raise UploadRefused(f"--{sid} {path} must be a file ({spec['filename']}).")
        return [_source(path, str(spec["filename"]), sid)]
    if not path.is_dir():
        raise UploadRefused(f"--{sid} {path} must be a folder ({spec['dirname']}/).")
    found = _folder_files(path, str(spec["dirname"]).strip("/"), sid)
    if not found and spec.get("required"):
        raise UploadRefused(f"--{sid} {path} is an empty folder.")
    return found


def match_files(
    datatype: Mapping[str, Any],
    given: Mapping[str, str | os.PathLike[str]],
    folder: str | os.PathLike[str] | None = None,
) -> list[UploadSource]:
    """The files of one data object: ``given`` maps datatype file ids to local paths; ids not
    given are looked for in ``folder`` under their ``filename``/``dirname`` (as the official
    CLI looks in the current folder). Refuses (:class:`UploadRefused`) what the server would."""
    specs = [s for s in datatype.get("files") or [] if isinstance(s, dict) and s.get("id")]
    name = datatype.get("name") or datatype.get("_id")
    listing = "\n  ".join(_describe(s) for s in specs)
    by_id = {str(s["id"]): s for s in specs}
    unknown = [i for i in given if i not in by_id]
    if unknown:
        raise UploadRefused(
            f"Unknown file id --{unknown[0]} for datatype {name}; its files are:\n  {listing}"
        )
    sources: list[UploadSource] = []
    base = Path(folder) if folder is not None else None
    if not specs:
        return _undeclared_files(name, given, base)
    for sid, spec in by_id.items():
        target = spec.get("filename") or spec.get("dirname")
        path = Path(given[sid]) if sid in given else _found_in(base, str(target))
        if path is None:
            if spec.get("required"):
                where = f" and {base} has no {target}" if base is not None else ""
                raise UploadRefused(
                    f"Datatype {name} needs --{sid} ({target}); it was not given{where}. "
                    f"Its files are:\n  {listing}"
                )
            continue
        sources.extend(_spec_sources(sid, spec, path))
    if not sources:
        raise UploadRefused(f"Nothing to upload for datatype {name}: no file was given or found.")
    return sources


# --- state and digests ----------------------------------------------------------------------------


def state_dir(token_path: Path) -> Path:
    return token_path.parent / "uploads"


def _read_state(path: Path) -> Doc:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_state(path: Path, doc: Doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(doc).encode())


def hash_sources(
    sources: Sequence[UploadSource],
    state: Path | None = None,
    on_bytes: Any = None,
    *,
    defer_from: int | None = None,
) -> None:
    """Fill in each file's sha256, reusing a digest the state file holds for the same size,
    mtime and inode; ``on_bytes(n)`` hears the bytes read. Files of ``defer_from`` bytes or more
    without a known digest are left for :func:`run_upload` to hash while it sends them."""
    known = (_read_state(state) if state else {}).get("digests") or {}
    for f in sources:
        cached = known.get(str(f.path))
        if (
            isinstance(cached, list)
            and cached[:3] == f.stat_key()
            and len(cached) == 4
            and isinstance(cached[3], str)
        ):
            f.sha256 = cached[3]
            continue
        if defer_from is not None and f.size >= defer_from:
            continue
        digest, n = hash_file(f.path)
        if n != f.size:
            raise SourceChanged(f"{f.path} changed while it was read ({f.size} → {n} bytes).")
        f.sha256 = digest.hexdigest()
        if on_bytes is not None:
            on_bytes(n)


def _unchanged(f: UploadSource) -> None:
    try:
        st = f.path.stat()
    except OSError as exc:
        raise SourceChanged(f"{f.path} can no longer be read ({exc}).") from None
    if [st.st_size, st.st_mtime_ns, st.st_ino] != f.stat_key():
        raise SourceChanged(
            f"{f.path} changed while it was being uploaded (size or modification time); "
            "run the upload again to send its new content."
        )


# --- sending -----------------------------------------------------------------------------------


@dataclass
class _Sender:
    http: HttpClient
    token: str
    meter: Meter
    cancel: threading.Event | None

    def session(self, upload_id: str) -> Doc:
        """``GET /upload/<id>``, waited for while the give-up clock allows (a restarting server)."""
        return self._idempotent("GET", _urls.upload(upload_id))

    def create(self, body: Doc) -> Doc:
        """``POST /upload`` of a body with its ``id`` (so idempotent: sent again as a GET is)."""
        return self._idempotent("POST", _urls.UPLOADS, body)

    def _idempotent(self, method: str, url: str, body: Doc | None = None) -> Doc:
        """One idempotent JSON request, sent again after each pause of the retry policy while
        the server is unreachable and the give-up clock allows."""
        failures = 0
        while True:
            try:
                doc: Doc = self.http.request_json(method, url, json_body=body, token=self.token)
                self.http.liveness.alive()
                return doc
            except ServerUnavailable:
                failures += 1
                self.http.liveness.wait(
                    self.http.policy.cut_pause(failures), "server unreachable", self.cancel
                )

    def _chunks(
        self, f: UploadSource, start: int, end: int, sent: list[int]
    ) -> Iterator[memoryview]:
        """The file's bytes ``[start, end)``, a megabyte at a time (counted in ``sent[0]`` and
        the meter)."""
        buf = bytearray(SEND_CHUNK)
        view = memoryview(buf)
        with open(f.path, "rb", buffering=0) as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                if self.cancel is not None and self.cancel.is_set():
                    raise Cancelled("Interrupted.")
                n = fh.readinto(view[: min(SEND_CHUNK, left)])
                if not n:
                    raise SourceChanged(f"{f.path} became shorter while it was being uploaded.")
                left -= n
                sent[0] += n
                self.meter.received(n)
                yield view[:n]  # sent before the next read refills the buffer: no copy

    def send(
        self,
        upload_id: str,
        index: int,
        f: UploadSource,
        received: int,
        *,
        end: int | None = None,
        kept: bool = True,
    ) -> Doc | None:
        """Send file ``index`` from byte ``received`` until the server has all of it (or its
        first ``end`` bytes); the session as the last answer says it (None if the server stored
        it through another path). ``kept``: count ``received`` as kept from an earlier run."""
        failures = 0
        stop = f.size if end is None else end
        if kept:
            self.meter.kept(received)
        while True:
            _unchanged(f)
            self.http.liveness.check()
            counted = received
            headers = {
                "Content-Range": f"bytes {received}-{stop - 1}/{f.size}",
                "Content-Length": str(stop - received),
                "Content-Type": "application/octet-stream",
            }
            sent = [0]
            reason = ""
            try:
                resp = self.http.send_once(
                    "PUT",
                    _urls.upload_file(upload_id, index),
                    body=self._chunks(f, received, stop, sent),
                    token=self.token,
                    headers=headers,
                )
            except ServerUnavailable:
                reason = "connection lost"
            else:
                self.http.liveness.alive()
                if resp.status == 200:
                    doc: Doc = json.loads(resp.data)
                    _unchanged(f)
                    state = doc["files"][index]
                    if state["state"] == "stored":
                        return doc
                    self.meter.received(int(state["received"]) - counted - sent[0])
                    received = int(state["received"])
                    if received >= stop:
                        return doc
                    continue
                error = error_for_status(
                    resp.status, resp.data, resp.headers.get("Content-Type", ""), self.http.base_url
                )
                if resp.status == 400 and "sha256" in error.server_message:
                    raise SourceChanged(
                        f"{f.path} changed while it was being uploaded (the server received "
                        "other bytes than were hashed); run the upload again."
                    )
                if resp.status not in (*RETRY_STATUSES, 409):
                    raise error
                reason = f"server busy (HTTP {resp.status})"
            failures += 1
            if failures > self.http.policy.attempts * 4:
                raise ServerUnavailable(f"Uploading {f.path} keeps failing ({reason}).")
            self.http.liveness.wait(self.http.policy.cut_pause(failures), reason, self.cancel)
            state = self.session(upload_id)["files"][index]
            now = int(state["received"])
            self.meter.received(now - counted - sent[0])  # bytes the server did not keep
            if state["state"] == "stored":
                return None
            received = now
            if received >= stop:
                return self.session(upload_id)

    def declare(self, upload_id: str, index: int, sha256: str) -> Doc:
        """``PUT /upload/<id>/file/<n>/sha256`` (idempotent: retried like ``session``)."""
        return self._idempotent(
            "PUT", _urls.upload_file_sha256(upload_id, index), {"sha256": sha256}
        )

    def send_hashing(
        self, upload_id: str, index: int, f: UploadSource, received: int, on_digest: Any
    ) -> tuple[Doc | None, int]:
        """Send a file the server has no digest of: hash it in a thread while its bytes go in
        growing pieces (never the last byte: the server needs the digest first), declare the
        digest once known (``on_digest`` hears it), then send the rest unless the server holds
        that content already. (the session, bytes found present on the server)."""
        hashing = _Hashing(f, self.cancel)
        hashing.start()
        piece = FIRST_PIECE
        self.meter.kept(received)
        try:
            while not hashing.finished.is_set() and received + piece < f.size:
                doc = self.send(upload_id, index, f, received, end=received + piece, kept=False)
                if doc is None:
                    return None, 0
                if doc["files"][index]["state"] == "stored":
                    return doc, 0
                received = int(doc["files"][index]["received"])
                piece = min(2 * piece, LAST_PIECE)
            digest = hashing.result()
        finally:
            hashing.stop()
        f.sha256 = digest
        on_digest()
        doc = self.declare(upload_id, index, digest)
        state = doc["files"][index]
        if state["state"] == "stored":
            self.meter.present(f.size - received)
            return doc, f.size - received
        return self.send(upload_id, index, f, int(state["received"]), kept=False), 0


class _Hashing(threading.Thread):
    """The sha256 of a file, computed in a thread (hashlib lets go of the GIL on large buffers,
    so it runs beside the sending thread); a size other than the planned one is a change."""

    def __init__(self, f: UploadSource, cancel: threading.Event | None) -> None:
        super().__init__(name=f"sha256 {f.name}", daemon=True)
        self.source = f
        self.cancel = cancel
        self.finished = threading.Event()
        self._stop_now = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            digest = hashlib.sha256()
            done = 0
            view = memoryview(bytearray(SEND_CHUNK))
            with open(self.source.path, "rb", buffering=0) as fh:
                while not self._stop_now.is_set():
                    n = fh.readinto(view)
                    if not n:
                        break
                    digest.update(view[:n])
                    done += n
            if done != self.source.size and not self._stop_now.is_set():
                raise SourceChanged(
                    f"{self.source.path} changed while it was read ({self.source.size} → "
                    f"{done} bytes)."
                )
            self._digest = digest.hexdigest()
        except BaseException as exc:  # handed to the sending thread by `result`
            self._error = exc
        finally:
            self.finished.set()

    def result(self) -> str:
        while not self.finished.wait(0.2):
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled("Interrupted.")
        if self._error is not None:
            if isinstance(self._error, OSError):
                raise SourceChanged(f"{self.source.path} can no longer be read ({self._error}).")
            raise self._error
        if self._stop_now.is_set() or self._digest is None:
            raise Cancelled("Interrupted.")
        return self._digest

    def stop(self) -> None:
        self._stop_now.set()


def run_upload(
    http: HttpClient,
    token: str,
    plan: UploadPlan,
    meter: Meter,
    *,
    state: Path,
    cancel: threading.Event | None = None,
) -> UploadResult:
    """Create or resume the session of ``plan``, send what the server lacks, finalize; the new
    data object's document and the bytes moved. The state file ``state`` survives any
    interruption."""
    sender = _Sender(http, token, meter, cancel)
    http.liveness.reset()
    saved = _read_state(state)
    doc: Doc | None = None
    upload_id = saved.get("upload_id")
    if isinstance(upload_id, str):
        try:
            doc = sender.session(upload_id)
        except BrainlifeError as exc:
            if exc.status != 404:
                raise
            doc = None  # expired or deleted on the server: start again
    if doc is None:
        # the id is ours and saved before the request: one sent again (a lost answer, a rerun)
        # names the same session and never makes a second object
        upload_id = upload_id if isinstance(upload_id, str) else new_upload_id()
        _write_state(state, {**saved, "upload_id": upload_id, "server": http.base_url})
        doc = _create(http, sender, plan, upload_id)
        made = doc.get("object")
        if isinstance(made, dict):  # a small object, sent and made in that one request
            meter.received(plan.size)
            with contextlib.suppress(OSError):
                state.unlink()
            return UploadResult(made, plan.size, meter.transferred, meter.resumed, 0)

    def save_state() -> None:
        assert doc is not None
        digests = {str(f.path): [*f.stat_key(), f.sha256] for f in plan.files if f.sha256}
        _write_state(state, {"upload_id": doc["_id"], "server": http.base_url, "digests": digests})

    save_state()
    present = 0
    if doc.get("status") != "finalized":
        upload_id = str(doc["_id"])
        for index, (f, st) in enumerate(zip(plan.files, doc["files"], strict=True)):
            if st["state"] != "stored" and st.get("sha256") is None and f.sha256 is not None:
                st = sender.declare(upload_id, index, f.sha256)["files"][index]
            if st["state"] == "stored":
                meter.present(f.size)
                present += f.size
                continue
            if st.get("sha256") is None:
                _, held = sender.send_hashing(upload_id, index, f, int(st["received"]), save_state)
                present += held
                continue
            sender.send(upload_id, index, f, int(st["received"]))
    dataset = _finalize(http, token, str(doc["_id"]), cancel)
    with contextlib.suppress(OSError):
        state.unlink()
    return UploadResult(dataset, plan.size, meter.transferred, meter.resumed, present)


def new_upload_id() -> str:
    """A session id chosen here (an ObjectId's shape: the time, then random bytes)."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def _inline(plan: UploadPlan) -> list[bytes] | None:
    """The files' bytes when the object is small enough to travel inside its `POST /upload`
    (`UPLOAD_INLINE_MAX`), each checked against the digest the plan holds; None otherwise."""
    if plan.size > UPLOAD_INLINE_MAX or any(f.sha256 is None for f in plan.files):
        return None
    out = []
    for f in plan.files:
        try:
            data = f.path.read_bytes()
        except OSError as exc:
            raise SourceChanged(f"{f.path} can no longer be read ({exc}).") from None
        if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
            raise SourceChanged(f"{f.path} changed after it was hashed: run the upload again.")
        out.append(data)
    return out


def _create(http: HttpClient, sender: _Sender, plan: UploadPlan, upload_id: str) -> Doc:
    """`POST /upload` with the chosen id (sent again while the server is unreachable: the id
    makes it idempotent); a small object's files inside it, to be made at once."""
    body = {**plan.request(), "id": upload_id}
    inline = _inline(plan)
    if inline is not None:
        body["files"] = [
            {**entry, "data": base64.b64encode(data).decode("ascii")}
            for entry, data in zip(body["files"], inline, strict=True)
        ]
        body["finalize"] = True
    try:
        return sender.create(body)
    except ApiError as exc:
        if exc.status == 413 and inline is not None:  # an archive with a smaller body limit
            return sender.create({**plan.request(), "id": upload_id})
        if exc.status in (400, 413):
            raise UploadRefused(f"The server refused the upload: {exc.server_message}") from None
        raise


def _finalize(http: HttpClient, token: str, upload_id: str, cancel: threading.Event | None) -> Doc:
    failures = 0
    while True:
        try:
            doc: Doc = http.request_json("POST", _urls.upload_finalize(upload_id), token=token)
            return doc
        except ServerUnavailable:
            failures += 1
            http.liveness.wait(http.policy.cut_pause(failures), "server unreachable", cancel)
