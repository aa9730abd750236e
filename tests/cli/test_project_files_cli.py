"""Our `bl` and project files end to end against a real `bl serve` (its own copy of the demo
world, whose O3D has a small tree and 1,200 event logs in one folder): `bl data query -p P --s3
[--path]` follows every continuation token, `bl data download -p P --path` fetches a file or a
folder verified and resumes/keeps what is there, `bl project files put|rm` by who may, and the
refusals with their exit codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brainlife.server.demo.projectfiles import EVENT_LOGS, O3D_FILES, demo_files
from tests.cli.conftest import signed_in_runner
from tests.conftest import LiveServer, served_copy

O3D = "5a022fc99c0d250055709e9c"


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with served_copy(demo_archive_dir, tmp_path_factory, "projectfiles") as live:
        yield live


@pytest.fixture
def bl(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    return signed_in_runner(server, monkeypatch)


def test_query_s3_lists_the_root_as_the_official_cli_does(bl: Any) -> None:
    r = bl("data", "query", "-p", "O3D", "--s3")
    assert r.exit_code == 0, r.output
    assert f"Project: O3D ({O3D})" in r.stdout
    assert "  [DIR]  docs/" in r.stdout and "  [DIR]  logs/" in r.stdout
    assert "  [FILE] README.txt (" in r.stdout and "3/10/2025" in r.stdout
    assert "3 folder(s), 1 file(s)" in r.stdout


def test_query_s3_follows_continuation_tokens(bl: Any) -> None:
    r = bl("data", "query", "-p", O3D, "--s3", "--path", "logs/events/")
    assert r.exit_code == 0, r.output
    assert f"0 folder(s), {EVENT_LOGS} file(s)" in r.stdout  # the official CLI stops at 1000
    assert "truncated" not in r.stdout
    r = bl("data", "query", "-p", O3D, "--s3", "--path", "logs/events", "--json")
    doc = json.loads(r.stdout)
    keys = [o["Key"] for o in doc["objects"]]
    assert keys == sorted(k for k in demo_files() if k.startswith("logs/events/"))
    assert doc["project"] == O3D and doc["path"] == "logs/events"


def test_query_s3_needs_a_project_and_a_real_folder(bl: Any) -> None:
    r = bl("data", "query", "--s3")
    assert r.exit_code == 2 and "-p" in r.output
    r = bl("data", "query", "-p", O3D, "--s3", "--path", "nope/")
    assert r.exit_code == 3 and "no folder" in r.output


def test_download_a_file_then_again_keeps_it(bl: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = bl("data", "download", "-p", O3D, "--path", "docs/protocol.pdf", "-d", str(out))
    assert r.exit_code == 0, r.output
    assert (out / "protocol.pdf").read_bytes() == O3D_FILES["docs/protocol.pdf"]
    assert "Download complete. (1 file(s)" in r.stdout
    r = bl("data", "download", "-p", O3D, "--path", "docs/protocol.pdf", "-d", str(out), "-j")
    assert json.loads(r.stdout) == {
        "directory": str(out), "fetched": 0, "present": 1, "bytes": 0,
    }  # fmt: skip


def test_download_a_folder_verified_and_repairs_a_damaged_file(bl: Any, tmp_path: Path) -> None:
    out = tmp_path / "logs"
    r = bl("data", "download", "-p", O3D, "--path", "logs/", "-d", str(out))
    assert r.exit_code == 0, r.output
    want = {k[len("logs/") :]: v for k, v in demo_files().items() if k.startswith("logs/")}
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == want
    damaged = out / "events" / "event-0007.txt"
    damaged.write_bytes(b"X" * len(want["events/event-0007.txt"]))  # same size, other bytes
    r = bl("data", "download", "-p", O3D, "--path", "logs/", "-d", str(out), "--json")
    assert json.loads(r.stdout)["fetched"] == 1
    assert json.loads(r.stdout)["present"] == EVENT_LOGS - 1
    assert damaged.read_bytes() == want["events/event-0007.txt"]


def test_download_of_a_missing_file_is_not_found(bl: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = bl("data", "download", "-p", O3D, "--path", "nope.txt", "-d", str(out))
    assert r.exit_code == 3, r.output
    assert "nope.txt" in r.output
    assert not out.exists() or list(out.iterdir()) == []


def test_put_list_download_and_remove(bl: Any, tmp_path: Path) -> None:
    local = tmp_path / "minutes.md"
    local.write_bytes(b"# meeting minutes\n" * 100)
    r = bl("project", "files", "put", "O3D", str(local), "docs/")
    assert r.exit_code == 0, r.output
    assert "Stored docs/minutes.md" in r.stdout
    r = bl("data", "query", "-p", O3D, "--s3", "--path", "docs", "-j", user="demo")
    entry = next(o for o in json.loads(r.stdout)["objects"] if o["Name"] == "minutes.md")
    assert entry["ETag"] == hashlib.sha256(local.read_bytes()).hexdigest()
    out = tmp_path / "back"
    r = bl("data", "download", "-p", O3D, "--path", "docs/minutes.md", "-d", str(out), user="demo")
    assert (out / "minutes.md").read_bytes() == local.read_bytes()
    r = bl("project", "files", "rm", O3D, "docs/minutes.md")
    assert r.exit_code == 0 and "Removed docs/minutes.md" in r.stdout
    r = bl("project", "files", "ls", O3D, "docs")
    assert "minutes.md" not in r.stdout


def test_a_reader_may_not_put_or_remove(bl: Any, tmp_path: Path) -> None:
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    r = bl("project", "files", "put", O3D, str(local), user="demo")
    assert r.exit_code == 4, r.output
    assert "admins and members" in r.output
    r = bl("project", "files", "rm", O3D, "README.txt", user="demo")
    assert r.exit_code == 4, r.output
    r = bl("project", "files", "ls", O3D)
    assert "README.txt" in r.stdout


@pytest.mark.parametrize("remote", ["../x.txt", "a//b.txt", "download/x.txt", "/abs.txt"])
def test_hostile_remote_paths_are_refused_before_sending(bl: Any, tmp_path: Path, remote: str):
    local = tmp_path / "x.txt"
    local.write_bytes(b"hostile")
    r = bl("project", "files", "put", O3D, str(local), remote)
    assert r.exit_code != 0 and "Cannot put" in r.output, r.output
    r = bl("data", "query", "-p", O3D, "--s3", "-j")
    assert "x.txt" not in r.stdout
