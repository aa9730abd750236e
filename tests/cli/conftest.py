"""Fixtures and helpers of the CLI tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fake_server import fake  # noqa: F401


def signed_in_runner(server: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """`run(*args, user=…)`: our `bl` in process against the real `server`, signed in first as
    `user` (whose demo password is the user name)."""
    from click.testing import CliRunner

    from brainlife.cli.main import cli

    monkeypatch.setenv("BLHOST", server.url)
    runner = CliRunner()

    def run(*args: str, user: str = "hayashis") -> Any:
        r = runner.invoke(cli, ["login", "--username", user, "--password-stdin"], input=f"{user}\n")
        assert r.exit_code == 0, r.output
        return runner.invoke(cli, list(args))

    return run
