"""Unpacking an uploaded archive (the official CLI's `upload.tar.gz`) into a fresh folder, safely.

Nothing may leave the folder, whatever the archive holds:

- member names follow the rule the client applies to what it downloads
  (`brainlife.wire.tarnames`): absolute names and `..` are refused;
- links: a symbolic link is made only if its target lies inside the folder, lexically and once
  every link on the way is followed (`os.path.realpath`); a hard link only to a regular file
  already unpacked inside; every other link is refused;
- nothing is written through a link: a member whose folder resolves anywhere but where its
  name says is refused (a link `a -> .` followed by `a/../x` never reaches outside);
- devices, FIFOs and other special members are refused; set-uid/gid bits are dropped;
- the member count, the unpacked bytes and each path's length are bounded
  (`Settings.max_upload_members`, `max_upload_unpacked_bytes`, 1024 bytes as a stored path).

Any refusal raises `UnsafeUpload` (a 400) and the caller removes the folder: an archive is
unpacked whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from brainlife.server.errors import BadRequest
from brainlife.wire.tarnames import UnsafeMember, link_target, member_path

#: the longest member path (bytes): a data object's stored path (`DatasetFile.path`)
MAX_PATH = 1024
_CHUNK = 1024 * 1024


class UnsafeUpload(BadRequest):
    """The uploaded archive is refused (unsafe member, over a bound, not an archive)."""


@dataclass(frozen=True)
class UnpackLimits:
    max_members: int
    max_bytes: int


@dataclass
class Unpacked:
    files: int = 0
    folders: int = 0
    links: int = 0
    bytes: int = 0


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root + os.sep)


def unpack(fileobj: IO[bytes], dest: Path, limits: UnpackLimits) -> Unpacked:
    """Unpack the (gzip, bzip2, xz or plain) tar read from `fileobj` into the empty folder
    `dest`. Raises `UnsafeUpload`; `OSError` (a full disk) passes through."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    done = Unpacked()
    try:
        archive = tarfile.open(fileobj=fileobj, mode="r|*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise UnsafeUpload(f"The upload is not a tar or tar.gz archive ({exc}).") from None
    try:
        for count, member in enumerate(archive, 1):
            if count > limits.max_members:
                raise UnsafeUpload(
                    f"The upload holds more than {limits.max_members} members (files, folders "
                    "and links); this archive accepts at most that many in one upload."
                )
            _unpack_member(archive, member, root, limits, done)
    except UnsafeMember as exc:
        raise UnsafeUpload(f"The upload is refused: {exc}.") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise UnsafeUpload(f"The upload is truncated or not a valid archive ({exc}).") from None
    finally:
        archive.close()
    return done


def _checked_target(root: str, rel: PurePosixPath) -> str:
    """The absolute path of `rel` under `root`, refused if its folder resolves elsewhere (a
    link on the way)."""
    text = str(rel)
    if len(text.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise UnsafeUpload(
            f"The upload is refused: member {text[:60]!r}… is longer than 1024 bytes."
        )
    target = os.path.join(root, text)
    parent = os.path.dirname(target)
    if os.path.realpath(parent) != os.path.normpath(parent) or not _inside(root, parent):
        raise UnsafeUpload(
            f"The upload is refused: member {text!r} would be written through a link."
        )
    return target


def _unpack_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    root: str,
    limits: UnpackLimits,
    done: Unpacked,
) -> None:
    rel = member_path(member.name)
    if rel is None:
        return  # the folder itself ("./")
    if member.isdir():
        target = _checked_target(root, rel)
        if os.path.islink(target):
            raise UnsafeUpload(f"The upload is refused: folder {str(rel)!r} is also a link.")
        os.makedirs(target, exist_ok=True)
        done.folders += 1
        return
    if member.isfile():
        target = _checked_target(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _check_bytes(done.bytes + member.size, limits)
        _replace(target)
        extracted = archive.extractfile(member)
        with open(target, "xb") as out:
            while extracted is not None and (chunk := extracted.read(_CHUNK)):
                done.bytes += len(chunk)
                _check_bytes(done.bytes, limits)
                out.write(chunk)
        os.chmod(target, (member.mode & 0o777) | 0o600)
        done.files += 1
        return
    if member.issym() or member.islnk():
        pointed = link_target(rel, member.linkname, symbolic=member.issym())
        target = _checked_target(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        real = os.path.realpath(os.path.join(root, str(pointed)))
        if not _inside(root, real):
            raise UnsafeUpload(
                f"The upload is refused: link {str(rel)!r} points outside the folder "
                f"({member.linkname})."
            )
        _replace(target)
        if member.issym():
            os.symlink(member.linkname, target)
            # followed once made: a link through other links that ends outside goes
            if not _inside(root, os.path.realpath(target)):
                os.unlink(target)
                raise UnsafeUpload(
                    f"The upload is refused: link {str(rel)!r} leads outside the folder."
                )
        else:
            if not os.path.isfile(real) or os.path.islink(os.path.join(root, str(pointed))):
                raise UnsafeUpload(
                    f"The upload is refused: hard link {str(rel)!r} does not point at a file "
                    "unpacked before it."
                )
            os.link(real, target)
        done.links += 1
        return
    kind = (
        "device" if member.ischr() or member.isblk() else "FIFO" if member.isfifo() else "special"
    )
    raise UnsafeUpload(
        f"The upload is refused: member {member.name!r} is a {kind} file; only files, folders "
        "and links inside the folder are accepted."
    )


def _check_bytes(total: int, limits: UnpackLimits) -> None:
    if total > limits.max_bytes:
        raise UnsafeUpload(
            f"The upload unpacks to more than {limits.max_bytes} bytes; this archive accepts at "
            "most that much in one upload."
        )


def _replace(target: str) -> None:
    """Make room for a member named like an earlier one (tar's last-wins rule): a file or link
    is removed; a folder is refused."""
    if os.path.islink(target) or os.path.isfile(target):
        os.unlink(target)
    elif os.path.exists(target):
        raise UnsafeUpload(
            f"The upload is refused: {os.path.basename(target)!r} is both a folder and a file."
        )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
