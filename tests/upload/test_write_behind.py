"""A staged file's bytes are handed to the disk as they arrive (`services.uploads._write_behind`),
so the fsync when the file is stored has little left to write: every byte is handed over once,
in order, in `WRITE_BEHIND` windows, the file and its running sha256 are exactly the bytes
written, and a system that refuses the hint changes nothing but the timing."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest

from brainlife.server.services import uploads

MIB = 1024 * 1024


def _write(tmp_path: Path, data: bytes, start: int, size: int) -> uploads.FileWrite:
    path = tmp_path / "staged"
    if start:
        path.write_bytes(data[:start])
    write = uploads.FileWrite("u", 0, path, "f.nii.gz", size, "0" * 64, start, size, hasher=None)
    write.open()
    try:
        for i in range(start, size, MIB // 3):  # odd batches: windows end mid-batch
            write.write(memoryview(data)[i : min(size, i + MIB // 3)])
    finally:
        write.close()
    return write


@pytest.mark.parametrize("start", [0, 5 * MIB + 7])
def test_every_byte_is_handed_to_the_disk_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    monkeypatch.setattr(uploads, "WRITE_BEHIND", MIB)
    handed: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        assert os.fstat(fd).st_size >= offset + length  # only bytes already written
        handed.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    size = 12 * MIB + 123
    data = os.urandom(size)
    write = _write(tmp_path, data, start, size)
    assert handed and handed[0][0] == start
    for (a, n), (b, _) in itertools.pairwise(handed):
        assert a + n == b and n >= MIB  # contiguous, one window or more each
    assert handed[-1][0] + handed[-1][1] > size - MIB  # all but the last partial window
    assert (tmp_path / "staged").read_bytes() == data
    assert write.hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_refused_hint_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "WRITE_BEHIND", MIB)

    def refuse(*_args: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    data = os.urandom(4 * MIB + 5)
    write = _write(tmp_path, data, 0, len(data))
    assert (tmp_path / "staged").read_bytes() == data
    assert write.hasher.hexdigest() == hashlib.sha256(data).hexdigest()
