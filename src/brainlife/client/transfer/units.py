"""The vocabulary every download is planned in, the one runner of it, and the one progress meter.

A download is a list of units: a :class:`FileUnit` (a route into one file, with its size, sha256
and ETag when known) or a :class:`TarUnit` (a route whose tar is extracted into a folder). Every
path builds units and hands them to :func:`run_file`, :func:`run_tar` or :func:`run_files`: a
data object file by file or as a tar (``single``), the bulk engine's files and tars (``engine``),
a task's file, folder or archive (``single``, ``taskarchives``). So resuming, verifying and
retrying happen the same way whichever path a download takes.

Progress is counted in one place, :class:`Meter`: the runners tell it bytes received, bytes
discarded (a corrupt file fetched again, a tar started over), bytes kept from an interrupted run
and totals once an answer says them; it keeps the counts and tells its listener ``(done,
total)``: the CLI's progress bar for one download, the engine's throttled ``progress`` events
for a bulk run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainlife.client._http import HttpClient, RetryPolicy
from brainlife.client.transfer.files import FetchResult, fetch_file
from brainlife.client.transfer.tars import TarFetch, fetch_tar
from brainlife.client.transfer.workers import run_parallel

__all__ = ["FileUnit", "Meter", "TarUnit", "Unit", "run_file", "run_files", "run_tar"]

#: ``listener(bytes_done, bytes_total or None)``
Listener = Callable[[int, int | None], None]


@dataclass(frozen=True)
class FileUnit:
    """One file: ``route`` into ``target``, checked against ``size`` and ``sha256`` when known;
    ``etag`` is the ETag a saved copy was fetched with (sent as ``If-None-Match``)."""

    route: str
    target: Path
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class TarUnit:
    """One tar: ``route`` extracted into the folder ``folder`` (``what`` names it in errors)."""

    route: str
    folder: Path
    what: str = "the data object's tar archive"


Unit = FileUnit | TarUnit


class Meter:
    """The bytes of a download, from any worker thread: ``done`` (on disk, verified or not yet),
    ``transferred`` (body bytes the network carried), ``resumed`` (kept from an interrupted run)
    and ``total`` (None until known). Every change is told to ``listener``."""

    def __init__(self, listener: Listener | None = None, total: int | None = None) -> None:
        self.listener = listener
        self.total = total
        self.done = 0
        self.transferred = 0
        self.resumed = 0
        self._lock = threading.Lock()

    def _move(self, done: int = 0, transferred: int = 0, resumed: int = 0) -> None:
        with self._lock:
            self.done += done
            self.transferred += transferred
            self.resumed += resumed
            now = self.done, self.total
        if self.listener is not None:  # outside the lock: a listener may take its own
            self.listener(*now)

    def received(self, n: int) -> None:
        """``n`` body bytes arrived (``n`` < 0: ``-n`` bytes told earlier were discarded and will
        come again: no longer done, though the network did carry them)."""
        self._move(done=n, transferred=max(n, 0))

    def kept(self, n: int) -> None:
        """``n`` bytes of an interrupted run were kept and need not be fetched."""
        self._move(done=n, resumed=n)

    def present(self, n: int) -> None:
        """``n`` bytes are already in place (verified, or linked from a copy)."""
        self._move(done=n)

    def at(self, done: int, total: int | None) -> None:
        """An answer says where one file stands: ``done`` of ``total`` bytes (a task file)."""
        with self._lock:
            self.done, self.total = done, total
        self._move()


def run_file(
    http: HttpClient,
    token: str,
    unit: FileUnit,
    meter: Meter,
    *,
    cancel: threading.Event | None = None,
    policy: RetryPolicy | None = None,
    on_response: Callable[[Any], None] | None = None,
    check_head: Callable[[bytes], None] | None = None,
) -> FetchResult:
    """Fetch a :class:`FileUnit` (``fetch_file``), resuming and verifying; its bytes go to
    ``meter``. The bytes a resumed part already held are counted as kept at the end, unless
    ``on_response`` sees every answer (a task file, whose size only the answer tells): it then
    sets where the file stands with :meth:`Meter.at`."""
    headers = {"If-None-Match": unit.etag} if unit.etag else None
    res = fetch_file(
        http,
        token,
        unit.route,
        unit.target,
        size=unit.size,
        sha256=unit.sha256,
        on_bytes=meter.received,
        cancel=cancel,
        policy=policy,
        on_response=on_response,
        check_head=check_head,
        headers=headers,
    )
    if on_response is None:
        meter.kept(res.resumed)
    return res


def run_files(
    http: HttpClient,
    token: str,
    units: Sequence[FileUnit],
    meter: Meter,
    *,
    jobs: int,
    cancel: threading.Event,
    policy: RetryPolicy | None = None,
) -> list[FetchResult]:
    """Every unit through :func:`run_file` on ``jobs`` workers (``run_parallel``); the first
    error stops the others and is raised once they have stopped."""
    fetched: list[FetchResult] = []

    def one(unit: FileUnit) -> None:
        fetched.append(run_file(http, token, unit, meter, cancel=cancel, policy=policy))

    http.ensure_pool_size(jobs)
    failure = run_parallel([functools.partial(one, u) for u in units], jobs=jobs, cancel=cancel)
    if failure is not None:
        raise failure
    return fetched


def run_tar(
    http: HttpClient,
    token: str,
    unit: TarUnit,
    meter: Meter,
    *,
    cancel: threading.Event | None = None,
    check_space: Callable[[Path, int | None], None] | None = None,
    policy: RetryPolicy | None = None,
) -> TarFetch:
    """Extract a :class:`TarUnit` (``fetch_tar``), continuing an interrupted run's folder. Each
    time the archive (re)starts, ``meter`` learns its length and the bytes on disk become this
    unit's done, counted as kept as ``fetch_tar`` counts them (a continued answer keeps what came
    before; starting over keeps nothing)."""
    state = {"done": 0, "kept": 0}

    def on_bytes(n: int) -> None:
        state["done"] += n
        meter.received(n)

    def on_start(have: int, total: int | None) -> None:
        if meter.total is None:
            meter.total = total
        earlier = have - state["kept"]  # negative when the archive starts over
        meter.kept(earlier)
        meter.present(have - state["done"] - earlier)  # the rewound chunk in flight
        state["done"] = state["kept"] = have

    return fetch_tar(
        http,
        token,
        unit.route,
        unit.folder,
        what=unit.what,
        on_start=on_start,
        on_bytes=on_bytes,
        check_space=check_space,
        cancel=cancel,
        policy=policy,
    )
