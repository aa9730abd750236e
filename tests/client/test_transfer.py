"""The transfer loop's pipeline (``_transfer._stream_into``): the sha256 runs in a second thread
behind the receive and the write. The digest must still cover exactly the bytes written,
whatever stops the body, and a failure in the hashing thread must stop the transfer and leave a
part file that the next run resumes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brainlife.client._http import CHUNK_SIZE, Liveness, RetryPolicy
from brainlife.client.transfer import files as _transfer


class FakeBody:
    """A plain response body read with ``readinto``, in uneven pieces; optionally reset after
    ``cut_after`` bytes."""

    def __init__(self, data: bytes, *, cut_after: int | None = None) -> None:
        self.data = data
        self.pos = 0
        self.cut_after = cut_after
        self.reads = 0
        self.status = 200
        self.headers: dict[str, str] = {"Content-Length": str(len(data))}

    def readinto(self, view: memoryview) -> int:
        self.reads += 1
        end = len(self.data) if self.cut_after is None else self.cut_after
        if self.pos >= end and self.cut_after is not None:
            raise ConnectionResetError("connection reset by peer")
        # every third read comes back short, as a socket may
        want = len(view) - 4097 if self.reads % 3 == 0 else len(view)
        n = max(0, min(want, end - self.pos))
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class FakeHttp:
    """``HttpClient.stream`` over one file, honouring ``Range``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[dict[str, str]] = []
        self.sent = 0
        self.liveness = Liveness("http://fake")
        self.policy = RetryPolicy(cut_backoff=0)

    @contextlib.contextmanager
    def stream(
        self,
        route: str,
        *,
        token: str,
        headers: dict[str, str],
        cancel: Any = None,
        follow_redirects: bool = True,
    ) -> Iterator[FakeBody]:
        self.requests.append(dict(headers))
        start = int(headers["Range"].removeprefix("bytes=").rstrip("-")) if headers else 0
        body = FakeBody(self.data[start:])
        body.headers["ETag"] = '"v1"'
        if start:
            body.status = 206
            body.headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
        yield body
        self.sent += body.pos


#: the function itself, before the fixture below stands a fixed count in for it
USABLE_CORES = _transfer.usable_cores


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cores and no load: the pipeline's thread is used, whatever runs beside the tests."""
    monkeypatch.setattr(_transfer, "usable_cores", lambda: 2)
    monkeypatch.setattr(_transfer.os, "getloadavg", lambda: (0.2, 0.2, 0.2))


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bl-sha256"]


def _stream(part: Path, body: FakeBody, offset: int, digest: Any, seen: list[int]) -> int:
    return _transfer._stream_into(body, part, offset, digest, seen.append, None, None)


