"""A data object fetched as one tar archive, resumable where the server allows it.

Servers without our manifest route (brainlife.io) send a data object only as a tar. It is
extracted while it streams into ``<dest>.bl-partial/``, and a journal ``<dest>.bl-partial.json``
(JSON lines, appended as the archive goes by) records the answer (its ETag, length and
compression) and every member: where its data starts in the archive when it begins, where the
next header starts when it is complete on disk.

A later run that finds both asks for the rest with ``Range: bytes=<n>-`` and ``If-Range:
<ETag>``, ``n`` being the first byte not on disk: inside the member that was being written (its
file is continued) or at the header after the last complete member. Nothing already on disk is
fetched again, and a changed archive (the ETag no longer matches: a 200 answer) is fetched whole
into a clean folder, never mixed with the old bytes. Cut-off transfers are retried the same way
within a run. This needs a strong ETag, honoured ranges and an uncompressed tar: our server's
`/dataset/download` has all three (and so do object stores that brainlife's storages may point
to); brainlife.io's own route has no Range and no ETag, so there an interrupted object is fetched
again from the start (the journal is then not kept).

The journal never claims more than is on disk: a member is recorded complete only after its file
is closed, and the member in progress is continued from its file's actual length.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client._exceptions import (
    ApiError,
    Cancelled,
    GaveUp,
    ProtocolError,
    ServerUnavailable,
)
from brainlife.client._http import CHUNK_SIZE, HttpClient, RetryPolicy, content_range
from brainlife.client.transfer.names import journal_path
from brainlife.client.transfer.tarstream import (
    BLOCK,
    ChunkReader,
    check_archive_start,
    extract_tar_stream,
    padded,
    reject_error_page,
)
from brainlife.client.transfer.writes import disk_full_on_write, write_all, write_size

__all__ = ["TarFetch", "fetch_tar", "partial_tar_bytes"]

JOURNAL_VERSION = 1


@dataclass
class TarFetch:
    """What :func:`fetch_tar` did."""

    #: regular files (and hard links) in the folder, relative paths
    files: list[str]
    #: body bytes received in this run
    transferred: int
    #: archive bytes already on disk from an interrupted run, not fetched again
    resumed: int
    #: the archive's length when the server said it
    total: int | None


@dataclass
class _Journal:
    path: Path
    etag: str = ""
    length: int | None = None
    compression: str = ""
    #: complete regular files and hard links, in archive order (a dict: fast membership)
    files: dict[str, None] = field(default_factory=dict)
    #: archive offset of the header after the last complete member
    next: int = 0
    #: the regular file being written: {"rel", "size", "data", "mode", "mtime"}
    current: dict[str, Any] | None = None
    _fd: int | None = None

    @property
    def resumable(self) -> bool:
        return bool(self.etag) and not self.etag.startswith("W/") and self.compression == "tar"

    @classmethod
    def load(cls, path: Path) -> _Journal | None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        records = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                break  # a line cut by a kill: everything before it stands
            if isinstance(rec, dict):
                records.append(rec)
        if not records or records[0].get("v") != JOURNAL_VERSION:
            return None
        head = records[0]
        journal = cls(
            path,
            etag=str(head.get("etag") or ""),
            length=head.get("length") if isinstance(head.get("length"), int) else None,
            compression=str(head.get("compression") or ""),
        )
        try:
            for rec in records[1:]:
                if "start" in rec:
                    journal.current = {
                        "rel": str(rec["start"]),
                        "size": int(rec["size"]),
                        "data": int(rec["data"]),
                        "mode": int(rec["mode"]),
                        "mtime": float(rec["mtime"]),
                    }
                elif "end" in rec:
                    journal.next = int(rec["next"])
                    journal.current = None
                    if rec.get("file"):
                        journal.files[str(rec["end"])] = None
        except (KeyError, TypeError, ValueError):
            return None
        return journal

    # -- writing ----------------------------------------------------------------------------
    def _append(self, rec: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())

    def begin(self, etag: str, length: int | None, compression: str) -> None:
        """A whole archive starts: the journal starts over."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.etag, self.length, self.compression = etag, length, compression
        self.files, self.next, self.current = {}, 0, None
        self._append(
            {"v": JOURNAL_VERSION, "etag": etag, "length": length, "compression": compression}
        )

    def start(self, rel: str, size: int, data: int, mode: int, mtime: float) -> None:
        self.current = {"rel": rel, "size": size, "data": data, "mode": mode, "mtime": mtime}
        self._append({"start": rel, "size": size, "data": data, "mode": mode, "mtime": mtime})

    def end(self, rel: str, next_header: int, *, is_file: bool) -> None:
        self.next, self.current = next_header, None
        if is_file:
            self.files[rel] = None
        self._append({"end": rel, "next": next_header, "file": is_file})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- resuming ---------------------------------------------------------------------------
    def bytes_on_disk(self, folder: Path) -> int:
        """Archive bytes a resumed run would not fetch again (no side effect)."""
        if not self.resumable:
            return 0
        cur = self.current
        if cur is None:
            return self.next
        try:
            have = min((folder / cur["rel"]).stat().st_size, cur["size"])
        except OSError:
            have = 0
        return int(cur["data"]) + have

    def resume_point(self, folder: Path) -> int:
        """The first archive byte not on disk: inside the member being written (continued from
        its file's length, at most its size; an empty one is removed) or the header after the
        last complete member."""
        point = self.bytes_on_disk(folder)
        cur = self.current
        if cur is not None and point == cur["data"]:
            (folder / cur["rel"]).unlink(missing_ok=True)
        return point


