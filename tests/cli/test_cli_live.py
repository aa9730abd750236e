"""`bl` end to end against a real `bl serve` process over the demo archive."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.fake_server import make_jwt

O3D = "5a022fc99c0d250055709e9c"
T1 = "5a050ad5d76a2a002737e572"
RELEASE = "5bab993aa918ae0027024192"


@pytest.fixture
def bl(live_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", live_server.url)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, login: bool = True):  # type: ignore[no-untyped-def]
        if login and not (Path.home() / ".config" / live_server.hostport / ".jwt").exists():
            r = runner.invoke(
                cli, ["login", "--username", "hayashis", "--password-stdin"], input="hayashis\n"
            )
            assert r.exit_code == 0, r.output
        return runner.invoke(cli, list(args), input=input)

    return run


def test_login_refresh_logout(bl, live_server) -> None:  # type: ignore[no-untyped-def]
    r = bl("login", "--username", "hayashis", "--password-stdin", input="hayashis\n", login=False)
    assert r.exit_code == 0
    assert r.output.startswith("Successfully logged in for 6 days, 23 hours, 59 minutes")
    jwt = Path.home() / ".config" / live_server.hostport / ".jwt"
    assert jwt.stat().st_mode & 0o777 == 0o600
    assert bl("refresh").output == "token refreshed\n"
    assert bl("logout").exit_code == 0
    assert not jwt.exists()


def test_wrong_password(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("login", "--username", "hayashis", "--password", "nope", login=False)
    assert r.exit_code == 4
    assert r.output.startswith("Error: Login failed")
    assert "Traceback" not in r.output


def test_project_query_plain_is_the_documents(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("project", "query", "-q", "o3d")
    assert r.exit_code == 0
    assert r.output.startswith(
        "Id: 5a022fc99c0d250055709e9c\nName: O3D\nAdmins: hayashis, avesani, frakkopesto\n"
        "Members: hayashis, avesani, frakkopesto\nGuests: \nAccess: Access: public\n"
        "Description: O3D (Open Diffusion Data and Derivative)"
    )
    assert r.output.endswith("\n\n(Returned 1 result)\n")


def test_data_query_plain_blocks_and_footer(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "query", "-p", O3D)
    assert r.exit_code == 0, r.output
    blocks = r.output.split("\n\n")
    assert len(blocks) == 101
    keys = [line.split(":")[0] for line in blocks[0].splitlines()]
    assert keys == [
        "Id",
        "Project",
        "Admins",
        "Members",
        "Guests",
        "Subject",
        "Session",
        "Datatype",
        "Description",
        "Create Date",
        "Storage",
        "Status",
        "Tags",
    ]
    assert blocks[-1] == (
        "2708 total data objects, showing first 100. To view the next 100, "
        f"run 'bl data query --project {O3D} --skip 100'\n"
    )
    assert "(8 years ago)" in r.output or "years ago)" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["project", "query"],
        ["profile", "query"],
        ["datatype", "query"],
        ["pub", "query"],
        ["data", "query", "-p", O3D, "--limit", "5"],
        ["dataset", "query", "--pub", RELEASE],
        ["task", "query", "--group", "851", "--limit", "3"],
    ],
)
def test_json_is_valid_for_every_query(bl, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    r = bl(*args, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stderr may add a note (more objects match)
    assert isinstance(doc, list) and doc
    assert len(r.stdout.strip().splitlines()) == 1


def test_data_download_and_json_summary(bl, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    r = bl("data", "download", "-i", T1)
    assert r.exit_code == 0, r.output
    assert r.output == f"Download dataset to {T1}\n100% done\n"
    assert (tmp_path / T1 / "t1.nii.gz").stat().st_size > 0
    r = bl("data", "download", T1, "nested/a/b", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["files"] == ["t1.nii.gz"] and (tmp_path / "nested/a/b/t1.nii.gz").exists()


def test_task_download_bulk(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl(
        "task",
        "download",
        "--group",
        "851",
        "--service",
        "brainlife/app-freesurfer",
        "--status",
        "finished",
        "--path",
        "freesurfer/output/stats",
        "--name-by",
        "subject",
        "-d",
        str(tmp_path / "fs"),
    )
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "fs").iterdir())
    assert "bl-lock.json" in names  # records each archive, so a rerun keeps unchanged ones
    archives = [n for n in names if n != "bl-lock.json"]
    assert archives and all(n.endswith(".tar.gz") for n in archives)
    assert "0001.tar.gz" in archives


def test_unknown_id_exits_3(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "download", "0" * 24, "-d", str(tmp_path / "x"))
    assert r.exit_code == 3
    assert "Error: Couldn't find the data object" in r.output
    assert not (tmp_path / "x").exists()
    r = bl("project", "query", "-a", "nobody-like-this")
    assert r.exit_code == 3


@pytest.mark.parametrize(
    "args",
    [
        ["data", "query", "--limit", "abc"],
        ["data", "query", "--skip", "-1"],
        ["data", "download", "not-an-id"],
        ["task", "query", "--find", "{bad"],
        ["data", "query", "--bogus"],
    ],
)
def test_malformed_flags_exit_2(bl, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    r = bl(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_unknown_datatype_and_project(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "query", "-d", "neuro/nope")
    assert (r.exit_code, r.output) == (
        3,
        # the archive's catalogue (bl serve seeds it) has neuro/fmap besides the demo's
        "Error: No datatypes found matching 'neuro/nope'. Did you mean neuro/fmap or neuro/wmc "
        "or neuro/dwi? Try 'bl datatype query'.\n",
    )
    assert bl("data", "query", "-p", "no-such-project-anywhere").exit_code == 3


def test_no_token(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "query", login=False)
    assert r.exit_code == 4
    assert "not logged in" in r.output and "bl login" in r.output


def test_expired_token(bl, live_server) -> None:  # type: ignore[no-untyped-def]
    path = Path.home() / ".config" / live_server.hostport / ".jwt"
    path.parent.mkdir(parents=True)
    path.write_text(make_jwt(exp=time.time() - 60))
    r = bl("data", "query", login=False)
    assert r.exit_code == 4
    assert "expired" in r.output and "bl login" in r.output


def test_forged_token_rejected_by_server(bl, live_server) -> None:  # type: ignore[no-untyped-def]
    path = Path.home() / ".config" / live_server.hostport / ".jwt"
    path.parent.mkdir(parents=True)
    path.write_text(make_jwt(exp=time.time() + 600))
    r = bl("data", "query", login=False)
    assert r.exit_code == 4, r.output
    assert "bl login" in r.output


def test_server_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("BLHOST", f"http://127.0.0.1:{free_port()}")
    r = CliRunner().invoke(cli, ["datatype", "query"])
    assert r.exit_code == 5
    assert r.output.startswith("Error: Cannot connect to http://127.0.0.1:")
