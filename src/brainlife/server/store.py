"""The content store: every file is kept once, named by its sha256.

`ContentStore` is the interface the services use; `LocalStore` keeps blobs under
`<data_dir>/store/ab/cd/<sha256>`. An S3-compatible store implements the same methods.
Writes are atomic: a temporary file in the store's own `tmp/`, fsync, rename, fsync of the folder.
A crash at any point leaves either no blob or a complete one, never a partial blob under its name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024


class ContentStore(Protocol):
    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store bytes; return (sha256, size)."""
        ...

    def put_file(self, path: Path) -> tuple[str, int]: ...

    def has(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path for the blob when the store has one (enables sendfile)."""
        ...


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

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
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

    def put_file(self, path: Path) -> tuple[str, int]:
        with open(path, "rb") as fh:
            return self.put_stream(iter(lambda: fh.read(CHUNK), b""))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data])

    def has(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def size(self, sha256: str) -> int:
        return self._path(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        return open(self._path(sha256), "rb")

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    def iter_range(self, sha256: str, start: int, end: int, chunk: int = CHUNK) -> Iterator[bytes]:
        """Yield bytes [start, end) of a blob."""
        with self.open(sha256) as fh:
            fh.seek(start)
            remaining = end - start
            while remaining > 0:
                data = fh.read(min(chunk, remaining))
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
