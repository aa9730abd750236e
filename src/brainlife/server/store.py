"""The content store: every file is kept once, named by its sha256.

`ByteStore` is what the archive (`Archive.store`), ingest and every download route use: streamed
writes that check a digest, range reads as an iterator of bytes (no file descriptors: a store
need not have local files), and `presign`, a URL a client may fetch a blob from directly (None:
fetch it from us). `local_path` is an optimisation a store may offer: the routes then read with
`pread` (page-cache reads on the event loop, see `tarstream.read_range`).

`LocalStore` keeps blobs under `<data_dir>/store/ab/cd/<sha256>`. Writes are atomic: a temporary
file in the store's own `tmp/`, fsync, rename, fsync of the folder. A crash at any point leaves
either no blob or a complete one, never a partial blob under its name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

CHUNK = 1024 * 1024


class DigestMismatch(ValueError):
    """The bytes written are not those the caller named: nothing was stored."""

    def __init__(self, expected: str, got: str, size: int) -> None:
        super().__init__(f"expected sha256 {expected}, got {got} ({size} bytes); nothing stored")
        self.expected = expected
        self.got = got
        self.size = size


class ByteStore(Protocol):
    def put_stream(self, chunks: Iterable[bytes], *, sha256: str | None = None) -> tuple[str, int]:
        """Store the bytes; return (sha256, size). With `sha256`, bytes of another digest raise
        `DigestMismatch` and leave nothing behind."""
        ...

    def has(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def read_range(
        self, sha256: str, start: int, end: int, *, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        """Bytes `[start, end)` of a blob, about `chunk_size` at a time; `OSError` if the blob
        ends early."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path for the blob when the store has one (enables `pread`/sendfile)."""
        ...

    def presign(self, sha256: str, *, filename: str, expires_in: int = 3600) -> str | None:
        """A URL from which the blob may be fetched for `expires_in` seconds without our token,
        or None when the store has none (the local store: the bytes come from our routes)."""
        ...


def put_file(store: ByteStore, path: Path, *, sha256: str | None = None) -> tuple[str, int]:
    """Store a file's bytes, read `CHUNK` at a time (checked against `sha256` when given)."""
    with open(path, "rb") as fh:
        return store.put_stream(iter(lambda: fh.read(CHUNK), b""), sha256=sha256)


def put_verified_file(store: ByteStore, path: Path, sha256: str) -> None:
    """Store a file whose sha256 the caller has just computed (an upload's staged file), left
    in place. The local store hard-links it under its name (no second copy, no second hash);
    any other store, or another file system, streams it with the digest checked."""
    if isinstance(store, LocalStore) and store.link_in(path, sha256):
        return
    put_file(store, path, sha256=sha256)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by writers that died (a crash or kill -9 mid-write).

        Only files older than `older_than` seconds go, so a live writer in another worker
        process keeps its file. Returns how many were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for entry in self.tmp.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_stream(self, chunks: Iterable[bytes], *, sha256: str | None = None) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            sha = digest.hexdigest()
            if sha256 is not None and sha != sha256:
                raise DigestMismatch(sha256, sha, size)
            final = self._path(sha)
            if final.exists():
                os.unlink(tmp_name)
                return sha, size
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
            return sha, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def link_in(self, path: Path, sha256: str) -> bool:
        """Make the blob `sha256` a hard link to `path` (the caller vouches for the digest):
        the file is fsynced first, then linked and the folder fsynced, so the blob's name
        never holds partial bytes. False when linking is impossible (another file system)."""
        final = self._path(sha256)
        if final.exists():
            return True
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(path, 0o644)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, final)
        except FileExistsError:
            return True
        except OSError:
            return False
        _fsync_dir(final.parent)
        return True

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data])

    def has(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def size(self, sha256: str) -> int:
        return self._path(sha256).stat().st_size

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    def presign(self, sha256: str, *, filename: str, expires_in: int = 3600) -> str | None:
        return None

    def read_range(
        self, sha256: str, start: int, end: int, *, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        with open(self._path(sha256), "rb") as fh:
            fh.seek(start)
            remaining = end - start
            while remaining > 0:
                data = fh.read(min(chunk_size, remaining))
                if not data:
                    raise OSError(f"blob {sha256} is shorter than its manifest says")
                remaining -= len(data)
                yield data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
