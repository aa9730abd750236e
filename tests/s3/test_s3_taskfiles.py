"""Task outputs in the bucket (`storetaskfiles.StoreTaskFiles`, `bl serve --store s3://…`) on a
real radosgw: the same listing, manifest and .tar.gz bytes as the local task folders for the same
files, uploads that land in the bucket whole or not at all, and single files answered with a
presigned URL."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from brainlife.server.archive import Archive, open_archive
from brainlife.server.errors import BadRequest, NotFound
from brainlife.server.models import TaskOutputFile
from brainlife.server.settings import Settings
from brainlife.server.storetaskfiles import StoreTaskFiles
from brainlife.server.taskstore import LocalTaskFiles
from brainlife.server.uploadtar import UnpackLimits, UnsafeUpload
from tests.s3 import radosgw
from tests.server._bytes_factories import auth, make_task

s3_env, bucket = radosgw.s3_env, radosgw.bucket  # the fixtures

STAMP = 1_700_000_000
#: names whose walk order is not their paths' sort order ("a" < "a.txt" but "a.txt" < "a/…")
FILES = {
    "a/b/deep.txt": b"deep",
    "a/z.bin": os.urandom(70_000),
    "a.txt": b"sibling of a folder",
    "B/upper.txt": b"capital",
    "run.sh": b"#!/bin/sh\necho hi\n",
    ".hidden": b"never listed",
    "a/.secret/x": b"never listed either",
    "empty.txt": b"",
}


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "run.sh").chmod(0o755)
    for path in sorted(folder.rglob("*"), reverse=True):
        os.utime(path, (STAMP, STAMP))


@pytest.fixture
def s3_archive(
    tmp_path: Path, s3_env: dict[str, str], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Archive]:
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    archive = open_archive(Settings(data_dir=tmp_path / "data", store_url=f"s3://{bucket}/p"))
    yield archive
    archive.engine.dispose()


def test_an_s3_archive_keeps_task_outputs_in_the_bucket(s3_archive, s3_env, bucket) -> None:
    files = s3_archive.task_files
    assert isinstance(files, StoreTaskFiles)
    task_id, folder = make_task(s3_archive, files=FILES)
    write_tree(folder, FILES)
    assert files.import_folder(task_id, folder) == 6  # hidden ones are not outputs
    keys = radosgw.keys(s3_env, bucket)
    for rel, data in FILES.items():
        if not rel.startswith(".") and "/." not in rel:
            assert f"p/blobs/{hashlib.sha256(data).hexdigest()}" in keys
    assert hashlib.sha256(b"never listed").hexdigest() not in "".join(keys)


def test_listing_manifest_and_tgz_are_those_of_the_local_folder(s3_archive, tmp_path) -> None:
    store_files = s3_archive.task_files
    assert isinstance(store_files, StoreTaskFiles)
    task_id, folder = make_task(s3_archive)
    write_tree(folder, FILES)
    local = LocalTaskFiles(s3_archive.settings.tasks_dir)
    store_files.import_folder(task_id, folder)
    for rel in ("", "a", "a/b"):
        lp, sp = local.stat(task_id, rel), store_files.stat(task_id, rel)
        assert lp.is_dir and sp.is_dir
        want = [(e.rel, e.size, e.mode, e.mtime) for e in local.files(lp)]
        assert [(e.rel, e.size, e.mode, e.mtime) for e in store_files.files(sp)] == want
        assert [store_files.digest(e) for e in store_files.files(sp)] == [
            local.digest(e) for e in local.files(lp)
        ]
        local_tgz = b"".join(local.folder_body(lp).stream(chunk_size=4096))
        store_tgz = b"".join(store_files.folder_body(sp).stream(chunk_size=4096, strict=True))
        assert store_tgz == local_tgz, rel
    sp = store_files.stat(task_id, "a/z.bin")
    assert not sp.is_dir and sp.size == 70_000
    assert (
        b"".join(store_files.read_range(sp, 5, 60_005, chunk_size=1000))
        == FILES["a/z.bin"][5:60_005]
    )
    with pytest.raises(NotFound, match="No such file"):
        store_files.stat(task_id, "a/nope")
    with pytest.raises(NotFound, match="No such file"):
        store_files.stat(task_id, "a.txt/inside")
    with pytest.raises(NotFound, match="not available"):
        store_files.stat("f" * 24, "")


def test_folder_tag_follows_the_contents(s3_archive) -> None:
    files = s3_archive.task_files
    task_id, folder = make_task(s3_archive, files={"out/x.txt": b"one", "out/y.txt": b"two"})
    files.import_folder(task_id, folder)
    tag = files.folder_body(files.stat(task_id, "out")).etag
    assert files.folder_body(files.stat(task_id, "out")).etag == tag  # stable
    (folder / "out" / "x.txt").write_bytes(b"ONE")  # same size, another sha256
    os.utime(folder / "out" / "x.txt", (STAMP, STAMP))
    os.utime(folder / "out", (STAMP, STAMP))
    files.import_folder(task_id, folder)
    assert files.folder_body(files.stat(task_id, "out")).etag != tag


def tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload(files: StoreTaskFiles, task_id: str, rel: str, body: bytes, *, untar: bool) -> None:
    up = files.begin_upload(task_id)
    for i in range(0, len(body), 1000):
        up.write(body[i : i + 1000])
    up.finish(rel, untar=untar, limits=UnpackLimits(1000, 1 << 30))


def rows(archive: Archive, task_id: str) -> dict[str, str]:
    with archive.session() as s:
        return {
            r.path: r.sha256
            for r in s.query(TaskOutputFile).filter(TaskOutputFile.task_id == task_id)
        }


def test_uploads_replace_whole_entries_and_refused_ones_change_nothing(s3_archive) -> None:
    files = s3_archive.task_files
    task_id, _ = make_task(s3_archive)
    upload(files, task_id, "upload/upload.tar.gz", tgz({"a/1.txt": b"1", "b.txt": b"b"}),
           untar=True)  # fmt: skip
    assert set(rows(s3_archive, task_id)) == {"upload/a/1.txt", "upload/b.txt"}
    upload(files, task_id, "upload/upload.tar.gz", tgz({"a/2.txt": b"2"}), untar=True)
    # tar replaces what it unpacks over: the folder `a` is the new one, b.txt stays
    assert set(rows(s3_archive, task_id)) == {"upload/a/2.txt", "upload/b.txt"}
    before = rows(s3_archive, task_id)
    with pytest.raises(UnsafeUpload):
        upload(files, task_id, "upload/u.tar.gz", tgz({"../escape.txt": b"x"}), untar=True)
    with pytest.raises(BadRequest, match="is a folder"):
        upload(files, task_id, "upload/a", b"plain", untar=False)
    with pytest.raises(BadRequest, match="is a file"):
        upload(files, task_id, "upload/b.txt/c.tar.gz", tgz({"x": b"x"}), untar=True)
    assert rows(s3_archive, task_id) == before
    upload(files, task_id, "upload/notes.txt", b"hello", untar=False)
    path = files.stat(task_id, "upload/notes.txt")
    assert b"".join(files.read_range(path, 0, path.size, chunk_size=10)) == b"hello"
    assert not [p for p in s3_archive.settings.tasks_dir.rglob("*") if p.is_file()]  # no spool
    files.remove(task_id, "upload/a")
    assert set(rows(s3_archive, task_id)) == {"upload/b.txt", "upload/notes.txt"}


def test_routes_redirect_a_file_and_stream_a_folder_from_the_bucket(s3_archive) -> None:
    from brainlife.server.app import create_app

    files = s3_archive.task_files
    task_id, folder = make_task(s3_archive, files=FILES)
    write_tree(folder, FILES)
    files.import_folder(task_id, folder)
    expected = b"".join(
        LocalTaskFiles(s3_archive.settings.tasks_dir)
        .folder_body(LocalTaskFiles(s3_archive.settings.tasks_dir).stat(task_id, "a"))
        .stream(chunk_size=1 << 16)
    )
    with TestClient(create_app(archive=s3_archive)) as http:
        base = f"/api/amaretti/task/download/{task_id}"
        r = http.get(f"{base}/a/z.bin", headers=auth(s3_archive), follow_redirects=False)
        assert r.status_code == 307
        location = r.headers["location"]
        assert "X-Amz-Signature=" in location and "z.bin" in location
        r = http.get(f"{base}/a", headers=auth(s3_archive))
        assert r.status_code == 200 and r.content == expected
        r = http.get(f"{base}/a", headers={**auth(s3_archive), "Range": "bytes=100-"})
        assert r.status_code == 206 and r.content == expected[100:]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(expected))) as members:
            assert sorted(m.name for m in members if m.isfile()) == ["b/deep.txt", "z.bin"]
        m = http.get(f"/api/amaretti/task/manifest/{task_id}/a", headers=auth(s3_archive))
        assert m.status_code == 200
        got = {f["path"]: f["sha256"] for f in m.json()["files"]}
        assert got == {
            "b/deep.txt": hashlib.sha256(b"deep").hexdigest(),
            "z.bin": hashlib.sha256(FILES["a/z.bin"]).hexdigest(),
        }
    # the presigned URL itself gives the bytes
    import urllib.request

    with urllib.request.urlopen(location, timeout=30) as resp:
        assert resp.read() == FILES["a/z.bin"]
