"""Ingest into the content store and its crash safety: a `stored` data object always has all its
bytes; a failure or a kill at any moment leaves the previous state and no partial blob."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from brainlife.server import store as store_module
from brainlife.server.errors import BadRequest
from brainlife.server.ids import new_object_id
from brainlife.server.models import Dataset, DatasetFile
from brainlife.server.services.ingest import store_dataset_files, verify_dataset
from brainlife.server.tarstream import TarLayout, TarMember, epoch_seconds
from tests.server._bytes_factories import auth, make_dataset, make_project

FILES = [("t1.nii.gz", os.urandom(300_000)), ("sub/mask.nii.gz", b"m" * 5000), ("x.json", b"{}")]


def blobs(archive) -> dict[str, bytes]:
    """Every blob visible under its final name (the store's tmp/ excluded)."""
    root = archive.settings.store_dir
    return {
        p.name: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "tmp"
    }


def assert_store_consistent(archive) -> None:
    for name, data in blobs(archive).items():
        assert hashlib.sha256(data).hexdigest() == name, "a blob's bytes do not match its name"


def assert_stored_objects_complete(archive) -> None:
    with archive.session() as s:
        for did in s.scalars(select(Dataset.id).where(Dataset.status == "stored")):
            report = verify_dataset(s, archive, did, rehash=True)
            assert report.ok, report


def status_and_rows(archive, did: str) -> tuple[str | None, int]:
    with archive.session() as s:
        ds = s.get(Dataset, did)
        rows = s.scalar(select(func.count()).where(DatasetFile.dataset_id == did))
        return (ds.status if ds else None), int(rows or 0)


@pytest.fixture
def project(archive) -> str:
    return make_project(archive)


@pytest.fixture
def storing(archive, project) -> str:
    return make_dataset(archive, project)  # committed, status "storing"


def ingest(archive, did: str, files, jobs: int = 1) -> None:
    with archive.session() as s:
        store_dataset_files(s, archive, s.get(Dataset, did), files, jobs=jobs)


# --- the normal path -------------------------------------------------------------------------


def test_ingest_stores_blobs_rows_and_exact_size(archive, http, storing):
    ingest(archive, storing, FILES)
    with archive.session() as s:
        ds = s.get(Dataset, storing)
        assert ds.status == "stored"
        rows = s.scalars(
            select(DatasetFile).where(DatasetFile.dataset_id == storing).order_by(DatasetFile.pos)
        ).all()
        assert [(r.path, r.size, r.sha256) for r in rows] == [
            (p, len(b), hashlib.sha256(b).hexdigest()) for p, b in FILES
        ]
        layout = TarLayout(
            [TarMember(r.path, r.size, r.sha256, r.mode) for r in rows],
            epoch_seconds(ds.create_date),
        )
        assert ds.size == layout.size
        assert verify_dataset(s, archive, storing, rehash=True).ok
    body = http.get(f"/api/warehouse/dataset/download/{storing}", headers=auth(archive)).content
    assert len(body) == ds.size
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == [p for p, _ in FILES]


def test_paths_and_chunk_iterables_and_modes(archive, storing, tmp_path: Path):
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    plain = tmp_path / "data.txt"
    plain.write_bytes(b"plain")
    plain.chmod(0o600)
    ingest(
        archive,
        storing,
        [("run.sh", script), ("data.txt", plain), ("chunks.bin", iter([b"ab", b"", b"cd"]))],
    )
    with archive.session() as s:
        rows = {
            r.path: r
            for r in s.scalars(select(DatasetFile).where(DatasetFile.dataset_id == storing))
        }
    assert rows["run.sh"].mode == 0o755
    assert rows["data.txt"].mode == 0o644
    assert rows["chunks.bin"].size == 4
    assert rows["chunks.bin"].sha256 == hashlib.sha256(b"abcd").hexdigest()


def test_identical_content_is_stored_once(archive, project):
    data = os.urandom(10_000)
    make_dataset(archive, project, [("a", data), ("b", data)])
    make_dataset(archive, project, [("c", data)])
    assert list(blobs(archive).values()).count(data) == 1


def test_new_dataset_object_in_the_session(archive, project):
    """The demo builder's way: a Dataset not yet committed."""
    with archive.session() as s:
        ds = Dataset(
            id=new_object_id(),
            project_id=project,
            datatype_id="0" * 24,
            create_date=datetime.now(UTC),
            extra={},
        )
        s.add(ds)
        store_dataset_files(s, archive, ds, [("a.txt", b"hello")])
        did = ds.id
    assert status_and_rows(archive, did) == ("stored", 1)


def test_reingest_replaces_the_manifest(archive, storing):
    ingest(archive, storing, FILES)
    ingest(archive, storing, [("only.txt", b"new")])
    assert status_and_rows(archive, storing) == ("stored", 1)
    assert_stored_objects_complete(archive)


@pytest.mark.parametrize(
    "path",
    ["", "/abs/path", "a/../b", "..", "./a", "a/./b", "a//b", "a/", "a\x00b", "x" * 1100],
)
def test_unsafe_paths_are_refused_before_anything_is_written(archive, storing, path):
    with pytest.raises(BadRequest):
        ingest(archive, storing, [("ok.txt", b"fine"), (path, b"bad")])
    assert status_and_rows(archive, storing) == ("storing", 0)
    assert blobs(archive) == {}


@pytest.mark.parametrize(
    "files",
    [[("a", b"1"), ("a", b"2")], [("a", b"1"), ("a/b", b"2")], [("d/e/f", b"1"), ("d", b"2")]],
)
def test_duplicate_or_conflicting_paths_are_refused(archive, storing, files):
    with pytest.raises(BadRequest):
        ingest(archive, storing, files)
    assert status_and_rows(archive, storing) == ("storing", 0)


# --- failures in the middle ------------------------------------------------------------------


def test_files_written_at_once_keep_their_order(archive, storing, tmp_path):
    # bytes, a path and an iterable of one file's pieces, 4 written at a time: the manifest
    # is in the order given, each path with its own bytes
    files, data = [], []
    for i in range(12):
        body = os.urandom(1000 + i * 4099)
        data.append(body)
        if i % 3 == 0:
            files.append((f"d/{i}.bin", body))
        elif i % 3 == 1:
            (tmp_path / f"{i}.bin").write_bytes(body)
            files.append((f"d/{i}.bin", tmp_path / f"{i}.bin"))
        else:
            files.append((f"d/{i}.bin", iter([body[:500], body[500:]])))
    ingest(archive, storing, files, jobs=4)
    with archive.session() as s:
        rows = s.scalars(
            select(DatasetFile).where(DatasetFile.dataset_id == storing).order_by(DatasetFile.pos)
        ).all()
    assert [(r.path, r.size, r.sha256) for r in rows] == [
        (path, len(body), hashlib.sha256(body).hexdigest())
        for (path, _), body in zip(files, data, strict=True)
    ]
    stored = blobs(archive)
    assert [stored[r.sha256] for r in rows] == data
    assert_stored_objects_complete(archive)


@pytest.mark.parametrize("jobs", [1, 4])
def test_failing_chunk_iterator(archive, storing, jobs):
    def broken():
        yield b"x" * 100_000
        raise ConnectionError("upload cut")

    with pytest.raises(ConnectionError):
        ingest(archive, storing, [FILES[0], ("broken.bin", broken()), FILES[2]], jobs=jobs)
    assert status_and_rows(archive, storing) == ("storing", 0)
    assert_store_consistent(archive)
    assert list((archive.settings.store_dir / "tmp").iterdir()) == []  # temp file removed
    ingest(archive, storing, FILES)  # a retry succeeds
    assert status_and_rows(archive, storing) == ("stored", len(FILES))
    assert_stored_objects_complete(archive)


def test_failing_rename(archive, storing, monkeypatch):
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="No space"):
        ingest(archive, storing, FILES)
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    assert status_and_rows(archive, storing) == ("storing", 0)
    assert_store_consistent(archive)
    ingest(archive, storing, FILES)
    assert_stored_objects_complete(archive)


