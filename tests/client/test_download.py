"""The download engine against a real local HTTP server: manifest and tar paths, verification,
atomic placement and cleanup on every failure."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from brainlife.client import (
    BrainlifeError,
    ChecksumMismatch,
    Client,
    DiskFullError,
    NotFound,
    ProtocolError,
)
from tests.client.test_tar import make_tar
from tests.fake_server import FakeServer, valid_jwt

DSID = "5a050ad5d76a2a002737e572"
FILES = {"t1.nii.gz": b"T1" * 3000, "sub/info.json": b'{"a": 1}'}
JSON = {"Content-Type": "application/json"}


def serve_manifest(fake: FakeServer, files: dict[str, bytes]) -> None:
    """Our manifest route for DSID, listing `files` (path → bytes) with sizes and sha256."""
    fake.json(
        "GET",
        f"/api/warehouse/dataset/manifest/{DSID}",
        {
            "_id": DSID,
            "tar_size": 0,
            "files": [
                {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                for p, b in files.items()
            ],
        },
    )


def serve_dataset(
    fake: FakeServer, *, manifest: bool = True, status: str = "stored", corrupt: bool = False
) -> None:
    fake.json(
        "GET", "/api/warehouse/dataset", {"datasets": [{"_id": DSID, "status": status}], "count": 1}
    )
    if manifest:
        serve_manifest(fake, FILES)
        for path, body in FILES.items():
            data = body[:-1] + b"!" if corrupt else body
            fake.route(
                "GET",
                f"/api/warehouse/dataset/file/{DSID}/{path}",
                lambda r, d=data: (200, {"Content-Type": "application/octet-stream"}, d),
            )
    tar = make_tar([(p, b, None) for p, b in FILES.items()])
    fake.route(
        "GET",
        f"/api/warehouse/dataset/download/{DSID}",
        lambda r: (200, {"Content-Length": str(len(tar))}, tar),
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "home")


def client(fake: FakeServer) -> Client:
    return Client(fake.url, token=valid_jwt(), backoff=0.01, retries=1)


def assert_complete(dest: Path) -> None:
    for path, body in FILES.items():
        assert (dest / path).read_bytes() == body
    assert not dest.with_name(dest.name + ".bl-partial").exists()


@pytest.mark.parametrize("manifest", [True, False])
def test_download_into_new_nested_folder(fake: FakeServer, tmp_path: Path, manifest: bool) -> None:
    serve_dataset(fake, manifest=manifest)
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "a" / "b"
    result = client(fake).download_dataset(DSID, dest, progress=lambda d, t: seen.append((d, t)))
    assert_complete(dest)
    assert result.method == ("manifest" if manifest else "tar")
    assert sorted(result.files) == sorted(FILES)
    assert seen[-1][0] == seen[-1][1]
    status_req = fake.calls("/api/warehouse/dataset")[0]
    assert status_req.json_param("find") == {"_id": DSID}


def test_existing_folder_is_merged(fake: FakeServer, tmp_path: Path) -> None:
    serve_dataset(fake)
    dest = tmp_path / DSID
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    (dest / "t1.nii.gz").write_text("old")
    client(fake).download_dataset(DSID, dest)
    assert_complete(dest)
    assert (dest / "mine.txt").read_text() == "keep"


def test_checksum_mismatch_leaves_nothing(fake: FakeServer, tmp_path: Path) -> None:
    serve_dataset(fake, corrupt=True)
    dest = tmp_path / "out"
    with pytest.raises(ChecksumMismatch, match="arrived corrupt"):
        client(fake).download_dataset(DSID, dest)
    assert leftovers(tmp_path) == []


def test_not_stored(fake: FakeServer, tmp_path: Path) -> None:
    serve_dataset(fake, status="failed")
    with pytest.raises(BrainlifeError, match="'failed', not 'stored'"):
        client(fake).download_dataset(DSID, tmp_path / "x")


def test_unknown_id(fake: FakeServer, tmp_path: Path) -> None:
    fake.json("GET", "/api/warehouse/dataset", {"datasets": [], "count": 0})
    with pytest.raises(NotFound, match="Couldn't find the data object"):
        client(fake).download_dataset(DSID, tmp_path / "x")


@pytest.mark.parametrize(
    ("ctype", "body", "match"),
    [
        ("text/html", b"<html><title>Bad Gateway</title></html>", "HTML page"),
        ("application/json", b'{"message":"status it not stored:failed"}', "JSON document"),
        ("", b'{"message":"oops"}', "JSON document"),
    ],
)
def test_error_page_instead_of_tar(
    fake: FakeServer, tmp_path: Path, ctype: str, body: bytes, match: str
) -> None:
    serve_dataset(fake, manifest=False)
    headers = {"Content-Type": ctype} if ctype else {}
    fake.route("GET", f"/api/warehouse/dataset/download/{DSID}", lambda r: (200, headers, body))
    with pytest.raises(ProtocolError, match=match):
        client(fake).download_dataset(DSID, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_connection_cut_midway(fake: FakeServer, tmp_path: Path) -> None:
    serve_dataset(fake, manifest=False)
    tar = make_tar([("big", os.urandom(3_000_000), None)])

    def cut(r: object) -> tuple[int, dict[str, str], Iterator[bytes]]:
        return 200, {"Content-Length": str(len(tar))}, iter([tar[:1_000_000]])

    fake.route("GET", f"/api/warehouse/dataset/download/{DSID}", cut)
    with pytest.raises(BrainlifeError):
        client(fake).download_dataset(DSID, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_disk_full_while_writing(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_dataset(fake)
    import brainlife.client.transfer.writes as tarmod

    def full(fd: int, data: memoryview, size: int = 0) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    import brainlife.client.transfer.files as transfermod

    monkeypatch.setattr(tarmod, "write_all", full)
    monkeypatch.setattr(transfermod, "write_all", full)
    with pytest.raises(DiskFullError, match=r"disk is full") as info:
        client(fake).download_dataset(DSID, tmp_path / "out", jobs=1)  # the first file fails
    assert info.value.needed == len(FILES["t1.nii.gz"])
    assert not (tmp_path / "out").exists()  # nothing looks complete
    monkeypatch.undo()  # space was freed: the same download continues and completes
    client(fake).download_dataset(DSID, tmp_path / "out")
    assert_complete(tmp_path / "out")
    assert leftovers(tmp_path) == ["out"]


def test_not_enough_space_up_front(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_dataset(fake)
    import shutil

    import brainlife.client.transfer.single as dl

    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 100))  # type: ignore[attr-defined]
    with pytest.raises(DiskFullError, match="only 100 B is free"):
        client(fake).download_dataset(DSID, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_interrupt_keeps_what_arrived_and_the_rerun_completes(
    fake: FakeServer, tmp_path: Path
) -> None:
    serve_dataset(fake)

    def stop(done: int, total: int | None) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client(fake).download_dataset(DSID, tmp_path / "out", progress=stop)
    assert leftovers(tmp_path) == ["out.bl-partial"]  # not "out": nothing looks complete
    result = client(fake).download_dataset(DSID, tmp_path / "out")
    assert_complete(tmp_path / "out")
    assert leftovers(tmp_path) == ["out"]
    assert result.resumed > 0  # what arrived before Ctrl-C was not fetched again
    assert result.resumed + result.transferred == result.bytes


def test_a_rerun_needs_room_only_for_what_its_partial_files_lack(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download stopped by a full disk continues once enough is freed for the rest: the bytes
    its partial files hold already count (it used to ask for the whole size again, so a disk
    that could hold the object refused the rerun forever)."""
    serve_dataset(fake)

    def stop(done: int, total: int | None) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client(fake).download_dataset(DSID, tmp_path / "out", progress=stop, jobs=1)
    partial = tmp_path / "out.bl-partial"
    held = sum(p.stat().st_size for p in partial.rglob("*.bl-part"))
    assert held > 0
    import shutil

    import brainlife.client.transfer.single as dl

    total = sum(len(b) for b in FILES.values())
    free = total - held  # room for the rest, not for the whole
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, free))  # type: ignore[attr-defined]
    result = client(fake).download_dataset(DSID, tmp_path / "out", jobs=1)
    assert_complete(tmp_path / "out")
    assert result.resumed == held


