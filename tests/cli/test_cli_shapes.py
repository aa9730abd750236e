"""`bl` against a recording local server: the exact requests of reference §4, lean plain output,
and the error paths (one `Error:` line, exit codes, --debug, Ctrl-C)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from brainlife.client import Client
from brainlife.client._config import write_token_file
from tests.client.test_tar import make_tar
from tests.fake_server import FakeServer, Req, make_jwt

PID = "5a022fc99c0d250055709e9c"
DTID = "58c33bcee13a50849b25879a"
DSID = "5a050ad5d76a2a002737e572"
PROFILES = [
    {"sub": 1, "username": "alice", "fullname": "Alice A", "email": "a@x", "active": True},
    {"sub": 2, "username": "bob", "fullname": "Bob B", "email": "b@x", "active": True},
]


@pytest.fixture
def bl(fake: FakeServer):  # type: ignore[no-untyped-def]
    write_token_file(Path.home() / ".config" / fake.hostport / ".jwt", make_jwt(time.time() + 600))
    fake.json("GET", "/api/auth/profile/list", {"profiles": PROFILES, "count": 2})
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args))


def profile_finds(fake: FakeServer) -> list[object]:
    return [r.json_param("find") for r in fake.calls("/api/auth/profile/list")]


def test_project_query_users_resolve_through_profiles(fake: FakeServer, bl) -> None:  # type: ignore[no-untyped-def]
    fake.json("GET", "/api/warehouse/project", {"projects": [], "count": 0})
    r = bl("project", "query", "-a", "alice", "-m", "B", "-g", "bob", "--json")
    assert (r.exit_code, r.output) == (0, "[]\n")
    (req,) = fake.calls("/api/warehouse/project")
    assert req.json_param("find") == {
        "removed": False,
        "$and": [
            {"admins": {"$in": ["1"]}},
            {"members": {"$in": ["2"]}},
            {"guests": {"$in": ["2"]}},
        ],
    }
    assert req.json_param("sort") == {"name": 1}
    assert (req.query["skip"], req.query["limit"]) == ("0", "100")
    lst = fake.calls("/api/auth/profile/list")[0]
    assert lst.query == {"limit": "0", "offset": "0", "find": '{"active":true}'}


def test_terminal_control_characters_from_the_server_are_shown_not_obeyed(fake, bl) -> None:  # type: ignore[no-untyped-def]
    """A project name can carry escape sequences (an OSC that retitles the terminal, a CSI that
    clears it, a carriage return that overwrites the line): plain output and errors show them
    escaped; newlines and tabs of a description stay; --json stays exact JSON."""
    name = "evil\x1b]0;pwned\x07 \x1b[2J\x9b31m name"
    desc = "line one\r\n\tline two\rOVERWRITE"
    project = {"_id": PID, "name": name, "desc": desc, "access": "public", "admins": [1]}
    fake.json("GET", "/api/warehouse/project", {"projects": [project], "count": 1})
    r = bl("project", "query")
    assert r.exit_code == 0, r.output
    for control in ("\x1b", "\x07", "\r", "\x9b"):
        assert control not in r.output
    assert "evil\\x1b]0;pwned\\x07" in r.output  # visible, as escapes
    assert "line one\n\tline two\\x0dOVERWRITE" in r.output
    r = bl("project", "query", "--json")
    assert json.loads(r.output)[0]["name"] == name
    fake.json("GET", "/api/warehouse/project", {"message": "no\x1b[2J way"}, status=403)
    r = bl("project", "query")
    assert r.exit_code == 4 and "\x1b" not in r.output and "no\\x1b[2J way" in r.output


def dataset_world(fake: FakeServer, n: int = 2, count: int = 2) -> None:
    fake.json(
        "GET",
        "/api/warehouse/datatype",
        {"datatypes": [{"_id": DTID, "name": "neuro/anat/t1w", "files": []}]},
    )
    fake.json(
        "GET",
        "/api/warehouse/project",
        {
            "projects": [
                {
                    "_id": PID,
                    "name": "O3D",
                    "admins": ["1"],
                    "members": ["1", "2"],
                    "guests": [],
                    "access": "public",
                }
            ]
        },
    )
    rows = [
        {
            "_id": f"{i:024x}",
            "project": PID,
            "datatype": DTID,
            "datatype_tags": ["acpc"],
            "tags": ["run1"],
            "meta": {"subject": "0008"},
            "desc": "t1",
            "create_date": "2018-10-04T01:47:38.000Z",
            "storage": "wrangler",
            "status": "stored",
        }
        for i in range(n)
    ]
    fake.json("GET", "/api/warehouse/dataset", {"datasets": rows, "count": count})


def test_data_query_resolves_and_fetches_only_what_the_page_needs(fake, bl) -> None:  # type: ignore[no-untyped-def]
    dataset_world(fake, n=2, count=250)
    r = bl("data", "query", "-d", "neuro/anat/t1w", "-p", "O3D", "--tag", "run1", "-l", "2")
    assert r.exit_code == 0, r.output
    dt_req, ds_lookup = fake.calls("/api/warehouse/datatype")
    assert dt_req.json_param("find") == {"name": "neuro/anat/t1w"} and dt_req.query["limit"] == "1"
    project_search, project_lookup = fake.calls("/api/warehouse/project")
    assert project_search.json_param("find")["$and"][0]["$or"][0] == {
        "name": {"$regex": "O3D", "$options": "ig"}
    }
    (ds,) = fake.calls("/api/warehouse/dataset")
    assert ds.json_param("find") == {
        "removed": False,
        "$and": [{"tags": {"$all": ["run1"]}}, {"project": PID}, {"datatype": DTID}],
    }
    assert "sort" not in ds.query and ds.query["limit"] == "2"
    # plain output: only the ids on the page, never the whole archive
    assert project_lookup.json_param("find") == {"_id": {"$in": [PID]}}
    assert ds_lookup.json_param("find") == {"_id": {"$in": [DTID]}}
    assert profile_finds(fake)[-1] == {"sub": {"$in": [1, 2]}}
    block = r.output.split("\n\n")[0]
    assert block.splitlines()[1:5] == [
        "Project: O3D",
        "Admins: alice",
        "Members: alice, bob",
        "Guests: ",
    ]
    assert "Datatype: neuro/anat/t1w<acpc>" in block
    assert r.output.endswith(
        "250 total data objects, showing first 2. To view the next 2, run 'bl data query "
        "--datatype neuro/anat/t1w --tag run1 --project O3D --limit 2 --skip 2'\n"
    )


@pytest.mark.parametrize(
    ("skip", "n", "count", "footer"),
    [
        (0, 2, 2, "Showing all 2 of 2 data objects"),
        (2, 2, 4, "Showing last 2 of 4 data objects"),
        (2, 2, 10, "Showing data objects 2 - 4 of 10"),
        (0, 0, 0, "Returned 0 results"),
    ],
)
def test_data_query_footers(fake, bl, skip: int, n: int, count: int, footer: str) -> None:  # type: ignore[no-untyped-def]
    dataset_world(fake, n=n, count=count)
    r = bl("data", "query", "--skip", str(skip), "--limit", "2")
    assert r.exit_code == 0
    assert r.output.rstrip("\n").endswith(footer)


def test_pub_query_plain(fake, bl) -> None:  # type: ignore[no-untyped-def]
    fake.json(
        "GET",
        "/api/warehouse/pub",
        {
            "pubs": [
                {
                    "_id": "P",
                    "name": "O3D pub",
                    "doi": "10.25663/bl.p.3",
                    "desc": "d",
                    "authors": ["1", "99"],
                    "releases": [
                        {"_id": "R1", "name": "1", "removed": False},
                        {"_id": "R0", "name": "", "removed": True},
                        {"_id": "R2", "name": "2", "removed": False},
                    ],
                }
            ]
        },
    )
    r = bl("pub", "query")
    assert r.output == (
        "Id: P\nName: O3D pub\nDOI: 10.25663/bl.p.3\nDescription: d\n"
        "Authors: alice, unknown\nRelease IDs: 1 (R1), 2 (R2)\n\n"
        "(Returned 1 result)\n"
    )


def test_datatype_and_profile_plain(fake, bl) -> None:  # type: ignore[no-untyped-def]
    fake.json(
        "GET",
        "/api/warehouse/datatype",
        {
            "datatypes": [
                {
                    "_id": DTID,
                    "name": "neuro/dwi",
                    "desc": "dwi",
                    "files": [
                        {"id": "dwi", "filename": "dwi.nii.gz", "required": True},
                        {"id": "bvals", "filename": "dwi.bvals", "required": False},
                    ],
                }
            ]
        },
    )
    r = bl("datatype", "query", "-q", "dwi")
    assert "Files: [(required) dwi: dwi.nii.gz]  [bvals: dwi.bvals]\n" in r.output
    req = fake.calls("/api/warehouse/datatype")[0]
    assert req.query["sort"] == "name" and "limit" not in req.query and "skip" not in req.query
    r = bl("profile", "query", "-q", "bob")
    assert r.output == (
        "sub: 2\nUsername: bob\nFull Name: Bob B\nEmail: b@x\nActive: true\n\n(Returned 1 result)\n"
    )


def test_task_query_find(fake, bl) -> None:  # type: ignore[no-untyped-def]
    fake.json("GET", "/api/amaretti/task", {"tasks": []})
    r = bl(
        "task",
        "query",
        "--group",
        "851",
        "--service",
        "brainlife/app-freesurfer",
        "--status",
        "finished",
        "--select",
        "config._inputs.meta",
        "--limit",
        "500",
        "-j",
    )
    assert (r.exit_code, r.output) == (0, "[]\n")
    (req,) = fake.calls("/api/amaretti/task")
    assert req.json_param("find") == {
        "_group_id": 851,
        "service": "brainlife/app-freesurfer",
        "status": "finished",
    }
    assert (req.query["select"], req.query["limit"]) == ("config._inputs.meta", "500")


def test_html_error_page_instead_of_tar(fake, bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake.json("GET", "/api/warehouse/dataset", {"datasets": [{"_id": DSID, "status": "stored"}]})
    fake.route(
        "GET",
        f"/api/warehouse/dataset/download/{DSID}",
        lambda r: (200, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"),
    )
    r = bl("data", "download", DSID, str(tmp_path / "out"))
    assert r.exit_code == 6
    assert "Error: The server sent an HTML page instead of the data object's tar" in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.bl-partial").exists()


class _CtrlCInBody:
    """A response whose body is interrupted (Ctrl-C) as soon as it is read."""

    def __init__(self, resp: object) -> None:
        self._resp = resp

    def __getattr__(self, name: str) -> object:
        if name in ("read", "read1", "readinto", "stream"):

            def interrupted(*a: object, **k: object) -> bytes:
                raise KeyboardInterrupt

            return interrupted
        return getattr(self._resp, name)


class _InterruptingTransport:
    """A real pool, except that the body of a tar download is interrupted (Ctrl-C)."""

    def __init__(self) -> None:
        import urllib3

        self.pool = urllib3.PoolManager()

    def request(self, method: str, url: str, **kwargs: object) -> object:
        resp = self.pool.request(method, url, **kwargs)  # type: ignore[arg-type]
        return _CtrlCInBody(resp) if "/dataset/download/" in url else resp

    def clear(self) -> None:
        self.pool.clear()


def test_interrupt_exits_130_and_cleans_up(fake, bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tar = make_tar([("t1.nii.gz", b"x" * 10, None)])
    fake.json("GET", "/api/warehouse/dataset", {"datasets": [{"_id": DSID, "status": "stored"}]})
    fake.route("GET", f"/api/warehouse/dataset/download/{DSID}", lambda r: (200, {}, tar))
    client = Client(fake.url, token=make_jwt(time.time() + 600), transport=_InterruptingTransport())
    r = CliRunner().invoke(
        cli, ["data", "download", DSID, str(tmp_path / "out")], obj={"client": client}
    )
    assert r.exit_code == 130
    assert "Interrupted" in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.bl-partial").exists()


def test_debug_shows_the_traceback(fake, bl) -> None:  # type: ignore[no-untyped-def]
    fake.json("GET", "/api/warehouse/project", {"message": "boom"}, status=500)
    r = bl("project", "query")
    assert (r.exit_code, r.output) == (1, "Error: The server answered HTTP 500: boom\n")
    r = bl("--debug", "project", "query")
    assert r.exit_code == 1 and type(r.exception).__name__ == "ApiError"


def test_missing_password_without_terminal(fake, bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("login", "--username", "alice")
    assert r.exit_code == 2 and "--password-stdin" in r.output


@pytest.mark.parametrize("args", [["--username", "", "--password", "pw"], ["--password", "pw"]])
def test_missing_username_without_terminal(fake, bl, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    """With a password given but no username, bl asked for one on a closed stdin and said
    only 'username: Aborted!' (exit 1)."""
    r = bl("login", *args)
    assert r.exit_code == 2, r.output
    assert "--username" in r.output and "Aborted" not in r.output


@pytest.mark.parametrize("ttl", ["nan", "inf", "1e308", "-1"])
def test_a_ttl_that_is_not_a_number_of_days_is_a_usage_error(fake, bl, ttl: str) -> None:  # type: ignore[no-untyped-def]
    for command in (["login", "--username", "a", "--password", "b"], ["refresh"]):
        r = bl(*command, "--ttl", ttl)
        assert r.exit_code == 2, r.output
        assert "--ttl" in r.output and "unexpected failure" not in r.output
    assert fake.requests == []


def test_give_up_after_nan_is_a_usage_error(fake, bl, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """NaN passed FloatRange(min=0) and made the retries wait forever without saying so."""
    r = bl("data", "download", DSID, "--give-up-after", "nan")
    assert r.exit_code == 2 and "--give-up-after" in r.output, r.output
    monkeypatch.setenv("BL_GIVE_UP_AFTER", "NaN")
    r = bl("data", "download", DSID)
    assert r.exit_code == 2 and "--give-up-after" in r.output, r.output
    assert fake.requests == []


def test_login_request_is_the_officials(fake: FakeServer) -> None:
    seen: list[Req] = []

    def login(req: Req):  # type: ignore[no-untyped-def]
        seen.append(req)
        return 200, {}, json.dumps({"jwt": make_jwt(time.time() + 86400 * 3), "sub": 1}).encode()

    fake.route("POST", "/api/auth/local/auth", login)
    r = CliRunner().invoke(cli, ["login", "--username", "u", "--password", "p", "--ttl", "3"])
    assert r.exit_code == 0 and r.output.startswith("Successfully logged in for 2 days, 23 hours")
    assert json.loads(seen[0].body) == {"username": "u", "password": "p", "ttl": 259200000}
    assert seen[0].headers["content-type"] == "application/json"


def test_version() -> None:
    from brainlife import __version__

    for args in (["version"], ["-V"], ["--version"]):
        assert CliRunner().invoke(cli, args).output == f"{__version__}\n"


def test_disk_full_exit_8_and_nothing_left(fake, bl, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    tar = make_tar([("t1.nii.gz", b"x" * 10, None)])
    fake.json("GET", "/api/warehouse/dataset", {"datasets": [{"_id": DSID, "status": "stored"}]})
    fake.route("GET", f"/api/warehouse/dataset/download/{DSID}", lambda r: (200, {}, tar))

    def full(fd: int, data: object, size: int = 0) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("brainlife.client.transfer.writes.write_all", full)
    r = bl("data", "download", DSID, str(tmp_path / "out"))
    assert r.exit_code == 8, r.output
    assert "Error: The disk is full: no space left while writing" in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.bl-partial").exists()


def test_progress_bar_only_when_asked(capsys) -> None:  # type: ignore[no-untyped-def]
    from brainlife.cli._output import progress_bar

    with progress_bar("x", enabled=False) as update:
        update(1, 2)
    assert capsys.readouterr() == ("", "")
    with progress_bar("x", enabled=True) as update:
        update(5, 10)
        update(10, 10)
