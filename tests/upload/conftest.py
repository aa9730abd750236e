"""Fixtures of the upload tests: `server`, a real `bl serve` over a copy of the demo world (one
per module), `token`, a login of the demo user (a member of the "2019 tractprofiles" project,
a guest of "Guest access study"), and `bl`, the real CLI run in-process with a private HOME."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.conftest import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("upload") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: LiveServer) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("BLHOST", server.url)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def bl(home: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    r = runner.invoke(cli, ["login", "--username", "demo", "--password-stdin"], input="demo\n")
    assert r.exit_code == 0, r.output

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args))

    return run


@pytest.fixture
def token(bl, home: Path, server: LiveServer) -> str:  # type: ignore[no-untyped-def]
    host = server.url.split("://", 1)[1]
    return (home / ".config" / host / ".jwt").read_text().strip()