TASK = "5c0e8f0000000000000000aa"


def test_task_folder_saved_or_extracted(fake: FakeServer, tmp_path: Path) -> None:
    tgz = make_tar([("aseg.stats", b"stats", None)], gz=True)
    fake.route(
        "GET",
        f"/api/amaretti/task/download/{TASK}/freesurfer/output/stats",
        lambda r: (
            200,
            {
                "Content-Type": "application/x-tgz",
                "Content-Disposition": "attachment; filename=i.t.stats.tar.gz",
            },
            tgz,
        ),
    )
    c = client(fake)
    saved = c.download_task_path(TASK, "freesurfer/output/stats", output=tmp_path / "0001.tar.gz")
    assert (tmp_path / "0001.tar.gz").read_bytes() == tgz
    assert saved.bytes == len(tgz)
    by_name = c.download_task_path(TASK, "freesurfer/output/stats", directory=tmp_path / "d")
    assert by_name.path == tmp_path / "d" / "i.t.stats.tar.gz"
    c.download_task_path(TASK, "freesurfer/output/stats", directory=tmp_path / "x", extract=True)
    assert (tmp_path / "x" / "aseg.stats").read_bytes() == b"stats"


def test_task_error_json_is_not_saved_as_tar(fake: FakeServer, tmp_path: Path) -> None:
    fake.route(
        "GET",
        f"/api/amaretti/task/download/{TASK}/out",
        lambda r: (200, JSON, json.dumps({"message": "no resource"}).encode()),
    )
    with pytest.raises(ProtocolError, match="JSON document"):
        client(fake).download_task_path(TASK, "out", output=tmp_path / "s.tar.gz")
    assert leftovers(tmp_path) == []


