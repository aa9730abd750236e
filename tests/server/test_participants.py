"""`GET`/`PUT /api/warehouse/participant/:projectid` (`services.participants`): who reads and
writes a project's participants table, and what a table may hold."""

from __future__ import annotations

import pytest

from brainlife.server.services import accounts, auth

PASSWORD = "correct horse battery"
NAMES = ("root", "adm", "mem", "gue", "out", "dis")
TABLE = [{"subject": "01", "age": "34", "sex": "F"}, {"subject": "02", "age": "n/a", "sex": "M"}]


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()


def h(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def world(archive, http):
    """A private and a public project (adm admin, mem member, gue guest), each with a table;
    a token per caller, 'dis' disabled and 'revoked' revoked after they were issued."""
    with archive.session() as s:
        subs = {
            n: accounts.add_user(s, username=n, password=PASSWORD, admin=n == "root").sub
            for n in NAMES
        }
        s.commit()

    def login(name: str) -> str:
        r = http.post("/api/auth/local/auth", json={"username": name, "password": PASSWORD})
        return r.json()["jwt"]

    toks = {n: login(n) for n in NAMES}
    toks["revoked"] = login("mem")
    ids = {}
    for access in ("private", "public"):
        body = {
            "name": access,
            "access": access,
            "members": [subs["mem"], subs["dis"]],
            "guests": [subs["gue"]],
        }
        pid = http.post("/api/warehouse/project", headers=h(toks["adm"]), json=body).json()["_id"]
        r = http.put(f"/api/warehouse/participant/{pid}", headers=h(toks["adm"]),
                     json={"subjects": TABLE, "columns": {"age": {"Units": "years"}}})  # fmt: skip
        assert r.status_code == 200, r.text
        ids[access] = pid
    with archive.session() as s:
        accounts.set_active(s, accounts.find_user(s, "dis"), False)
        import jwt

        jti = jwt.decode(toks["revoked"], options={"verify_signature": False})["jti"]
        accounts.revoke_token(s, jti)
        s.commit()
    return {"ids": ids, "tokens": toks}


CALLERS = ("anonymous", "out", "gue", "mem", "adm", "root", "dis", "revoked")
READ = {
    "private": {"anonymous": 404, "out": 404, "gue": 200, "mem": 200, "adm": 200, "root": 200},
    "public": dict.fromkeys(("anonymous", "out", "gue", "mem", "adm", "root"), 200),
}
WRITE = {
    "private": {"anonymous": 401, "out": 404, "gue": 403, "mem": 200, "adm": 200, "root": 200},
    "public": {"anonymous": 401, "out": 403, "gue": 403, "mem": 200, "adm": 200, "root": 200},
}


def _headers(world, who: str) -> dict[str, str]:
    return {} if who == "anonymous" else h(world["tokens"][who])


@pytest.mark.parametrize("access", ["private", "public"])
@pytest.mark.parametrize("who", CALLERS)
def test_read_access_matrix(http, world, access: str, who: str) -> None:
    expected = {"dis": 401, "revoked": 401, **READ[access]}[who]
    r = http.get(f"/api/warehouse/participant/{world['ids'][access]}", headers=_headers(world, who))
    assert r.status_code == expected, r.text
    if expected == 200:
        doc = r.json()
        assert doc["subjects"] == TABLE and doc["columns"] == {"age": {"Units": "years"}}
        assert doc["project"] == world["ids"][access]


@pytest.mark.parametrize("access", ["private", "public"])
@pytest.mark.parametrize("who", CALLERS)
def test_write_access_matrix(http, world, access: str, who: str) -> None:
    expected = {"dis": 401, "revoked": 401, **WRITE[access]}[who]
    path = f"/api/warehouse/participant/{world['ids'][access]}"
    r = http.put(path, headers=_headers(world, who), json={"subjects": [{"subject": who}]})
    assert r.status_code == expected, r.text
    after = http.get(path, headers=h(world["tokens"]["adm"])).json()["subjects"]
    assert after == ([{"subject": who}] if expected == 200 else TABLE)


def test_the_docs_and_the_cli_say_who_writes_as_the_matrix_does(http, world) -> None:
    """brainlife's rule: a project's writers are its admins and members (`bl bids upload`, run
    by any uploader, sends the table). The matrix above holds it; what people read must too."""
    from pathlib import Path

    from click.testing import CliRunner

    from brainlife.cli.main import cli
    from brainlife.server.services import participants

    assert {w for w, code in WRITE["private"].items() if code == 200} == {"mem", "adm", "root"}
    root = Path(__file__).resolve().parents[2]
    api = (root / "docs" / "api.md").read_text()
    section = api.split("## Participants", 1)[1].split("\n## ", 1)[0]
    put = " ".join(section.split("- `PUT`", 1)[1].split())
    assert "Project admins and members, and archive admins" in put, put
    row = next(line for line in api.splitlines() if line.startswith("| `PUT /api/warehouse/part"))
    assert "admins and members" in row, row
    cli_md = (root / "docs" / "cli.md").read_text()
    line = next(x for x in cli_md.splitlines() if "bl project participants import" in x)
    assert "import: project admins and members" in line, line
    doc = " ".join((participants.__doc__ or "").split())
    assert "its admins and members and archive admins write it" in doc, doc
    r = CliRunner().invoke(cli, ["project", "participants", "import", "--help"])
    assert "project admins and members" in " ".join(r.output.split()), r.output


def test_put_replaces_only_what_is_sent(http, world) -> None:
    path = f"/api/warehouse/participant/{world['ids']['private']}"
    adm = h(world["tokens"]["adm"])
    doc = http.put(path, headers=adm, json={"columns": {"sex": {"Levels": {"F": "f"}}}}).json()
    assert doc["subjects"] == TABLE and doc["columns"] == {"sex": {"Levels": {"F": "f"}}}


def test_null_columns_keep_the_columns(http, world) -> None:
    """The official `bl bids upload` sends `columns: null` beside a participants.tsv's rows."""
    path = f"/api/warehouse/participant/{world['ids']['private']}"
    adm = h(world["tokens"]["adm"])
    http.put(path, headers=adm, json={"columns": {"age": {"Units": "y"}}})
    r = http.put(path, headers=adm, json={"subjects": [{"subject": "01"}], "columns": None})
    assert r.status_code == 200, r.text
    assert r.json()["subjects"] == [{"subject": "01"}]
    assert r.json()["columns"] == {"age": {"Units": "y"}}


def test_a_first_table_sent_at_once_by_several_requests_is_made_once(http, world) -> None:
    """The first PUT of a project makes its row: requests at the same moment (the official
    `bl bids upload` run twice, say) must not both insert it (a 500 on the unique project)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    adm = h(world["tokens"]["adm"])
    for _round in range(6):  # each a new project: the race is on its first row
        pid = http.post("/api/warehouse/project", headers=adm, json={"name": "new"}).json()["_id"]
        start = threading.Barrier(12)

        def send(i: int, pid: str = pid, start: threading.Barrier = start):
            start.wait(timeout=30)
            body = {"subjects": [{"subject": f"s{i}"}], "columns": {"age": {}}}
            return http.put(f"/api/warehouse/participant/{pid}", headers=adm, json=body)

        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(send, range(12)))
        assert [r.status_code for r in got] == [200] * 12, [r.text for r in got]
        doc = http.get(f"/api/warehouse/participant/{pid}", headers=adm).json()
        assert doc["subjects"] in [[{"subject": f"s{i}"}] for i in range(12)]


def test_a_project_without_a_table_reads_empty(http, world) -> None:
    adm = h(world["tokens"]["adm"])
    pid = http.post("/api/warehouse/project", headers=adm, json={"name": "new"}).json()["_id"]
    doc = http.get(f"/api/warehouse/participant/{pid}", headers=adm).json()
    assert doc["subjects"] == [] and doc["columns"] == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Send {subjects"),
        ([], "Send {subjects"),
        ({"subjects": {"subject": "1"}}, "subjects must be a list"),
        ({"subjects": ["01"]}, "subjects[0] must be an object"),
        ({"subjects": [{"age": "3"}]}, "subjects[0].subject must be"),
        ({"subjects": [{"subject": " "}]}, "subjects[0].subject must be"),
        ({"subjects": [{"subject": "1"}, {"subject": "1"}]}, "appears twice"),
        ({"subjects": [{"subject": "1", "age": {"x": 1}}]}, "subjects[0].age must be"),
        ({"subjects": [{"subject": "1", "x" * 129: "1"}]}, "column name"),
        ({"subjects": [{"subject": "1", "a": "x" * 4097}]}, "too long"),
        ({"columns": ["age"]}, "columns must be an object"),
    ],
)
def test_bad_tables_are_400_and_change_nothing(http, world, body, message) -> None:
    path = f"/api/warehouse/participant/{world['ids']['private']}"
    adm = h(world["tokens"]["adm"])
    r = http.put(path, headers=adm, json=body)
    assert r.status_code == 400 and message in r.json()["message"], r.text
    assert http.get(path, headers=adm).json()["subjects"] == TABLE


def test_unknown_project_is_404(http, world) -> None:
    r = http.get("/api/warehouse/participant/" + "0" * 24, headers=h(world["tokens"]["root"]))
    assert r.status_code == 404
