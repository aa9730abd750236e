"""The data-object tar: layout, extraction by Python and GNU tar, determinism, byte ranges."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from brainlife.server.errors import RangeNotSatisfiable
from brainlife.server.ranges import parse_range
from brainlife.server.tarstream import BLOCK, TarLayout, TarMember, epoch_seconds
from tests.server._bytes_factories import WHEN, auth, make_dataset, make_project

LONG_DIR = "sub-01/" + "d" * 120 + "/" + "e" * 90
FILES: dict[str, bytes] = {
    "t1.nii.gz": os.urandom(3000),
    "empty.txt": b"",
    "exact.bin": b"x" * BLOCK,
    "one-more.bin": b"y" * (BLOCK + 1),
    f"{LONG_DIR}/{'n' * 150}.json": b'{"long": true}',
    "ünïcode/ファイル.txt": "héllo".encode(),
    "nested/dir/dwi.bvals": b"0 1000 1000\n",
}


def _layout(archive, files: dict[str, bytes], mtime: int = 1_700_000_000) -> TarLayout:
    members = []
    for path, data in files.items():
        sha, size = archive.store.put_bytes(data)
        members.append(TarMember(path=path, size=size, sha256=sha))
    return TarLayout(members, mtime)


def _tar_bytes(archive, layout: TarLayout, chunk_size: int = 1024 * 1024) -> bytes:
    return b"".join(layout.iter_bytes(archive.store, chunk_size=chunk_size))


def test_size_is_exact_and_bytes_are_deterministic(archive):
    layout = _layout(archive, FILES)
    first = _tar_bytes(archive, layout)
    again = _tar_bytes(archive, _layout(archive, FILES))
    assert len(first) == layout.size
    assert first == again
    assert layout.etag == _layout(archive, FILES).etag
    assert layout.size % BLOCK == 0
    # the archive ends with two zero blocks
    assert first[-2 * BLOCK :] == bytes(2 * BLOCK)


def test_etag_changes_with_content_mode_and_mtime(archive):
    base = _layout(archive, {"a": b"1"})
    assert _layout(archive, {"a": b"2"}).etag != base.etag
    assert _layout(archive, {"a": b"1"}, mtime=5).etag != base.etag
    sha, size = archive.store.put_bytes(b"1")
    assert TarLayout([TarMember("a", size, sha, 0o755)], base.mtime).etag != base.etag


def test_python_tarfile_extracts_exactly_the_files(archive):
    layout = _layout(archive, FILES)
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(archive, layout)), mode="r:") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == list(FILES)
        for member in members:
            assert member.isreg()
            assert member.mtime == 1_700_000_000
            assert member.mode == 0o644
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert extracted.read() == FILES[member.name]


def test_system_tar_extracts_exactly_the_files(archive, tmp_path: Path):
    layout = _layout(archive, FILES)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        ["tar", "-x", "-f", "-", "-C", str(out)],
        input=_tar_bytes(archive, layout),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    found = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert found == FILES
    assert (out / "t1.nii.gz").stat().st_mtime == 1_700_000_000


def test_mode_is_kept(archive, tmp_path: Path):
    sha, size = archive.store.put_bytes(b"#!/bin/sh\n")
    layout = TarLayout([TarMember("run.sh", size, sha, 0o755)], 0)
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(archive, layout))) as tar:
        assert tar.getmember("run.sh").mode == 0o755


def test_empty_object_is_just_the_end_blocks(archive):
    layout = TarLayout([], 0)
    assert layout.size == 2 * BLOCK
    assert _tar_bytes(archive, layout) == bytes(2 * BLOCK)


def test_every_byte_range_matches_the_whole(archive):
    files = {"a.txt": b"hello", "b.bin": os.urandom(1500), "c": b"", "d": os.urandom(700)}
    layout = _layout(archive, files)
    whole = _tar_bytes(archive, layout)
    for chunk_size in (1, 100, 512, 4096):
        assert _tar_bytes(archive, layout, chunk_size) == whole
    for start in range(0, layout.size + 1, 97):
        for end in (start, start + 1, start + 511, start + 1500, layout.size):
            got = b"".join(layout.iter_bytes(archive.store, start, end, chunk_size=256))
            assert got == whole[start:end], (start, end)


def test_chunks_stay_near_chunk_size(archive):
    big = os.urandom(5 * 1024 * 1024 + 123)
    layout = _layout(archive, {"small": b"s" * 10, "big.nii.gz": big, "tail": b"t"})
    chunk = 1024 * 1024
    sizes = [len(c) for c in layout.iter_bytes(archive.store, chunk_size=chunk)]
    assert sum(sizes) == layout.size
    assert max(sizes) <= chunk + 4 * BLOCK
    assert sizes.count(chunk) >= 4  # large blobs go out in full chunks


def test_short_blob_cuts_the_stream(archive):
    data = os.urandom(2000)
    sha = hashlib.sha256(data).hexdigest()
    archive.store.put_bytes(data)
    layout = TarLayout([TarMember("f", 5000, sha)], 0)  # the manifest claims more
    with pytest.raises(OSError, match="shorter"):
        b"".join(layout.iter_bytes(archive.store))


def test_epoch_seconds_treats_naive_as_utc():
    assert epoch_seconds(WHEN.replace(tzinfo=None)) == epoch_seconds(WHEN) == 1715949000


# --- Range header parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=10-", (10, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("bytes=999-999", (999, 1000)),
        ("BYTES = 5 - 9", (5, 10)),
        ("bytes=9-5", None),  # invalid: ignored
        ("bytes=0-1,5-6", None),  # several ranges: the whole body
        ("items=0-5", None),
        ("bytes=-", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_parse_range_unsatisfiable(header):
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, 1000)
    assert info.value.size == 1000


def test_if_range():
    assert parse_range("bytes=5-", 10, if_range='"abc"', etag='"abc"') == (5, 10)
    assert parse_range("bytes=5-", 10, if_range='"old"', etag='"abc"') is None
    assert parse_range("bytes=5-", 10, if_range="Wed, 21 Oct 2015 07:28:00 GMT", etag='"a"') is None


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def stored(archive):
    pid = make_project(archive)
    files = {"t1.nii.gz": os.urandom(200_000), "mask.nii.gz": os.urandom(70_001), "x.json": b"{}"}
    did = make_dataset(archive, pid, list(files.items()))
    return did, files


def test_http_full_download_extracts(archive, http, stored):
    did, files = stored
    r = http.get(f"/api/warehouse/dataset/download/{did}", headers=auth(archive))
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
        assert got == files
        assert {m.mtime for m in tar.getmembers()} == {epoch_seconds(WHEN)}
    again = http.get(f"/api/warehouse/dataset/download/{did}", headers=auth(archive))
    assert again.content == r.content
    assert again.headers["etag"] == r.headers["etag"]


def test_http_ranges_reassemble(archive, http, stored):
    did, _files = stored
    url = f"/api/warehouse/dataset/download/{did}"
    whole = http.get(url, headers=auth(archive)).content
    size = len(whole)
    h = auth(archive)
    parts = [
        http.get(url, headers={**h, "Range": "bytes=0-999"}),
        http.get(url, headers={**h, "Range": f"bytes=1000-{size // 2}"}),
        http.get(url, headers={**h, "Range": f"bytes={size // 2 + 1}-{size - 101}"}),
        http.get(url, headers={**h, "Range": "bytes=-100"}),
    ]
    assert [p.status_code for p in parts] == [206] * 4
    assert parts[0].headers["content-range"] == f"bytes 0-999/{size}"
    assert parts[3].headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert all(int(p.headers["content-length"]) == len(p.content) for p in parts)
    assert b"".join(p.content for p in parts) == whole
    tail = http.get(url, headers={**h, "Range": "bytes=12345-"})
    assert tail.status_code == 206
    assert tail.content == whole[12345:]


def test_http_unsatisfiable_range(archive, http, stored):
    did, _files = stored
    url = f"/api/warehouse/dataset/download/{did}"
    size = int(http.head(url, headers=auth(archive)).headers["content-length"])
    r = http.get(url, headers={**auth(archive), "Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"
    assert "message" in r.json()


def test_http_if_range(archive, http, stored):
    did, _files = stored
    url = f"/api/warehouse/dataset/download/{did}"
    etag = http.head(url, headers=auth(archive)).headers["etag"]
    h = {**auth(archive), "Range": "bytes=10-19"}
    assert http.get(url, headers={**h, "If-Range": etag}).status_code == 206
    stale = http.get(url, headers={**h, "If-Range": '"something-else"'})
    assert stale.status_code == 200
    assert "content-range" not in stale.headers


# --- non-blocking reads (page cache on the event loop, disk reads in threads) ----------------


@pytest.mark.parametrize("nowait_supported", [True, False])
def test_nonblocking_chunks_carry_the_same_bytes(archive, monkeypatch, nowait_supported):
    from brainlife.server import tarstream

    if not nowait_supported:
        monkeypatch.setattr(tarstream, "_nowait_supported", False)
    files = {"a": os.urandom(3_000_000), "b": b"small", "c": os.urandom(1_500_000)}
    layout = _layout(archive, files)
    whole = _tar_bytes(archive, layout)
    for start, end in [(0, layout.size), (700, 2_500_000), (layout.size - 10, layout.size)]:
        items = list(layout.iter_chunks(archive.store, start, end, 1024 * 1024, nonblocking=True))
        data = [bytes(c) for c in items if c is not None]
        assert b"".join(data) == whole[start:end]
        if not nowait_supported and start == 0:
            assert items.count(None) >= 5  # every blob read is handed to a thread


def test_read_range_without_a_file_descriptor():
    from brainlife.server.tarstream import read_range

    data = os.urandom(10_000)
    got = list(read_range(io.BytesIO(data), 100, 9_000, chunk_size=4096, nonblocking=True))
    assert b"".join(bytes(c) for c in got if c is not None) == data[100:9_000]
    assert got[0] is None  # no fd: the caller must read in a thread
    with pytest.raises(OSError, match="shorter"):
        list(read_range(io.BytesIO(data), 0, 20_000, chunk_size=4096))
