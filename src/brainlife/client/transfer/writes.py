"""Writing downloaded bytes to disk: how many bytes per write(2), writing a whole buffer,
and turning a full disk into a :class:`DiskFullError` that says how much was needed and is free
(in sizes for people, :func:`human_size`)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from brainlife.client._exceptions import DiskFullError

__all__ = [
    "WRITE_CHUNK",
    "WRITE_SIZE",
    "disk_full",
    "disk_full_on_write",
    "human_size",
    "write_all",
    "write_chunks",
    "write_size",
]

WRITE_CHUNK = 1 << 20
#: Bytes per write(2). Bodies are received in 1 MiB buffers, but handed to the kernel in 16 KiB
#: slices: with large writes, Linux (6.x, ext4 large folios) backs the page cache with
#: high-order pages, and on virtual machines whose free memory goes back to the host (balloon
#: free-page reporting) such pages are cold after large frees and fault in the host on first
#: touch. On a 2-core VM of that kind (bench/RESULTS.md), a 1 GiB file took 1.7-2.3 s to write in
#: 1 MiB writes and 0.5-0.8 s in 16 KiB writes (curl writes 16 KiB at a time); with warm memory
#: 16 KiB costs about 0.25 s per GiB more than 256 KiB. 16 KiB has the smallest worst case.
#: On tmpfs (`write_size`) whole buffers are written: no block device and no cold large folios
#: there, only the number of writes counts (1 GiB to /dev/shm: 0.60 of curl with 16 KiB).
#: See docs/downloads.md ("Why 16 KiB writes") and bench/bench_write_size.py.
WRITE_SIZE = 16 << 10


#: file systems that live in memory: no block device, no large-folio page cache to fault in,
#: so the only cost of small writes is their number: whole buffers are written there
MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs"})
_fs_types: dict[int, str] = {}


def _fs_type(dev: int) -> str:
    """The file system type of device ``dev`` from /proc/self/mountinfo ("" when unknown)."""
    if dev not in _fs_types:
        wanted = f"{os.major(dev)}:{os.minor(dev)}"
        kind = ""
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    fields = line.split()
                    if len(fields) > 3 and fields[2] == wanted and " - " in line:
                        kind = line.split(" - ", 1)[1].split()[0]
                        break
        except OSError:
            pass  # not Linux: the default size
        _fs_types[dev] = kind
    return _fs_types[dev]


def write_size(fd: int) -> int:
    """Bytes per write(2) for the file ``fd``: ``WRITE_SIZE``, or a whole buffer on tmpfs."""
    try:
        dev = os.fstat(fd).st_dev
    except OSError:
        return WRITE_SIZE
    return WRITE_CHUNK if _fs_type(dev) in MEMORY_FILE_SYSTEMS else WRITE_SIZE


def write_all(fd: int, data: memoryview, size: int = WRITE_SIZE) -> None:
    """Write all of ``data`` to ``fd`` in ``size`` slices (short writes are continued)."""
    end = len(data)
    pos = 0
    write = os.write
    while pos < end:
        pos += write(fd, data[pos : pos + size])


def disk_full(path: Path, needed: int | None, exc: OSError) -> DiskFullError:
    try:
        free: int | None = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
    except OSError:
        free = None
    need = f" It needs {human_size(needed)}" if needed else ""
    has = f"; {human_size(free)} is free" if free is not None else ""
    return DiskFullError(
        f"The disk is full: no space left while writing {path}.{need}{has}. Free some space or "
        "download to another folder.",
        needed=needed,
        free=free,
        hint="directory",
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
    with disk_full_on_write(path, needed):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            piece = write_size(fd)
            for chunk in chunks:
                write_all(fd, memoryview(chunk), piece)
                written += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        finally:
            os.close(fd)
    return written


@contextmanager
def disk_full_on_write(path: Path, needed: int | None) -> Iterator[None]:
    """A full disk (ENOSPC, EDQUOT) inside the block raises :func:`disk_full`'s error for
    ``path``; any other OSError goes through as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, needed, exc) from exc
        raise