def test_failing_commit(archive, storing, monkeypatch):
    with archive.session() as s:

        def failing_commit():
            raise RuntimeError("database is locked")

        monkeypatch.setattr(s, "commit", failing_commit)
        with pytest.raises(RuntimeError):
            store_dataset_files(s, archive, s.get(Dataset, storing), FILES)
    assert status_and_rows(archive, storing) == ("storing", 0)
    ingest(archive, storing, FILES)
    assert status_and_rows(archive, storing) == ("stored", len(FILES))


def test_failed_reingest_keeps_the_previous_complete_object(archive, http, storing):
    ingest(archive, storing, FILES)
    before = http.get(f"/api/warehouse/dataset/download/{storing}", headers=auth(archive)).content

    def broken():
        yield b"partial"
        raise OSError("disk error")

    with pytest.raises(OSError):
        ingest(archive, storing, [("new.txt", b"new"), ("broken", broken())])
    assert status_and_rows(archive, storing) == ("stored", len(FILES))
    after = http.get(f"/api/warehouse/dataset/download/{storing}", headers=auth(archive)).content
    assert after == before


def test_failure_with_an_uncommitted_dataset_leaves_no_row(archive, project):
    did = new_object_id()
    with archive.session() as s:
        ds = Dataset(
            id=did,
            project_id=project,
            datatype_id="0" * 24,
            status="stored",
            create_date=datetime.now(UTC),
            extra={},
        )
        s.add(ds)

        def broken():
            yield b"1"
            raise ValueError("bad chunk")

        with pytest.raises(ValueError):
            store_dataset_files(s, archive, ds, [("a", broken())])
        s.commit()  # even if the caller commits afterwards
    assert status_and_rows(archive, did) == (None, 0)


