"""Safe, streaming extraction of the tar archives the server sends, and the checks that keep an
error page from ever being fed to tar.

No member may leave the destination: absolute names, ``..`` components and links pointing outside
are refused, devices and FIFOs are skipped, set-uid bits are dropped.
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from brainlife.client._exceptions import DiskFullError, ProtocolError

__all__ = [
    "ChunkReader",
    "check_archive_start",
    "extract_tar_stream",
    "human_size",
    "safe_relpath",
    "write_all",
    "write_chunks",
]

WRITE_CHUNK = 1 << 20
#: Bytes per write(2). Bodies are received in 1 MiB buffers, but handed to the kernel in 16 KiB
#: slices: with large writes, Linux (6.x, ext4 large folios) backs the page cache with
#: high-order pages, and on virtual machines whose free memory goes back to the host (balloon
#: free-page reporting) every such page is cold and faults in the host on first touch. On this
#: project's machines a 1 GiB file took 1.7-2.3 s to write in 1 MiB writes and 0.5-0.8 s in
#: 16 KiB writes (curl writes 16 KiB at a time); on tmpfs the two were the same. See
#: bench/RESULTS.md ("Why writes are sliced").
WRITE_SIZE = 16 << 10


def write_all(fd: int, data: memoryview) -> None:
    """Write all of ``data`` to ``fd`` in ``WRITE_SIZE`` slices (short writes are continued)."""
    end = len(data)
    pos = 0
    write = os.write
    while pos < end:
        pos += write(fd, data[pos : pos + WRITE_SIZE])


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


class ChunkReader:
    """A read()-able object over an iterator of byte chunks (with an already-read prefix)."""

    def __init__(self, chunks: Iterator[bytes], prefix: bytes = b"") -> None:
        self._chunks = chunks
        self._buf = bytearray(prefix)
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
            else:
                self._buf += chunk
        if size < 0 or size >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:size])
            del self._buf[:size]
        return out


def safe_relpath(name: str) -> PurePosixPath | None:
    """A member name as a safe relative path; None for the archive root itself. Raises for names
    that would leave the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ProtocolError(f"The archive is unsafe: member {name!r} has an absolute path.")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise ProtocolError(f"The archive is unsafe: member {name!r} points outside the folder.")
    return PurePosixPath(*parts) if parts else None


def _disk_full(path: Path, needed: int | None, exc: OSError) -> DiskFullError:
    try:
        free: int | None = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
    except OSError:
        free = None
    need = f" It needs {human_size(needed)}" if needed else ""
    has = f"; {human_size(free)} is free" if free is not None else ""
    return DiskFullError(
        f"The disk is full: no space left while writing {path}.{need}{has}. Free some space or "
        "download to another folder (-d).",
        needed=needed,
        free=free,
    )


def human_size(n: float | None) -> str:
    """Bytes for people, in powers of 1000: ``512 B``, ``1.5 MB``, ``2.0 TB``."""
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def write_chunks(
    path: Path,
    chunks: Iterator[bytes],
    *,
    needed: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    mode: int = 0o644,
) -> int:
    """Write chunks to a new file; ENOSPC/EDQUOT become DiskFullError. Returns the byte count."""
    written = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            for chunk in chunks:
                write_all(fd, memoryview(chunk))
                written += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(path, needed, exc) from exc
        raise
    return written


def _member_chunks(fileobj: tarfile.ExFileObject) -> Iterator[bytes]:
    while True:
        chunk = fileobj.read(WRITE_CHUNK)
        if not chunk:
            return
        yield chunk


def extract_tar_stream(reader: ChunkReader, dest: Path, *, needed: int | None = None) -> list[str]:
    """Extract a (possibly compressed) tar read sequentially from ``reader`` into ``dest``.
    Returns the relative paths of the regular files written."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    files: list[str] = []
    try:
        archive = tarfile.open(  # noqa: SIM115 (closed in the finally below)
            fileobj=reader,
            mode="r|*",
            bufsize=WRITE_CHUNK,  # type: ignore[call-overload]
        )
    except tarfile.TarError as exc:
        raise ProtocolError(f"The server's answer is not a readable tar archive ({exc}).") from exc
    try:
        for member in archive:
            rel = safe_relpath(member.name)
            if rel is None:
                continue
            target = root / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.issym() or member.islnk():
                link = PurePosixPath(member.linkname)
                base = rel.parent if member.issym() else PurePosixPath()
                if link.is_absolute() or safe_relpath(str(base / link)) is None:
                    raise ProtocolError(
                        f"The archive is unsafe: link {member.name!r} points "
                        f"outside the folder ({member.linkname})."
                    )
                if member.issym():
                    target.unlink(missing_ok=True)
                    os.symlink(member.linkname, target)
                else:
                    source = root / safe_relpath(member.linkname)  # type: ignore[operator]
                    target.unlink(missing_ok=True)
                    os.link(source, target)
                    files.append(rel.as_posix())
                continue
            if not member.isfile():
                continue  # devices, FIFOs: never created
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            target.unlink(missing_ok=True)
            write_chunks(
                target, _member_chunks(extracted), needed=needed, mode=(member.mode & 0o777) | 0o600
            )
            os.utime(target, (member.mtime, member.mtime))
            files.append(rel.as_posix())
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(dest / "x", needed, exc) from exc
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError | EOFError):
            raise
        raise ProtocolError(
            f"The archive from the server is truncated or corrupt ({exc}). Try again."
        ) from exc
    finally:
        archive.close()
    return files