def partial_tar_bytes(partial: Path) -> int:
    """Bytes of an interrupted tar download in ``partial`` that the next run keeps (for plans)."""
    journal = _Journal.load(journal_path(partial)) if partial.is_dir() else None
    return journal.bytes_on_disk(partial) if journal is not None else 0


def _start_over(partial: Path) -> _Journal:
    """An empty ``partial`` folder and a new (unwritten) journal beside it."""
    _wipe(partial)
    partial.mkdir(parents=True)
    return _Journal(journal_path(partial))


def _wipe(partial: Path) -> None:
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.unlink(missing_ok=True)
    journal_path(partial).unlink(missing_ok=True)


def _finish_member(reader: ChunkReader, folder: Path, journal: _Journal, have: int) -> str:
    """Append the rest of the member in progress (the body starts right after its ``have``
    bytes on disk), skip its padding, close it like the extraction would."""
    cur = journal.current
    assert cur is not None
    rel, size = str(cur["rel"]), int(cur["size"])
    target = folder / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    left = size - have
    with disk_full_on_write(target, left):
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, int(cur["mode"]))
        try:
            if os.fstat(fd).st_size != have:
                os.ftruncate(fd, have)
            os.lseek(fd, have, os.SEEK_SET)
            piece = write_size(fd)
            while left:
                chunk = reader.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise ServerUnavailable("The download was cut off.")
                write_all(fd, memoryview(chunk), piece)
                left -= len(chunk)
        finally:
            os.close(fd)
    pad = padded(size) - size
    while pad:
        got = len(reader.read(pad))
        if not got:
            raise ServerUnavailable("The download was cut off.")
        pad -= got
    os.utime(target, (cur["mtime"], cur["mtime"]))
    journal.end(rel, int(cur["data"]) + padded(size), is_file=True)
    return rel


def _chunks(
    resp: Any, on_bytes: Callable[[int], None], cancel: threading.Event | None
) -> Iterator[bytes]:
    """The body as it arrives: ``read1`` hands over whatever came, so a body cut off keeps every
    byte received before the cut (``read(n)`` would drop a partly filled chunk)."""
    from urllib3.exceptions import HTTPError

    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("Interrupted.")
            chunk = resp.read1(CHUNK_SIZE, decode_content=True)
            if not chunk:
                return
            on_bytes(len(chunk))
            yield chunk
    except HTTPError as exc:
        raise ServerUnavailable(f"The download was cut off ({exc}).") from exc


