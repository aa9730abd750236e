"""`bl task`'s filters reach the command as one Mongo `find`, checked before anything is sent."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.conftest import free_port


@pytest.mark.parametrize(
    "args",
    [
        ["task", "query", "--find", "{not json"],
        ["task", "download", "--path", "out", "--group", "1", "--find", "[1]"],
        # a single task's download checks the filters too, rather than ignoring a bad --find
        ["task", "download", "5c0e8f000000000000000000", "out", "--find", "{not json"],
    ],
)
def test_a_bad_find_is_a_usage_error_before_any_request(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLHOST", f"http://127.0.0.1:{free_port()}")  # a request would exit 5
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert "--find" in r.output