def _serve_many(fake: FakeServer, files: dict[str, bytes], handler_for) -> None:  # type: ignore[no-untyped-def]
    fake.json(
        "GET",
        "/api/warehouse/dataset",
        {"datasets": [{"_id": DSID, "status": "stored"}], "count": 1},
    )
    serve_manifest(fake, files)
    for path, body in files.items():
        fake.route("GET", f"/api/warehouse/dataset/file/{DSID}/{path}", handler_for(path, body))


def test_one_object_fetches_its_files_in_parallel(fake: FakeServer, tmp_path: Path) -> None:
    """`bl data download ID` runs on the engine's pool: three files are in flight at once (a
    sequential client would leave the barrier waiting and get 503s it cannot outlast)."""
    import threading

    files = {f"f{i}.bin": os.urandom(1000) for i in range(3)}
    together = threading.Barrier(3, timeout=20)

    def handler_for(path: str, body: bytes):  # type: ignore[no-untyped-def]
        def answer(r: object) -> tuple[int, dict[str, str], bytes]:
            try:
                together.wait()
            except threading.BrokenBarrierError:
                return 404, JSON, b'{"message": "not all three at once"}'
            return 200, {}, body

        return answer

    _serve_many(fake, files, handler_for)
    dest = tmp_path / "out"
    result = client(fake).download_dataset(DSID, dest, jobs=3)
    assert result.method == "manifest"
    assert {p: (dest / p).read_bytes() for p in files} == files


def test_one_corrupt_file_stops_the_others_and_leaves_nothing(
    fake: FakeServer, tmp_path: Path
) -> None:
    files = {"bad.bin": b"x" * 100, **{f"ok{i}.bin": os.urandom(2000) for i in range(4)}}

    def handler_for(path: str, body: bytes):  # type: ignore[no-untyped-def]
        data = b"y" * 100 if path == "bad.bin" else body
        return lambda r: (200, {}, data)

    _serve_many(fake, files, handler_for)
    with pytest.raises(ChecksumMismatch, match=r"bad\.bin arrived corrupt"):
        client(fake).download_dataset(DSID, tmp_path / "out", jobs=2)
    assert leftovers(tmp_path) == []
    # fetched twice (the one checksum retry of the policy), then the run stopped
    assert len(fake.calls(f"/api/warehouse/dataset/file/{DSID}/bad.bin")) == 2
