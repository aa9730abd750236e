"""`bl admin user disable|enable|promote|demote|passwd|rename`: each changes the account it
names and says so (the four without options are declared from one table in `cmd_admin`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli


def admin(data: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["admin", "--data-dir", str(data), *args], input=stdin)
    return r.exit_code, r.output


def accounts(data: Path) -> dict[str, dict[str, object]]:
    code, out = admin(data, "user", "list", "--json")
    assert code == 0, out
    return {u["username"]: u for u in json.loads(out)}


def test_each_change_is_made_and_said(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, extra in (("root", ["--admin"]), ("ann", [])):
        code, out = admin(
            data, "user", "add", name, *extra, "--password-stdin", stdin="password 1\n"
        )
        assert code == 0, out
    assert accounts(data)["ann"]["admin"] is False
    for command, said, field, value in (
        ("promote", "ann is an admin (from its next login).", "admin", True),
        ("demote", "ann is no longer an admin (its tokens are revoked).", "admin", False),
        ("disable", "Disabled ann (its tokens are refused).", "active", False),
        ("enable", "Enabled ann.", "active", True),
    ):
        code, out = admin(data, "user", command, "ann")
        assert (code, out.strip()) == (0, said)
        assert accounts(data)["ann"][field] is value, command
    code, out = admin(data, "user", "passwd", "ann", "--password-stdin", stdin="password 2\n")
    assert (code, out.strip()) == (0, "Changed the password of ann (its tokens are revoked).")
    code, out = admin(data, "user", "promote", "nobody")
    assert code == 3 and "No user 'nobody'" in out


def test_rename_gives_a_new_username_and_refuses_a_taken_one(tmp_path: Path) -> None:
    """`bl admin user rename`: the fix for two names that differ only in case (migration 0019
    refuses such an archive; its message names the SQL, this is the command afterwards)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("root", "ann", "bob"):
        code, out = admin(data, "user", "add", name, "--password-stdin", stdin="password 1\n")
        assert code == 0, out
    code, out = admin(data, "user", "rename", "ann", "anna")
    assert (code, out.strip()) == (0, "Renamed ann to anna (its tokens are revoked).")
    assert sorted(accounts(data)) == ["anna", "bob", "root"]
    code, out = admin(data, "user", "rename", "bob", "ANNA")
    assert code == 9 and "The username 'ANNA' is taken." in out, out
    code, out = admin(data, "user", "rename", "bob", "bad name")
    assert code == 1 and "Invalid username 'bad name'" in out, out
    code, out = admin(data, "user", "rename", "nobody", "x")
    assert code == 3 and "No user 'nobody'" in out, out
    assert sorted(accounts(data)) == ["anna", "bob", "root"]


def test_a_first_account_on_a_mistyped_data_dir_makes_no_new_archive(tmp_path: Path) -> None:
    """`bl admin --data-dir <typo> user add` made a second, empty archive there and said
    "Created admin": the admin then could not log in to the served one. A folder that does not
    exist is refused (exit 3, nothing made); an existing empty one starts a new archive."""
    served = tmp_path / "bl-data"
    served.mkdir()
    code, out = admin(served, "user", "add", "root", "--admin", "--password-stdin",
                      stdin="password 1\n")  # fmt: skip
    assert code == 0 and "Created admin root" in out, out
    typo = tmp_path / "bl-dta"
    code, out = admin(typo, "user", "add", "ann", "--password-stdin", stdin="password 1\n")
    assert code == 3, out
    (line,) = [x for x in out.splitlines() if x.startswith("Error:")]
    assert f"No archive in {typo}" in line and "--data-dir given to 'bl serve'" in line, line
    assert "Created" not in out and not typo.exists()
    assert list(accounts(served)) == ["root"]


UNREACHABLE = "postgresql+psycopg://ann:s3cret-pw@127.0.0.1:1/archive"


def test_a_database_url_that_cannot_be_used_is_one_line_without_its_password(
    tmp_path: Path,
) -> None:
    """An unknown dialect or an unreachable PostgreSQL was an 'unexpected failure' (the
    SQLAlchemy exception, over four lines) from `bl admin` and `bl serve` alike."""
    for url, words, code in (
        ("garbage://x", "garbage", 1),
        (UNREACHABLE, "Connection refused", 5),
    ):
        for args in (
            ["admin", "--data-dir", str(tmp_path), "--database-url", url, "user", "list"],
            ["serve", "--data-dir", str(tmp_path), "--database-url", url, "--port", "9"],
        ):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == code, (args, r.output)
            lines = r.output.strip().splitlines()
            assert lines[-1].startswith("Error: Cannot use the database"), r.output
            assert words in lines[-1] and "unexpected failure" not in r.output
            assert "s3cret-pw" not in r.output


def test_serve_on_a_port_in_use_says_so_before_claiming_to_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bl serve --port N` with N taken printed 'listening on …', then uvicorn's 'ERROR: [Errno
    98] …' and exited 3 (the code of 'not found')."""
    import socket

    import uvicorn

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server was started on a port in use")

    monkeypatch.setattr(uvicorn, "run", never)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(
            cli, ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(port)]
        )
    assert r.exit_code == 1, r.output
    assert "listening on" not in r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: Cannot listen on 127.0.0.1:{port}") and "--port" in last