# --- verify ----------------------------------------------------------------------------------


def test_verify_finds_missing_short_and_corrupt_blobs(archive, project):
    did = make_dataset(archive, project, FILES)
    with archive.session() as s:
        assert verify_dataset(s, archive, did, rehash=True).ok
    paths = {hashlib.sha256(b).hexdigest(): p for p, b in FILES}
    store = archive.store
    t1, mask, js = (hashlib.sha256(b).hexdigest() for _p, b in FILES)
    store.local_path(t1).unlink()
    store.local_path(mask).write_bytes(b"m" * 4999)
    store.local_path(js).write_bytes(b"[]")
    with archive.session() as s:
        quick = verify_dataset(s, archive, did)
        full = verify_dataset(s, archive, did, rehash=True)
    assert quick.missing == [paths[t1]]
    assert quick.wrong_size == [paths[mask]]
    assert quick.corrupt == []
    assert full.corrupt == [paths[js]]
    assert not full.ok


# --- a real crash: SIGKILL in the middle of an ingest ----------------------------------------

CHILD = r"""
import os, sys, time
from pathlib import Path
from brainlife.server.archive import open_archive
from brainlife.server.settings import Settings
from brainlife.server.models import Dataset
from brainlife.server.services.ingest import store_dataset_files

data_dir, did, slow_commit = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
arch = open_archive(Settings(data_dir=Path(data_dir)))

def chunks(i):
    for k in range(8):
        print(f"file {i} chunk {k}", flush=True)
        yield bytes([65 + i]) * (256 * 1024)
        time.sleep(0.02)

with arch.session() as s:
    if slow_commit:
        real_commit = s.commit
        def commit():
            print("committing", flush=True)
            time.sleep(60)
            real_commit()
        s.commit = commit
    store_dataset_files(s, arch, s.get(Dataset, did), [(f"f{i}.bin", chunks(i)) for i in range(4)])
print("done", flush=True)
"""

EXPECTED = [(f"f{i}.bin", bytes([65 + i]) * (8 * 256 * 1024)) for i in range(4)]


def _run_child_until(archive, did: str, marker: str, slow_commit: bool = False) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(archive.settings.data_dir),
            did,
            "1" if slow_commit else "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    seen = []
    try:
        for raw in proc.stdout:
            line = raw.decode().strip()
            seen.append(line)
            if line == marker:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert marker in seen, (seen, proc.stderr.read() if proc.stderr else b"")


@pytest.mark.parametrize(
    ("marker", "slow_commit"),
    [
        ("file 0 chunk 3", False),
        ("file 2 chunk 0", False),
        ("file 3 chunk 7", False),
        ("committing", True),
    ],
)
def test_sigkill_mid_ingest(archive, http, storing, marker, slow_commit):
    _run_child_until(archive, storing, marker, slow_commit)
    with archive.engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert status_and_rows(archive, storing) == ("storing", 0)
    assert_store_consistent(archive)
    assert_stored_objects_complete(archive)
    # a retry after the crash succeeds and serves the right bytes
    ingest(archive, storing, EXPECTED)
    assert_stored_objects_complete(archive)
    body = http.get(f"/api/warehouse/dataset/download/{storing}", headers=auth(archive)).content
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        got = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    assert got == EXPECTED


def test_child_that_finishes_leaves_a_complete_object(archive, storing):
    _run_child_until(archive, storing, "done")
    assert status_and_rows(archive, storing) == ("stored", 4)
    assert_stored_objects_complete(archive)


def test_stale_temporary_files_are_cleaned_but_live_ones_kept(tmp_path):
    import os
    import time

    from brainlife.server.store import LocalStore

    store = LocalStore(tmp_path / "store")
    stale = store.tmp / "blob-stale"
    live = store.tmp / "blob-live"
    stale.write_bytes(b"half a blob")
    live.write_bytes(b"being written")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert store.clean_tmp() == 1
    assert not stale.exists()
    assert live.exists()
