"""Fixtures of the bulk tests: `server`, a real `bl serve` over a copy of the demo world (the
session's read-only `live_server`), and `bl`, the real CLI logged in to it as hayashis, run in the
test's own folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.conftest import LiveServer
from tests.fake_server import fake  # noqa: F401


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> LiveServer:
    """The session's `live_server`: the modules using this one only read the demo (no test
    changes its files or sends wrong passwords), so they share one `bl serve` with the other
    read-only tests instead of starting one each (a start and a copy of the demo cost ~1.5 s of
    CPU). Modules that kill, restart or change their server start their own."""
    return live_server


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
