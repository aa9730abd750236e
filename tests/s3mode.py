"""The server tests on an S3 store: `BL_TEST_STORE_URL=s3://BUCKET` (with the `AWS_*` lines of
`scripts/s3-start` in the environment).

Set, every archive the tests open keeps its bytes (data objects, project files, task outputs)
under a prefix of its own in that bucket instead of its data folder's store. The tests need no
change: `Settings.store_url` (patched for the run by tests/conftest.py) maps a data folder with
no store of its own to `s3://BUCKET/t-<hash>`, and `start_server` passes it to
`bl serve --store`. The prefix is recorded in the folder (`.test-store`) once it exists, and
`shutil.copytree` carries that file along: a copy of the demo archive reads the demo's blobs
(its own database still lists its own files). The empty archive every test starts from records
none, so each copy of it gets its own prefix. Prefixes are not emptied after the run:
`scripts/test` purges its radosgw.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

STORE_URL = (os.environ.get("BL_TEST_STORE_URL") or "").rstrip("/") or None
MARKER = ".test-store"
#: a fresh prefix per run, even where pytest reuses a temporary folder's path
_RUN = secrets.token_hex(4)


def store_url(data_dir: Path) -> str:
    """The store of the archive in `data_dir` (recorded there once the folder exists)."""
    assert STORE_URL is not None
    marker = Path(data_dir) / MARKER
    try:
        return marker.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        pass
    digest = hashlib.sha256(f"{_RUN}:{os.path.abspath(data_dir)}".encode()).hexdigest()[:16]
    url = f"{STORE_URL}/t-{digest}"
    if marker.parent.is_dir():
        marker.write_text(url + "\n")
    return url


def forget(data_dir: Path) -> None:
    """Drop the folder's record (a template copied for every test: each copy gets its own)."""
    (Path(data_dir) / MARKER).unlink(missing_ok=True)
