"""Safe, streaming extraction of the tar archives the server sends, and the checks that keep an
error page from ever being fed to tar.

No member may leave the destination: absolute names, ``..`` components and links pointing outside
are refused, devices and FIFOs are skipped, set-uid bits are dropped.
"""

from __future__ import annotations

import errno
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from brainlife.client._exceptions import ProtocolError
from brainlife.client.transfer.writes import WRITE_CHUNK, disk_full, write_chunks
from brainlife.wire.tarnames import UnsafeMember, member_path

__all__ = [
    "BLOCK",
    "ChunkReader",
    "MemberLog",
    "check_archive_start",
    "extract_tar_stream",
    "padded",
    "reject_error_page",
    "safe_relpath",
]

#: tar's record unit: headers are one block, member data is padded to a whole number of blocks
BLOCK = 512


def _describe_error_body(head: bytes) -> str | None:
    text = head.lstrip()[:1].decode("latin-1")
    if text == "<":
        return "an HTML page"
    if text in "{[" and text:
        return "a JSON document"
    return None


def _tar_header_ok(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    return stored == computed


def check_archive_start(head: bytes, *, what: str) -> str:
    """The archive's compression (``"gz"``, ``"bz2"``, ``"xz"`` or ``"tar"``) judged from its first
    bytes; raises ProtocolError for anything that is not an archive (error pages above all)."""
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if _tar_header_ok(head):
        return "tar"
    if not head:
        raise ProtocolError(f"The server sent an empty answer instead of {what}.")
    kind = _describe_error_body(head)
    if kind:
        snippet = head[:200].decode("utf-8", errors="replace").strip().replace("\n", " ")
        raise ProtocolError(f"The server sent {kind} instead of {what}: {snippet[:160]}")
    raise ProtocolError(
        f"The server's answer is not {what} (it does not start like a tar or gzip)."
    )


def reject_error_page(resp: Any, what: str) -> None:
    """Raise ProtocolError when a 2xx answer is an HTML or JSON page instead of an archive."""
    ctype = resp.headers.get("Content-Type", "").lower()
    if ctype.startswith(("text/html", "application/json")):
        body = resp.read(4096, decode_content=True).decode("utf-8", errors="replace")
        kind = "an HTML page" if "html" in ctype else "a JSON document"
        snippet = " ".join(body.split())[:160]
        raise ProtocolError(f"The server sent {kind} instead of {what}: {snippet}")


class ChunkReader:
    """A read()-able object over an iterator of byte chunks (with an already-read prefix).

    ``read(n)`` returns as soon as it has something, like a raw stream (fewer than ``n`` bytes
    only at the end or when the chunk at hand is shorter): tarfile keeps reading until it has
    what it needs, and when the body is cut off the bytes that did arrive have already been
    handed over and written, not lost in a buffer waiting to fill up."""

    def __init__(self, chunks: Iterator[bytes], prefix: bytes = b"") -> None:
        self._chunks = chunks
        self._buf = bytearray(prefix)
        self._eof = False

    def _fill(self, size: int) -> None:
        while not self._eof and (size < 0 or len(self._buf) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
            else:
                self._buf += chunk

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end), left to be read."""
        self._fill(size)
        return bytes(self._buf[:size])

    def read(self, size: int = -1) -> bytes:
        self._fill(size if size < 0 else min(size, 1))
        if size < 0 or size >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:size])
            del self._buf[:size]
        return out


def safe_relpath(name: str) -> PurePosixPath | None:
    """A member name as a safe relative path; None for the archive root itself. Raises for names
    that would leave the destination (the rule both sides share: `brainlife.wire.tarnames`)."""
    try:
        return member_path(name)
    except UnsafeMember as exc:
        raise ProtocolError(f"The archive is unsafe: {exc}.") from None


#: bytes per read of a member's data: what a cut-off body can leave unwritten is about this
#: much (plus the chunk tarfile holds), so a resumed member is sent again from there
MEMBER_READ = 64 << 10


def _member_chunks(fileobj: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = fileobj.read(MEMBER_READ)
        if not chunk:
            return
        yield chunk


class MemberLog(Protocol):
    """Told of each member as it is extracted, with archive offsets (for resuming)."""

    def start(self, rel: str, size: int, data: int, mode: int, mtime: float) -> None:
        """A regular file begins: its data starts at archive offset ``data``."""

    def end(self, rel: str, next_header: int, *, is_file: bool) -> None:
        """A member is complete on disk; the next header starts at ``next_header``."""


def padded(size: int) -> int:
    """A member's data size rounded up to whole tar blocks."""
    return -(-size // BLOCK) * BLOCK


def extract_tar_stream(
    reader: ChunkReader,
    dest: Path,
    *,
    needed: int | None = None,
    log: MemberLog | None = None,
    base: int = 0,
    compression: str = "*",
) -> list[str]:
    """Extract a (possibly compressed) tar read sequentially from ``reader`` into ``dest``.
    Returns the relative paths of the regular files written.

    ``base`` is the archive offset where ``reader`` starts (a header, when a download resumes
    mid-archive: then ``compression`` is ``""``, a plain tar); ``log`` hears of every member."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    files: list[str] = []
    if base and not any(reader.peek(BLOCK)):
        return files  # resumed right at the end-of-archive blocks: nothing is left
    try:
        archive = tarfile.open(  # noqa: SIM115 (closed in the finally below)
            fileobj=reader,
            mode=f"r|{compression}",
            bufsize=WRITE_CHUNK,  # type: ignore[call-overload]
        )
    except tarfile.TarError as exc:
        raise ProtocolError(f"The server's answer is not a readable tar archive ({exc}).") from exc
    try:
        for member in archive:
            rel = safe_relpath(member.name)
            if rel is None:
                continue
            next_header = base + member.offset_data + padded(member.size if member.isreg() else 0)
            target = root / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                is_file = False
            elif member.issym() or member.islnk():
                target.parent.mkdir(parents=True, exist_ok=True)
                _link(root, rel, member, target)
                is_file = member.islnk()
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                if not _write_member(archive, member, rel, target, base, needed, log):
                    continue
                is_file = True
            else:
                continue  # devices, FIFOs: never created
            if is_file:
                files.append(rel.as_posix())
            if log is not None:
                log.end(rel.as_posix(), next_header, is_file=is_file)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(dest / "x", needed, exc) from exc
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError | EOFError):
            raise
        raise ProtocolError(
            f"The archive from the server is truncated or corrupt ({exc}). Try again."
        ) from exc
    finally:
        archive.close()
    return files


def _link(root: Path, rel: PurePosixPath, member: tarfile.TarInfo, target: Path) -> None:
    """A symbolic or hard link member, refused when it points outside the folder."""
    link = PurePosixPath(member.linkname)
    base_dir = rel.parent if member.issym() else PurePosixPath()
    if link.is_absolute() or safe_relpath(str(base_dir / link)) is None:
        raise ProtocolError(
            f"The archive is unsafe: link {member.name!r} points "
            f"outside the folder ({member.linkname})."
        )
    target.unlink(missing_ok=True)
    if member.issym():
        os.symlink(member.linkname, target)
    else:
        os.link(root / safe_relpath(member.linkname), target)  # type: ignore[operator]


def _write_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    rel: PurePosixPath,
    target: Path,
    base: int,
    needed: int | None,
    log: MemberLog | None,
) -> bool:
    """A regular file member written (False: the archive has no data for it)."""
    extracted = archive.extractfile(member)
    if extracted is None:
        return False
    mode = (member.mode & 0o777) | 0o600
    if log is not None:
        log.start(rel.as_posix(), member.size, base + member.offset_data, mode, member.mtime)
    target.unlink(missing_ok=True)
    write_chunks(target, _member_chunks(extracted), needed=needed, mode=mode)
    os.utime(target, (member.mtime, member.mtime))
    return True
