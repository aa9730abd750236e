from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from brainlife.client import ProtocolError
from brainlife.client.transfer.tarstream import ChunkReader, check_archive_start, extract_tar_stream


def make_tar(members: list[tuple[str, bytes | None, str | None]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def extract(blob: bytes, dest: Path) -> list[str]:
    chunks = iter([blob[i : i + 1000] for i in range(0, len(blob), 1000)])
    head = next(chunks)
    check_archive_start(head, what="a tar")
    return extract_tar_stream(ChunkReader(chunks, head), dest)


@pytest.mark.parametrize("gz", [False, True])
def test_extracts_plain_and_gzip(tmp_path: Path, gz: bool) -> None:
    blob = make_tar(
        [
            ("./t1.nii.gz", b"x" * 5000, None),
            ("sub", None, None),
            ("sub/a.txt", b"a", None),
            ("link", None, "sub/a.txt"),
        ],
        gz=gz,
    )
    files = extract(blob, tmp_path / "out")
    assert files == ["t1.nii.gz", "sub/a.txt"]
    assert (tmp_path / "out" / "t1.nii.gz").read_bytes() == b"x" * 5000
    assert (tmp_path / "out" / "link").read_text() == "a"


@pytest.mark.parametrize(
    "member",
    [
        ("../evil", b"x", None),
        ("/abs", b"x", None),
        ("a/../../evil", b"x", None),
        ("l", None, "../../etc/passwd"),
        ("l", None, "/etc/passwd"),
    ],
)
def test_refuses_members_leaving_the_folder(
    tmp_path: Path, member: tuple[str, bytes | None, str | None]
) -> None:
    with pytest.raises(ProtocolError, match="unsafe"):
        extract(make_tar([member]), tmp_path / "out")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    ("head", "match"),
    [
        (b"<!DOCTYPE html><html><title>502</title>", "HTML page"),
        (b'{"message":"status it not stored"}', "JSON document"),
        (b"", "empty"),
        (b"hello world" * 100, "does not start like a tar"),
    ],
)
def test_error_bodies_are_never_fed_to_tar(head: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        check_archive_start(head, what="a tar")


def test_truncated_archive(tmp_path: Path) -> None:
    blob = make_tar([("big", b"y" * 100_000, None)], gz=True)
    with pytest.raises(ProtocolError, match="truncated or corrupt"):
        extract(blob[: len(blob) // 2], tmp_path / "out")


def test_gzip_detected() -> None:
    assert check_archive_start(gzip.compress(b"abc"), what="x") == "gz"


@pytest.mark.parametrize("where", ["tmp_path", "/dev/shm"])
def test_write_size_follows_the_file_system(tmp_path: Path, where: str) -> None:
    """Whole buffers on tmpfs, 16 KiB slices elsewhere (as `stat -f` names the file system)."""
    import os
    import subprocess

    from brainlife.client.transfer.writes import WRITE_CHUNK, WRITE_SIZE, write_all, write_size

    folder = tmp_path if where == "tmp_path" else Path(where)
    kind = subprocess.run(
        ["stat", "-f", "-c", "%T", str(folder)], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = folder / f"bl-write-size-test-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert write_size(fd) == (WRITE_CHUNK if kind in ("tmpfs", "ramfs") else WRITE_SIZE)
        data = os.urandom(100_000)
        write_all(fd, memoryview(data), 4096)
    finally:
        os.close(fd)
    try:
        assert path.read_bytes() == data
    finally:
        path.unlink()
