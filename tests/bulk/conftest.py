"""Fixtures of the bulk tests: `server`, a real `bl serve` over a copy of the demo world (one per
module), and `bl`, the real CLI logged in to it as hayashis, run in the test's own folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.conftest import LiveServer, start_server, stop_server
from tests.fake_server import fake  # noqa: F401


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("bulk") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


@pytest.fixture
def bl(server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", server.url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(
        cli, ["login", "--username", "hayashis", "--password-stdin"], input="hayashis\n"
    )
    assert r.exit_code == 0, r.output

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), input=input)

    return run
