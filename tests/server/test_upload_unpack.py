"""Unpacking an uploaded archive (`server.uploadtar`): every hostile member is refused and
nothing ever lands outside the folder; the member/byte bounds hold; the shared name rule
(`wire.tarnames`) is the one the client applies too."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from brainlife.server.uploadtar import UnpackLimits, UnsafeUpload, unpack
from brainlife.wire.tarnames import UnsafeMember, link_target, member_path

LIMITS = UnpackLimits(max_members=100, max_bytes=10_000_000)


def _tgz(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw.seek(0)
    return raw


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A folder to unpack into, inside a parent whose other files must stay untouched."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "outside.txt").write_text("precious")
    return root / "box" / "dest"


def _nothing_outside(box: Path) -> None:
    parent = box.parent.parent
    names = sorted(p.name for p in parent.iterdir())
    assert names == ["box", "outside.txt"]
    assert (parent / "outside.txt").read_text() == "precious"
    assert not (parent / "escape.txt").exists()
    assert all(p.name in ("dest", "d2") for p in box.parent.iterdir())


def test_a_plain_tgz_unpacks_files_and_folders(box: Path) -> None:
    done = unpack(_tgz(_file("t1.nii.gz", b"abc"), _file("sub/dwi.bvals", b"1 2")), box, LIMITS)
    assert (box / "t1.nii.gz").read_bytes() == b"abc"
    assert (box / "sub" / "dwi.bvals").read_bytes() == b"1 2"
    assert (done.files, done.bytes) == (2, 6)


@pytest.mark.parametrize(
    "name", ["../escape.txt", "a/../../escape.txt", "/etc/evil", "\\evil", "C:evil", "./../x"]
)
def test_names_leaving_the_folder_are_refused(box: Path, name: str) -> None:
    with pytest.raises(UnsafeUpload, match="refused"):
        unpack(_tgz(_file(name)), box, LIMITS)
    _nothing_outside(box)


@pytest.mark.parametrize("target", ["../outside.txt", "/etc/passwd", "a/../../x", "../.."])
def test_symlinks_pointing_out_are_refused(box: Path, target: str) -> None:
    with pytest.raises(UnsafeUpload, match=r"outside|refused"):
        unpack(_tgz(_link("ln", target)), box, LIMITS)
    assert not (box / "ln").is_symlink()


def test_a_file_written_through_a_link_is_refused(box: Path) -> None:
    # `up` points at the folder itself (inside); `up/../x` would then land in the parent
    with pytest.raises(UnsafeUpload):
        unpack(_tgz(_link("up", "."), _file("up/../escape.txt")), box, LIMITS)
    _nothing_outside(box)
    # a link to a sub-folder: writing through it is refused too (no aliasing of paths)
    with pytest.raises(UnsafeUpload, match="through a link"):
        unpack(_tgz(_file("d/a"), _link("l", "d"), _file("l/b")), box.parent / "d2", LIMITS)


def test_a_symlink_chain_that_resolves_outside_is_refused(box: Path) -> None:
    # `q -> .` is inside; `a -> q/..` is lexically inside but resolves to the parent
    with pytest.raises(UnsafeUpload):
        unpack(_tgz(_link("q", "."), _link("a", "q/..")), box, LIMITS)
    assert not (box / "a").exists()


def test_hard_links_out_or_to_nothing_are_refused(box: Path) -> None:
    with pytest.raises(UnsafeUpload):
        unpack(_tgz(_link("h", "../outside.txt", tarfile.LNKTYPE)), box, LIMITS)
    with pytest.raises(UnsafeUpload, match="hard link"):
        unpack(_tgz(_link("h", "missing", tarfile.LNKTYPE)), box.parent / "d2", LIMITS)
    _nothing_outside(box)


def test_links_inside_are_kept(box: Path) -> None:
    unpack(
        _tgz(_file("a.txt", b"A"), _link("s", "a.txt"), _link("h", "a.txt", tarfile.LNKTYPE)),
        box,
        LIMITS,
    )
    assert (box / "s").read_bytes() == b"A" and (box / "s").is_symlink()
    assert (box / "h").read_bytes() == b"A" and not (box / "h").is_symlink()


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(box: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("dev")
    info.type = kind
    with pytest.raises(UnsafeUpload, match=r"device|FIFO"):
        unpack(_tgz((info, None)), box, LIMITS)
    assert not (box / "dev").exists()


def test_the_member_count_is_bounded(box: Path) -> None:
    many = [_file(f"f{i:05d}") for i in range(101)]
    with pytest.raises(UnsafeUpload, match="more than 100 members"):
        unpack(_tgz(*many), box, LIMITS)


def test_a_gzip_bomb_stops_at_the_byte_bound(box: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 50_000_000
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = io.BytesIO(gzip.compress(raw.getvalue(), 9))
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(UnsafeUpload, match="unpacks to more than"):
        unpack(bomb, box, LIMITS)


def test_not_an_archive_and_truncated_ones_are_refused(box: Path) -> None:
    with pytest.raises(UnsafeUpload, match="not a tar"):
        unpack(io.BytesIO(b"<html>hello</html>" * 40), box, LIMITS)
    whole = _tgz(_file("a", b"x" * 100_000)).getvalue()
    with pytest.raises(UnsafeUpload, match=r"truncated|not a valid"):
        unpack(io.BytesIO(whole[: len(whole) // 2]), box.parent / "t", LIMITS)


def test_set_uid_bits_are_dropped(box: Path) -> None:
    info, data = _file("run.sh", b"#!/bin/sh\n")
    info.mode = 0o4755
    unpack(_tgz((info, data)), box, LIMITS)
    assert (box / "run.sh").stat().st_mode & 0o7777 == 0o755


def test_the_shared_name_rule() -> None:
    assert member_path("./a//b/") is not None and str(member_path("./a//b/")) == "a/b"
    assert member_path("./") is None
    for bad in ("../x", "/x", "a/../../x", "C:x", "a\x00b"):
        with pytest.raises(UnsafeMember):
            member_path(bad)
    assert str(link_target(member_path("d/l"), "../a", symbolic=True)) == "a"  # type: ignore[arg-type]
    with pytest.raises(UnsafeMember):
        link_target(member_path("l"), "../a", symbolic=True)  # type: ignore[arg-type]
