"""`bl data update` and `bl data delete` end to end against a real `bl serve` (its own copy of
the demo world): what changes, what the user sees, and the exit codes of each refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import signed_in_runner
from tests.conftest import LiveServer, served_copy

O3D = "5a022fc99c0d250055709e9c"
TP = "5b0dad8041711001e958b519"
RELEASE = "5bab993aa918ae0027024192"


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with served_copy(demo_archive_dir, tmp_path_factory, "curation") as live:
        yield live


@pytest.fixture
def bl(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    return signed_in_runner(server, monkeypatch)


def _first(bl: Any, project: str, skip: int = 0) -> dict[str, Any]:
    r = bl("data", "query", "-p", project, "--json", "--limit", "1", "--skip", str(skip))
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.output.splitlines()[0])[0]  # (a hint follows, on stderr)
    return doc


def test_update_changes_what_was_given(bl: Any) -> None:
    doc = _first(bl, TP, skip=3)
    r = bl(
        "data",
        "update",
        doc["_id"],
        "--desc",
        "re-checked",
        "--tag",
        "qc",
        "--tag",
        "ok",
        "--meta",
        '{"session": "2", "note": "fine"}',
    )
    assert r.exit_code == 0, r.output
    assert r.output == f"updated data object {doc['_id']}\n"
    r = bl("data", "update", doc["_id"], "--meta", '{"note": null}', "--json")
    assert r.exit_code == 0, r.output
    after = json.loads(r.output)
    assert after["desc"] == "re-checked" and after["tags"] == ["qc", "ok"]
    assert after["meta"]["session"] == "2" and "note" not in after["meta"]
    assert after["meta"]["subject"] == doc["meta"]["subject"]
    assert after["datatype_tags"] == doc["datatype_tags"]


def test_released_objects_exit_9(bl: Any) -> None:
    r = bl("data", "query", "--pub", RELEASE, "--json", "--limit", "1")
    released = json.loads(r.output.splitlines()[0])[0]["_id"]
    r = bl("data", "update", released, "--desc", "x")
    assert r.exit_code == 9, r.output
    assert "released objects cannot be changed" in r.output and "Traceback" not in r.output
    assert bl("data", "delete", released).exit_code == 9


def test_delete_then_restore(bl: Any) -> None:
    doc = _first(bl, TP, skip=5)
    r = bl("data", "delete", doc["_id"], user="demo")  # a member of TP, not an admin
    assert r.exit_code == 0 and r.output == f"removed data object {doc['_id']}\n"
    r = bl("data", "delete", doc["_id"], user="demo")
    assert r.output == f"data object {doc['_id']} was already removed\n"
    assert doc["_id"] not in {
        d["_id"] for d in json.loads(bl("data", "query", "-p", TP, "--json", "--limit", "0").output)
    }
    r = bl("data", "download", doc["_id"], "-d", "out")
    assert r.exit_code != 0 and "was removed" in r.output
    r = bl("data", "update", doc["_id"], "--restore", user="demo")
    assert r.exit_code == 4 and "Only a project admin can restore" in r.output
    r = bl("data", "update", doc["_id"], "--desc", "y", user="demo")
    assert r.exit_code == 9 and "restore" in r.output
    r = bl("data", "update", doc["_id"], "--restore")
    assert r.exit_code == 0, r.output


def test_refusals_are_one_line_with_their_exit_code(bl: Any) -> None:
    doc = _first(bl, O3D, skip=7)
    r = bl("data", "update", doc["_id"], "--desc", "x", user="demo")  # not a member of O3D
    assert r.exit_code == 4 and r.output.startswith("Error: Access denied")
    unknown = "0123456789abcdef01234567"
    for args in (["delete", unknown], ["update", unknown, "--desc", "x"], ["delete", "nope"]):
        r = bl("data", *args)
        # which id, and where to find the right one (brainlife's words alone named neither)
        assert r.exit_code == 3 and r.output.startswith(f"Error: No data object {args[1]}")
        assert "'bl data query'" in r.output and len(r.output.splitlines()) == 1, r.output
    r = bl("data", "update", doc["_id"])
    assert r.exit_code == 2 and "Nothing to change" in r.output, r.output
    for bad in ("[1]", "{bad"):
        r = bl("data", "update", doc["_id"], "--meta", bad)
        assert r.exit_code == 2
        assert "Invalid value for --meta" in r.output, r.output  # names the option
    doc = _first(bl, TP, skip=9)
    r = bl("data", "update", doc["_id"], "--tag", "x" * 300)
    assert r.exit_code == 1 and "longer than 256" in r.output


def test_update_with_nothing_to_change_is_a_usage_error_naming_the_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Said before any server is asked (here none answers, and nobody is logged in)."""
    from click.testing import CliRunner

    from brainlife.cli.main import cli

    monkeypatch.setenv("BLHOST", "http://127.0.0.1:9")
    r = CliRunner().invoke(cli, ["data", "update", "0123456789abcdef01234567"])
    assert r.exit_code == 2, r.output
    assert "Usage: bl data update" in r.output or "Usage: cli data update" in r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("Error:")]
    for option in ("--desc", "--tag", "--clear-tags", "--datatype_tag", "--meta", "--restore"):
        assert option in line, line
