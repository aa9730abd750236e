"""A large file is hashed while it is sent (`transfer.upload.HASH_WHILE_SENDING`), against a real
`bl serve`: the plan reads nothing, the object's manifest has the file's true sha256, content
the archive already holds is still not sent in full, an interrupted upload resumes from what the
server holds, and a file that changes while it is sent is refused. The thresholds are lowered
so that a few megabytes take the path a gigabyte takes."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from brainlife.client import Client, SourceChanged
from brainlife.client.transfer import upload as upload_module
from brainlife.server.demo.world import TP_PROJECT
from tests.conftest import LiveServer

MIB = 1024 * 1024
SIZE = 12 * MIB


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_module, "HASH_WHILE_SENDING", MIB)  # read by Client.plan_upload
    monkeypatch.setattr(upload_module, "FIRST_PIECE", MIB)
    monkeypatch.setattr(upload_module, "LAST_PIECE", 2 * MIB)


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
