"""The client's project-file downloads against a hostile or broken server (a real HTTP server
whose answers each test sets): a listed key that would climb out of the folder, a file whose
bytes are not the listed ones, a listing that never ends. Nothing is written outside the
target folder and nothing unverified is left looking complete."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from brainlife.client import Client
from brainlife.client._exceptions import BrainlifeError, ChecksumMismatch, ConfigError
from brainlife.wire import routes
from tests.fake_server import FakeServer, valid_jwt

P = "5a022fc99c0d250055709e9c"


def entry(key: str, data: bytes) -> dict[str, Any]:
    return {
        "Name": key.rsplit("/", 1)[-1],
        "Key": key,
        "Size": len(data),
        "LastModified": "2025-03-10T12:00:00.000Z",
        "ETag": hashlib.sha256(data).hexdigest(),
    }


def listing(*objects: dict[str, Any], token: str = "") -> dict[str, Any]:
    return {"objects": list(objects), "folders": [], "isTruncated": bool(token),
            "nextContinuationToken": token, "prefix": "docs/"}  # fmt: skip


def serve_file(fake: FakeServer, key: str, data: bytes) -> None:
    fake.route(
        "GET",
        routes.PROJECT_FILE_DOWNLOAD.url(project_id=P, path=key),
        lambda req: (200, {"Content-Type": "application/octet-stream"}, data),
    )


@pytest.mark.parametrize("key", ["docs/../../evil.txt", "docs/a/../../../evil.txt"])
def test_a_listed_key_that_climbs_out_is_refused(fake: FakeServer, tmp_path: Path, key: str):
    fake.json("GET", routes.PROJECT_FILES_PREFIX.url(project_id=P, prefix="docs"), listing(
        entry(key, b"evil")))  # fmt: skip
    serve_file(fake, key, b"evil")
    target = tmp_path / "deep" / "out"
    with pytest.raises(ConfigError, match="Refusing"):
        Client(fake.url, token=valid_jwt()).download_project_files(P, "docs/", target)
    assert not list(tmp_path.rglob("evil.txt"))


def test_bytes_other_than_listed_leave_no_file(fake: FakeServer, tmp_path: Path) -> None:
    fake.json("GET", routes.PROJECT_FILES_PREFIX.url(project_id=P, prefix="docs"), listing(
        entry("docs/a.txt", b"the real bytes")))  # fmt: skip
    serve_file(fake, "docs/a.txt", b"other bytes!!!")  # same length, another sha256
    client = Client(fake.url, token=valid_jwt())
    with pytest.raises(ChecksumMismatch):
        client.download_project_files(P, "docs/a.txt", tmp_path)
    assert not (tmp_path / "a.txt").exists()


def test_a_listing_that_repeats_its_token_stops(fake: FakeServer, tmp_path: Path) -> None:
    fake.json("GET", routes.PROJECT_FILES_PREFIX.url(project_id=P, prefix="docs"), listing(
        entry("docs/a.txt", b"a"), token="again"))  # fmt: skip
    with pytest.raises(BrainlifeError, match="repeats itself"):
        Client(fake.url, token=valid_jwt()).project_files(P, "docs")
