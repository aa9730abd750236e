"""`bl pub create` and `bl pub release` against a recording server: the bodies they send, what
they print, and their errors (one line, an exit code per kind: 2 usage, 3 nothing matches, 4 not
allowed, 9 the name is taken)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from brainlife.client import Conflict, NotFound, ReleaseFilter
from brainlife.client._config import write_token_file
from brainlife.client._queries import release_set
from tests.fake_server import FakeServer, make_jwt

PID = "5a022fc99c0d250055709e9c"
PUB = "6a022fc99c0d250055709e9d"
RID = "6b022fc99c0d250055709e9e"
DTID = "58c33bcee13a50849b25879a"
PROFILES = [
    {"sub": 1, "username": "alice", "fullname": "Alice A", "email": "a@x", "active": True},
    {"sub": 2, "username": "bob", "fullname": "Bob B", "email": "b@x", "active": True},
    {"sub": 3, "username": "bobby", "fullname": "Bobby C", "email": "c@x", "active": True},
]
ANSWER = {
    "dry_run": False,
    "pub": PUB,
    "release": {
        "removed": False,
        "_id": RID,
        "name": "2",
        "create_date": "2026-12-01T00:00:00.000Z",
        "sets": [{"datatype": {"_id": DTID, "name": "neuro/anat/t1w"}, "count": 3, "size": 3072}],
    },
    "count": 3,
    "size": 3072,
    "subjects": 3,
    "sessions": 0,
}


@pytest.fixture
def bl(fake: FakeServer):  # type: ignore[no-untyped-def]
    write_token_file(Path.home() / ".config" / fake.hostport / ".jwt", make_jwt(time.time() + 600))
    fake.json("GET", "/api/auth/profile/list", {"profiles": PROFILES, "count": 3})
    fake.json("GET", "/api/warehouse/project", {"projects": [{"_id": PID, "name": "O3D"}]})
    fake.json("GET", "/api/warehouse/datatype", {"datatypes": [{"_id": DTID, "name": "t1w"}]})
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args))


def test_create_sends_brainlifes_shape(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    fake.json("POST", "/api/warehouse/pub", {"_id": PUB, "name": "Paper", "releases": []})
    r = bl("pub", "create", "-p", "O3D", "-n", "Paper", "--desc", "D", "-a", "bob", "-a", "1",
           "--license", "cc0", "--tag", "t1")  # fmt: skip
    assert r.exit_code == 0, r.output
    (req,) = fake.calls("/api/warehouse/pub")
    assert req.method == "POST"
    assert json.loads(req.body) == {
        "project": PID,
        "name": "Paper",
        "desc": "D",
        "authors": ["2", "1"],  # "bob" is bob's username exactly (bobby only contains it)
        "license": "cc0",
        "tags": ["t1"],
    }
    assert r.output.splitlines()[0] == f"Created publication {PUB}: Paper"
    r = bl("pub", "create", "-p", "O3D", "-n", "Paper", "--json")
    assert json.loads(r.output) == {"_id": PUB, "name": "Paper", "releases": []}


def test_an_author_matching_several_users_is_refused(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = bl("pub", "create", "-p", "O3D", "-n", "Paper", "-a", "Bo")
    assert r.exit_code == 1
    assert "'Bo' matches 2 users: bob (2), bobby (3)" in r.output
    assert not fake.calls("/api/warehouse/pub")


def test_release_sends_one_set_of_the_filters(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    fake.json("POST", f"/api/warehouse/pub/release/{PUB}", ANSWER)
    filters = ["-d", "t1w", "--tag", "!bad", "--tag", "good", "--datatype_tag", "acpc"]
    filters += ["-b", "01", "-b", "02", "--session", "1", "-i", "x" * 24]
    r = bl("pub", "release", PUB, "--name", "2", *filters)
    assert r.exit_code == 0, r.output
    (req,) = fake.calls(f"/api/warehouse/pub/release/{PUB}")
    assert json.loads(req.body) == {
        "name": "2",
        "dry_run": False,
        "sets": [
            {
                "datatype": DTID,
                "datatype_tags": ["acpc"],
                "tags": ["!bad", "good"],
                "subjects": ["01", "02"],
                "sessions": ["1"],
                "ids": ["x" * 24],
            }
        ],
    }
    assert r.output.splitlines() == [
        f"Released 3 data objects (3.1 KB, 3 subjects, 0 sessions) as release '2' ({RID}) of "
        f"publication {PUB}:",
        "  neuro/anat/t1w: 3 data objects (3.1 KB)",
        f"The release is frozen: its objects can no longer change. Download it with 'bl pub "
        f"download {RID}' (or list it: 'bl data query --pub {RID}').",
    ]


def test_dry_run(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    answer = {**ANSWER, "dry_run": True, "release": {**ANSWER["release"], "_id": None}}
    fake.json("POST", f"/api/warehouse/pub/release/{PUB}", answer)
    r = bl("pub", "release", PUB, "--name", "2", "--dry-run")
    assert r.exit_code == 0, r.output
    (req,) = fake.calls(f"/api/warehouse/pub/release/{PUB}")
    body = json.loads(req.body)
    assert body["dry_run"] is True and body["sets"] == [release_set(ReleaseFilter())]
    assert "datatype" not in body["sets"][0]  # no --datatype: every datatype
    assert r.output.startswith("Would release 3 data objects (3.1 KB")
    assert r.output.splitlines()[-1].startswith("Nothing was changed")
    r = bl("pub", "release", PUB, "--name", "2", "--dry-run", "--json")
    assert json.loads(r.output) == answer


@pytest.mark.parametrize(
    ("status", "message", "code", "error"),
    [
        (409, "Publication x already has a release named '2' (y)", 9, Conflict),
        (404, "Nothing to release: no stored data object ...", 3, NotFound),
        (403, "Only the admins of project 'O3D' can change its publications.", 4, None),
        (400, "sets[0].subjects: 20000 values; at most 10000 are allowed.", 1, None),
    ],
)
def test_refusals_are_one_line_with_their_exit_code(  # type: ignore[no-untyped-def]
    bl, fake: FakeServer, status, message, code, error
) -> None:
    fake.json("POST", f"/api/warehouse/pub/release/{PUB}", {"message": message}, status=status)
    r = bl("pub", "release", PUB, "--name", "2")
    assert r.exit_code == code
    assert message in r.output and r.output.count("\n") == 1 and "Traceback" not in r.output
    if error is Conflict:
        assert r.output == f"Error: {message}\n"


def test_bad_arguments_are_usage_errors(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = bl("pub", "release", "o3d", "--name", "2")
    assert r.exit_code == 2 and "not a publication id" in r.output
    r = bl("pub", "release", PUB)
    assert r.exit_code == 2 and "--name" in r.output
    r = bl("pub", "create", "-n", "x")
    assert r.exit_code == 2 and "--project" in r.output
    assert not [q for q in fake.requests if q.method != "GET"]


def test_a_server_without_the_release_route_is_told_plainly(bl, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = bl("pub", "release", PUB, "--name", "2")  # the fake server has no such route
    assert r.exit_code == 1
    assert f"The server at {fake.url} has no release route" in r.output
    assert "Traceback" not in r.output
