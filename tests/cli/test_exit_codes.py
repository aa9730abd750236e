"""Exit codes come from the errors' codes, in one table; hints become flags only in the CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from brainlife.cli.main import EXIT_CODES, exit_code, exit_code_of, render
from brainlife.client import (
    ApiError,
    AuthError,
    BrainlifeError,
    ChecksumMismatch,
    ConfigError,
    DiskFullError,
    GaveUp,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)
from brainlife.client._http import Liveness


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BrainlifeError("x"), 1),
        (ApiError("x"), 1),
        (ConfigError("x"), 1),
        (NotFound("x"), 3),
        (AuthError("x"), 4),
        (PermissionDenied("x"), 4),
        (ServerUnavailable("x"), 5),
        (GaveUp("x"), 5),
        (ProtocolError("x"), 6),
        (ChecksumMismatch("x"), 7),
        (DiskFullError("x"), 8),
    ],
)
def test_every_error_code_has_its_exit_code(error: BrainlifeError, code: int) -> None:
    assert exit_code(error.code) == code


def test_the_table_is_keyed_by_codes_not_class_names() -> None:
    assert not any(key[0].isupper() for key in EXIT_CODES)


def test_several_failures_exit_with_theirs_when_they_agree_else_1() -> None:
    assert exit_code_of({"not-found"}) == 3
    assert exit_code_of({"not-found", "checksum"}) == 1


def test_the_library_names_no_flag_and_the_cli_adds_it() -> None:
    clock = Liveness("http://x", give_up_after=0)
    clock.failing("server unreachable")
    error = clock._gave_up()
    assert "--give-up-after" not in str(error)
    assert error.hint == "give-up-after"
    assert "--give-up-after" in render(error)


def test_every_hint_of_the_library_has_its_words_in_the_cli() -> None:
    from brainlife.cli.main import HINT_TEXT
    from brainlife.client._exceptions import HINTS

    assert set(HINTS) == set(HINT_TEXT)


def _messages(path: Path) -> list[str]:
    """The string pieces of a module that are not docstrings or comments."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_library_names_no_cli_flag() -> None:
    import brainlife.client

    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+|\(-[a-zA-Z]\b")
    found = {
        p.name: hits
        for p in Path(brainlife.client.__file__).parent.rglob("*.py")
        if (hits := [m for s in _messages(p) for m in flag.findall(s)])
    }
    assert found == {}


@pytest.mark.parametrize(
    ("url", "code"), [("garbage://x", 1), ("postgresql+psycopg://u:pw@127.0.0.1:1/db", 5)]
)
def test_an_unusable_database_is_rendered_where_every_error_is(url: str, code: int) -> None:
    """`DatabaseUnusable` (the server's) reaches the CLI's one renderer, from any command, as
    one line and exit 5 (unreachable) or 1; no command maps it itself."""
    from click.testing import CliRunner
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from brainlife.cli.main import LazyGroup
    from brainlife.server.archive import DatabaseUnusable

    try:
        with create_engine(url).connect():
            pass
    except (SQLAlchemyError, ImportError) as exc:
        cause: BaseException = exc
    group = LazyGroup("bl")

    @group.command("opens")
    def opens() -> None:
        raise DatabaseUnusable(url, cause)

    r = CliRunner().invoke(group, ["opens"])
    assert r.exit_code == code, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith("Error: Cannot use the database") and "pw@" not in line
    cli_dir = Path(__file__).resolve().parents[2] / "src" / "brainlife" / "cli"
    naming = sorted(p.name for p in cli_dir.glob("*.py") if "DatabaseUnusable" in p.read_text())
    assert naming == ["main.py"]
