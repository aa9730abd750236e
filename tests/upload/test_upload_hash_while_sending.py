"""A large file is hashed while it is sent (`transfer.upload.HASH_WHILE_SENDING`), against a real
`bl serve`: the plan reads nothing, the file is read once (hashed from the buffers sent), the
object's manifest has the file's true sha256, content the archive already holds is not sent
again (the digest cache), an interrupted upload resumes from what the server holds, a body cut
mid-way and sent again from the server's bytes still hashes each byte once, a byte changed on
the way is refused by the server's check, and a file that changes while it is sent is refused.
The thresholds are lowered so that a few megabytes take the path a gigabyte takes."""

from __future__ import annotations

import errno
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brainlife.client import Client, RetryPolicy, SourceChanged
from brainlife.client import _client as client_module
from brainlife.client.transfer import upload as upload_module
from brainlife.server.demo.world import TP_PROJECT
from tests.conftest import LiveServer

MIB = 1024 * 1024
SIZE = 12 * MIB


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "HASH_WHILE_SENDING", MIB)


def _data(n: int, seed: bytes) -> bytes:
    block = hashlib.sha256(seed).digest() * 32768
    return (block * (n // len(block) + 1))[:n]


def _plan(c: Client, f: Path, subject: str):  # type: ignore[no-untyped-def]
    return c.plan_upload(
        project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject=subject
    )


def _manifest(c: Client, token: str, dataset_id: str) -> dict:
    doc: dict = c.http.request_json(
        "GET", f"/api/warehouse/dataset/manifest/{dataset_id}", token=token
    )
    return doc


def test_hashed_while_sent_and_content_held_not_sent_in_full(
    token: str, home: Path, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "big.nii.gz"
    f.write_bytes(_data(SIZE, b"while"))
    with Client(server.url, token=token) as c:
        plan = _plan(c, f, "hws")
        assert plan.files[0].sha256 is None  # planning read nothing
        assert "sha256" not in plan.request()["files"][0]
        result = c.upload(plan)
        assert result.sent == SIZE and result.present == 0
        assert _manifest(c, token, result.dataset["_id"])["files"][0]["sha256"] == (
            hashlib.sha256(f.read_bytes()).hexdigest()
        )
        assert not c.upload_state(plan).exists()
        # the same bytes again: once the digest is known the server says it holds them
        again = c.upload(_plan(c, f, "hws2"))
    assert again.dataset["_id"] != result.dataset["_id"]
    assert again.present > 0 and again.sent + again.present == SIZE
    assert again.sent < SIZE


def test_interrupted_then_resumed(
    token: str, home: Path, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "resume.nii.gz"
    f.write_bytes(_data(SIZE, b"resume-hws"))
    with Client(server.url, token=token) as c:
        cancel = threading.Event()

        def stop_half_way(done: int, _total: int | None) -> None:
            if done >= SIZE // 2:
                cancel.set()

        with pytest.raises(Exception, match="Interrupted"):
            c.upload(_plan(c, f, "hws-resume"), progress=stop_half_way, cancel=cancel)
        plan = _plan(c, f, "hws-resume")
        result = c.upload(plan)
        # resumed from what the server held, not from 0; how much it held depends on where the
        # cut fell (the piece in flight is dropped, and one the server was still writing when the
        # client asked may be sent again), so only "some, and the rest sent" is certain
        assert 0 < result.resumed < SIZE
        assert result.resumed + result.sent >= SIZE
        manifest = _manifest(c, token, result.dataset["_id"])
    assert manifest["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_a_file_changed_while_sent_is_refused(
    token: str, home: Path, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "change.nii.gz"
    f.write_bytes(_data(SIZE, b"change-hws"))
    with Client(server.url, token=token) as c:
        plan = _plan(c, f, "hws-change")

        def rewrite(done: int, _total: int | None) -> None:
            if 0 < done < SIZE:
                f.write_bytes(_data(SIZE, b"other"))

        with pytest.raises(SourceChanged, match="changed while it was being uploaded"):
            c.upload(plan, progress=rewrite)
        assert not c.query_datasets(project=TP_PROJECT, subject="hws-change").datasets


def _count_reads(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """Bytes the upload module reads from ``path`` (every read goes through its ``open``)."""
    read = [0]

    class Counting:
        def __init__(self, raw: object) -> None:
            self.raw = raw

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.raw.close()  # type: ignore[attr-defined]

        def seek(self, pos: int) -> int:
            return int(self.raw.seek(pos))  # type: ignore[attr-defined]

        def readinto(self, view: memoryview) -> int:
            n = int(self.raw.readinto(view))  # type: ignore[attr-defined]
            read[0] += n
            return n

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        raw = open(file, *args, **kwargs)  # type: ignore[call-overload]  # noqa: SIM115
        return Counting(raw) if Path(str(file)) == path else raw

    monkeypatch.setattr(upload_module, "open", counting_open, raising=False)
    return read


def test_the_file_is_read_once(
    token: str, home: Path, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "once.nii.gz"
    f.write_bytes(_data(SIZE, b"once"))
    read = _count_reads(monkeypatch, f)
    with Client(server.url, token=token) as c:
        result = c.upload(_plan(c, f, "hws-once"))
        manifest = _manifest(c, token, result.dataset["_id"])
    assert manifest["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    # sent and hashed from one read; only the tail is read twice (hashed, then sent)
    assert result.sent == SIZE and read[0] <= SIZE + upload_module.TAIL


def _cut_once(monkeypatch: pytest.MonkeyPatch, after: int) -> list[int]:
    """The first body sent stops with a connection error after ``after`` bytes (the server
    keeps what arrived); the bytes each body carried are recorded."""
    bodies: list[int] = []
    chunks = upload_module._Sender._chunks

    def cut(self: object, *args: object, **kwargs: object) -> Iterator[memoryview]:
        first = not bodies
        bodies.append(0)
        for chunk in chunks(self, *args, **kwargs):  # type: ignore[arg-type]
            if first and bodies[-1] >= after:
                raise OSError(errno.EIO, "cut for the test")
            bodies[-1] += len(chunk)
            yield chunk

    monkeypatch.setattr(upload_module._Sender, "_chunks", cut)
    return bodies


def test_a_body_cut_and_sent_again_hashes_each_byte_once(
    token: str, home: Path, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "cut.nii.gz"
    f.write_bytes(_data(SIZE, b"cut-hws"))
    bodies = _cut_once(monkeypatch, 5 * MIB)
    with Client(server.url, token=token, retry=RetryPolicy(cut_backoff=0.01)) as c:
        result = c.upload(_plan(c, f, "hws-cut"))
        manifest = _manifest(c, token, result.dataset["_id"])
    assert len(bodies) >= 2 and bodies[0] == 5 * MIB  # cut, then sent again from the server's end
    assert manifest["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_a_byte_changed_on_the_way_is_refused(
    token: str, home: Path, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest is computed from the buffers sent: a byte changed after it was hashed (as a
    faulty network or memory would) still fails the server's check; nothing is stored."""
    f = tmp_path / "flip.nii.gz"
    f.write_bytes(_data(SIZE, b"flip-hws"))
    chunks = upload_module._Sender._chunks
    seen = [0]

    def flip(self: object, *args: object, **kwargs: object) -> Iterator[memoryview]:
        for chunk in chunks(self, *args, **kwargs):  # type: ignore[arg-type]
            seen[0] += len(chunk)
            if seen[0] == 3 * MIB:  # the third megabyte, after its hash
                changed = bytearray(chunk)
                changed[1000] ^= 1
                yield memoryview(changed)
            else:
                yield chunk

    monkeypatch.setattr(upload_module._Sender, "_chunks", flip)
    with Client(server.url, token=token) as c:
        with pytest.raises(SourceChanged, match="other bytes than were hashed"):
            c.upload(_plan(c, f, "hws-flip"))
        assert not c.query_datasets(project=TP_PROJECT, subject="hws-flip").datasets