def fetch_tar(
    http: HttpClient,
    token: str,
    route: str,
    partial: Path,
    *,
    what: str = "the data object's tar archive",
    on_start: Callable[[int, int | None], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    check_space: Callable[[Path, int | None], None] | None = None,
    cancel: threading.Event | None = None,
    policy: RetryPolicy | None = None,
) -> TarFetch:
    """Extract the tar at ``route`` into the folder ``partial``, continuing an interrupted run's
    folder when its journal allows.

    ``on_start(resumed, total)`` is called when an answer starts the archive (again): the bytes
    already on disk and the archive's length; ``on_bytes(n)`` for every body chunk received.
    Cut-off answers are continued as ``policy`` (the client's by default) allows. On success the
    journal is removed and the folder left for the caller to move into place. On failure the
    folder and journal stay when the next run can continue them (a resumable answer cut off,
    Ctrl-C, a full disk, an expired token), else both are removed."""
    fetch = _TarFetch(http, token, route, partial, what, policy or http.policy)
    fetch.on_start, fetch.on_bytes, fetch.check_space = on_start, on_bytes, check_space
    ok = False
    try:
        fetch.run(cancel)
        ok = True
    except ProtocolError:
        fetch.journal.etag = ""  # not an archive, or a corrupt one: nothing worth continuing
        raise
    finally:
        fetch.journal.close()
        if ok:
            journal_path(partial).unlink(missing_ok=True)
        elif not fetch.journal.resumable:
            _wipe(partial)
    return TarFetch(
        files=list(fetch.journal.files),
        transferred=fetch.transferred,
        resumed=fetch.resumed,
        total=fetch.journal.length,
    )


class _TarFetch:
    """The state of one :func:`fetch_tar`: the journal, and what was received and kept."""

    def __init__(
        self,
        http: HttpClient,
        token: str,
        route: str,
        partial: Path,
        what: str,
        policy: RetryPolicy,
    ) -> None:
        self.http, self.token, self.route, self.partial = http, token, route, partial
        self.what, self.policy = what, policy
        journal = _Journal.load(journal_path(partial)) if partial.is_dir() else None
        if journal is None or not journal.resumable:
            journal = _start_over(partial)
        self.journal = journal
        self.transferred = 0
        self.resumed = 0
        self.on_start: Callable[[int, int | None], None] | None = None
        self.on_bytes: Callable[[int], None] | None = None
        self.check_space: Callable[[Path, int | None], None] | None = None

    def count(self, n: int) -> None:
        self.transferred += n
        self.http.liveness.alive()
        if self.on_bytes is not None:
            self.on_bytes(n)

    def started(self, have: int, total: int | None) -> None:
        self.resumed = have
        if self.on_start is not None:
            self.on_start(have, total)

    def run(self, cancel: threading.Event | None) -> None:
        failures = 0
        while True:
            offset = self.journal.resume_point(self.partial) if self.journal.resumable else 0
            try:
                self._receive(offset, cancel)
                return
            except ApiError as exc:
                if exc.status != 416 or not offset or failures + 1 >= self.policy.attempts:
                    raise
                failures += 1  # our bytes run past the archive (it changed): start over
                self.journal = _start_over(self.partial)
            except GaveUp:
                raise
            except ServerUnavailable:  # cut off (a server that does not answer: see _http)
                failures += 1
                if failures >= self.policy.attempts:
                    raise
                if not self.journal.resumable:  # the next attempt starts over
                    self.journal = _start_over(self.partial)
                pause = self.policy.cut_pause(failures)
                self.http.liveness.wait(pause, "connection lost", cancel)

    def _receive(self, offset: int, cancel: threading.Event | None) -> None:
        """One request: the rest of the archive from ``offset`` (or all of it)."""
        journal, partial = self.journal, self.partial
        headers = {"Range": f"bytes={offset}-", "If-Range": journal.etag} if offset else {}
        with self.http.stream(self.route, token=self.token, headers=headers, cancel=cancel) as resp:
            reject_error_page(resp, self.what)
            start = 0
            if resp.status == 206:
                start = content_range(resp.headers.get("Content-Range", ""))[0] or 0
            reader = ChunkReader(_chunks(resp, self.count, cancel))
            if not (offset and start == offset):  # a first run, a changed archive, or no Range
                _extract_whole(
                    resp, reader, partial, journal, self.what, self.started, self.check_space
                )
                return
            if self.resumed != offset:
                self.started(offset, journal.length)
            if journal.current is not None:
                _finish_member(reader, partial, journal, offset - journal.current["data"])
            extract_tar_stream(reader, partial, log=journal, base=journal.next, compression="")


def _extract_whole(
    resp: Any,
    reader: ChunkReader,
    partial: Path,
    journal: _Journal,
    what: str,
    started: Callable[[int, int | None], None],
    check_space: Callable[[Path, int | None], None] | None,
) -> None:
    length = resp.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if any(partial.iterdir()):
        _start_over(partial)
    started(0, size)
    compression = check_archive_start(reader.peek(BLOCK), what=what)
    journal.begin(resp.headers.get("ETag", ""), size, compression)
    if check_space is not None:
        check_space(partial, size)
    files = extract_tar_stream(
        reader,
        partial,
        needed=size,
        log=journal if journal.resumable else None,
        compression="" if compression == "tar" else "*",
    )
    journal.files = dict.fromkeys(files)