def test_multi_buffer_body_is_hashed_in_order_after_the_prefix(tmp_path: Path) -> None:
    prefix = os.urandom(100)
    data = os.urandom(5 * CHUNK_SIZE + CHUNK_SIZE // 2 + 17)
    part = tmp_path / "f.bl-part"
    part.write_bytes(prefix)
    digest = hashlib.sha256(prefix)
    seen: list[int] = []
    written = _stream(part, FakeBody(data), len(prefix), digest, seen)
    assert written == len(data) == sum(seen)
    assert part.read_bytes() == prefix + data
    assert digest.hexdigest() == hashlib.sha256(prefix + data).hexdigest()
    assert not _hash_threads()


def test_cut_off_body_leaves_a_digest_of_exactly_the_bytes_written(tmp_path: Path) -> None:
    data = os.urandom(6 * CHUNK_SIZE)
    cut = 2 * CHUNK_SIZE + 12345
    part = tmp_path / "f.bl-part"
    digest = hashlib.sha256()
    with pytest.raises(_transfer._Partial) as info:
        _stream(part, FakeBody(data, cut_after=cut), 0, digest, [])
    assert info.value.written == cut
    assert part.read_bytes() == data[:cut]
    assert digest.hexdigest() == hashlib.sha256(data[:cut]).hexdigest()
    assert not _hash_threads()


_real_sha256 = hashlib.sha256


class _FailingDigest:
    """A sha256 whose second ``update`` fails (in the hashing thread)."""

    def __init__(self) -> None:
        self.inner = _real_sha256()
        self.calls = 0

    def update(self, chunk: memoryview) -> None:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("hash failed")
        self.inner.update(chunk)

    def hexdigest(self) -> str:
        return self.inner.hexdigest()


def test_hash_thread_failure_stops_the_body_and_the_part_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(40 * CHUNK_SIZE + 99)
    want = hashlib.sha256(data).hexdigest()
    target = tmp_path / "data.bin"
    http = FakeHttp(data)
    made: list[Any] = []
    real = hashlib.sha256

    def sha256(*args: Any) -> Any:  # the first digest fetch_file makes fails, later ones work
        made.append(_FailingDigest() if not made else real(*args))
        return made[-1]

    monkeypatch.setattr(_transfer.hashlib, "sha256", sha256)
    with pytest.raises(RuntimeError, match="hash failed"):
        _transfer.fetch_file(http, "t", "/f", target, size=len(data), sha256=want)  # type: ignore[arg-type]
    assert not _hash_threads()
    kept = _transfer.part_path(target).read_bytes()
    # the receiver stopped within a few buffers of the failure, and what it wrote is a prefix
    assert 0 < len(kept) <= (_transfer.PIPELINE_BUFFERS + 2) * CHUNK_SIZE
    assert data.startswith(kept)
    assert _transfer.sidecar_path(target).exists()
    assert not target.exists()

    res = _transfer.fetch_file(http, "t", "/f", target, size=len(data), sha256=want)  # type: ignore[arg-type]
    assert http.requests[-1] == {"Range": f"bytes={len(kept)}-", "If-Range": '"v1"'}
    assert res.resumed == len(kept)
    assert res.transferred == len(data) - len(kept)
    assert res.sha256 == want
    assert target.read_bytes() == data
    assert not _transfer.part_path(target).exists()
    assert not _transfer.sidecar_path(target).exists()


def _threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []
    real = _transfer.threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real(self)

    monkeypatch.setattr(_transfer.threading.Thread, "start", start)
    return started


@pytest.mark.parametrize(
    ("cores", "load", "threaded"),
    [(2, 7.5, False), (2, 1.5, False), (4, 2.0, True), (2, 0.2, True), (1, 0.0, False)],
)
def test_a_busy_machine_hashes_inline_an_idle_one_in_a_second_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, load: float, threaded: bool
) -> None:
    # with no idle core the thread only adds a scheduler wake-up per buffer: the hash runs on
    # the receiving thread, and the digest and the bytes are the same either way
    monkeypatch.setattr(_transfer, "usable_cores", lambda: cores)
    monkeypatch.setattr(_transfer.os, "getloadavg", lambda: (load, load, load))
    started = _threads_started(monkeypatch)
    data = os.urandom(4 * CHUNK_SIZE + 5)
    part = tmp_path / "f.bl-part"
    digest = hashlib.sha256()
    seen: list[int] = []
    assert _stream(part, FakeBody(data), 0, digest, seen) == len(data) == sum(seen)
    assert part.read_bytes() == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert started == (["bl-sha256"] if threaded else [])
    assert not _hash_threads()


def test_unknown_load_uses_the_thread_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_load() -> tuple[float, float, float]:
        raise OSError("load average unobtainable")

    monkeypatch.setattr(_transfer.os, "getloadavg", no_load)
    assert _transfer.hash_thread_pays(None) is True
    assert _transfer.hash_thread_pays(CHUNK_SIZE) is False  # one buffer: never a thread
    monkeypatch.setattr(_transfer, "usable_cores", lambda: 1)
    assert _transfer.hash_thread_pays(10 * CHUNK_SIZE) is False


def test_the_cores_counted_are_those_the_process_may_run_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pinned to one core of a larger machine (taskset, a container's cpuset), the process has
    # no second core for a hash thread, however many the machine has
    monkeypatch.setattr(_transfer.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(_transfer.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(_transfer.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(_transfer, "usable_cores", USABLE_CORES)  # the real one again
    assert _transfer.usable_cores() == 1
    assert _transfer.hash_thread_pays(10 * CHUNK_SIZE) is False
    monkeypatch.setattr(_transfer.os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)
    assert _transfer.usable_cores() == 2
    assert _transfer.hash_thread_pays(10 * CHUNK_SIZE) is True
    monkeypatch.delattr(_transfer.os, "sched_getaffinity", raising=False)  # not on every system
    assert _transfer.usable_cores() == 8
