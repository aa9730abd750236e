"""`POST`/`PUT /api/warehouse/project` (`services.project_writes`): the creator is admin, the
project's group follows its admins and members into refreshed tokens, only admins change it,
and the access matrix of both routes."""

from __future__ import annotations

import json

import jwt
import pytest

from brainlife.server.models import User
from brainlife.server.services import accounts, auth

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()


NAMES = ("root", "ann", "mem", "gue", "out", "dis")


@pytest.fixture
def people(archive, http):
    """root: archive admin; ann creates the project; mem, gue: member and guest; out: nobody;
    dis: a member, disabled; tokens for each, plus a revoked one of ann's."""
    with archive.session() as s:
        subs = {
            n: accounts.add_user(s, username=n, password=PASSWORD, admin=n == "root").sub
            for n in NAMES
        }
        s.commit()
    toks = {n: login(http, n) for n in NAMES}
    toks["revoked"] = login(http, "ann")
    return {"subs": subs, "tokens": toks}


def login(http, name: str) -> str:
    r = http.post("/api/auth/local/auth", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["jwt"]


def h(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def project(archive, http, people):
    subs, toks = people["subs"], people["tokens"]
    body = {
        "name": "Lab study",
        "desc": "d",
        "access": "private",
        "members": [subs["mem"], subs["dis"]],
        "guests": [str(subs["gue"])],
    }
    r = http.post("/api/warehouse/project", headers=h(toks["ann"]), json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    with archive.session() as s:
        accounts.set_active(s, s.get(User, subs["dis"]), False)
        accounts.revoke_token(
            s, jwt.decode(toks["revoked"], options={"verify_signature": False})["jti"]
        )
        s.commit()
    return doc


def test_the_creator_is_admin_and_the_group_follows(http, people, project) -> None:
    subs = people["subs"]
    assert len(project["_id"]) == 24
    assert project["admins"] == [str(subs["ann"])]
    assert project["members"] == [str(subs["mem"]), str(subs["dis"])]
    assert project["guests"] == [str(subs["gue"])]
    assert project["user_id"] == str(subs["ann"]) and project["access"] == "private"
    gid = project["group_id"]
    # the old token lacks the new group; a refreshed one has it (admins first, then 0)
    old = jwt.decode(people["tokens"]["ann"], options={"verify_signature": False})
    assert gid not in old["gids"]
    fresh = http.post("/api/auth/refresh", headers=h(people["tokens"]["ann"]), json={}).json()
    gids = jwt.decode(fresh["jwt"], options={"verify_signature": False})["gids"]
    assert gids[: gids.index(0)] == [gid]
    mem = http.post("/api/auth/refresh", headers=h(people["tokens"]["mem"]), json={}).json()
    gids = jwt.decode(mem["jwt"], options={"verify_signature": False})["gids"]
    assert gids[gids.index(0) + 1 :] == [gid]
    gue = http.post("/api/auth/refresh", headers=h(people["tokens"]["gue"]), json={}).json()
    assert gid not in jwt.decode(gue["jwt"], options={"verify_signature": False})["gids"]


def test_a_new_project_is_listed_for_its_people_only(http, people, project) -> None:
    for who, sees in (("ann", True), ("gue", True), ("out", False)):
        r = http.get("/api/warehouse/project", headers=h(people["tokens"][who]))
        assert (project["_id"] in {p["_id"] for p in r.json()["projects"]}) is sees, who


def test_creator_cannot_be_left_out(http, people) -> None:
    subs = people["subs"]
    body = {"name": "x", "admins": [subs["mem"]]}
    r = http.post("/api/warehouse/project", headers=h(people["tokens"]["ann"]), json=body)
    assert r.json()["admins"] == [str(subs["ann"]), str(subs["mem"])]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "needs a name"),
        ({"name": "  "}, "needs a name"),
        ({"name": 5}, "needs a name"),
        ({"name": "x" * 513}, "too long"),
        ({"name": "x", "access": "secret"}, "access must be"),
        ({"name": "x", "listed": "yes"}, "listed must be"),
        ({"name": "x", "members": ["abc"]}, "not a user id"),
        ({"name": "x", "members": [424242]}, "no user with sub 424242"),
        ({"name": "x", "desc": "d" * (64 * 1024 + 1)}, "too long"),
        ({"name": "x", "readme": ["not", "text"]}, "readme must be a string"),
    ],
)
def test_bad_projects_are_400(http, people, body, message) -> None:
    r = http.post("/api/warehouse/project", headers=h(people["tokens"]["ann"]), json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]


def test_update_changes_what_is_sent_and_ignores_what_brainlife_ignores(
    http, people, project
) -> None:
    path = f"/api/warehouse/project/{project['_id']}"
    body = {
        "desc": "new",
        "readme": "# Read me",
        "listed": True,
        "user_id": "1",
        "group_id": 1,
        "create_date": "2000-01-01T00:00:00.000Z",
    }
    r = http.put(path, headers=h(people["tokens"]["ann"]), json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["desc"], doc["readme"], doc["listed"]) == ("new", "# Read me", True)
    assert doc["name"] == "Lab study"
    assert doc["user_id"] == project["user_id"] and doc["group_id"] == project["group_id"]
    assert doc["create_date"] == project["create_date"] and doc["update_date"]


def test_update_roles_keep_an_admin_and_move_the_group(http, people, project) -> None:
    subs, toks = people["subs"], people["tokens"]
    path = f"/api/warehouse/project/{project['_id']}"
    r = http.put(path, headers=h(toks["ann"]), json={"admins": []})
    assert r.status_code == 400 and "at least one admin" in r.json()["message"]
    r = http.put(path, headers=h(toks["ann"]), json={"admins": [subs["ann"], subs["mem"]]})
    assert r.status_code == 200
    # mem is an admin now: a refreshed token carries the group among its admin groups
    mem = http.post("/api/auth/refresh", headers=h(toks["mem"]), json={}).json()["jwt"]
    gids = jwt.decode(mem, options={"verify_signature": False})["gids"]
    assert gids[: gids.index(0)] == [project["group_id"]]
    r = http.put(path, headers=h(mem), json={"name": "Renamed by mem"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed by mem"


# -- the access matrix -------------------------------------------------------------------

CALLERS = ("anonymous", "out", "gue", "mem", "ann", "root", "dis", "revoked")
UPDATE = {
    "anonymous": 401,
    "out": 404,  # a private project it cannot see: not told it exists
    "gue": 403,
    "mem": 403,
    "ann": 200,
    "root": 200,
    "dis": 401,
    "revoked": 401,
}
CREATE = {**UPDATE, "out": 200, "gue": 200, "mem": 200}


@pytest.mark.parametrize("who", CALLERS)
def test_update_access_matrix(http, people, project, who: str) -> None:
    headers = {} if who == "anonymous" else h(people["tokens"][who])
    path = f"/api/warehouse/project/{project['_id']}"
    r = http.put(path, headers=headers, json={"desc": f"by {who}"})
    assert r.status_code == UPDATE[who], r.text
    if r.status_code != 200:
        assert r.json()["message"]
        # nothing changed
        doc = http.put(path, headers=h(people["tokens"]["ann"]), json={}).json()
        assert doc["desc"] == "d"


@pytest.mark.parametrize("who", CALLERS)
def test_create_access_matrix(http, people, project, who: str) -> None:
    headers = {} if who == "anonymous" else h(people["tokens"][who])
    r = http.post("/api/warehouse/project", headers=headers, json={"name": f"by {who}"})
    assert r.status_code == CREATE[who], r.text


def test_public_project_non_admins_get_403(http, people, project) -> None:
    path = f"/api/warehouse/project/{project['_id']}"
    http.put(path, headers=h(people["tokens"]["ann"]), json={"access": "public"})
    r = http.put(path, headers=h(people["tokens"]["out"]), json={"desc": "x"})
    assert r.status_code == 403 and "admins" in r.json()["message"]


def test_unknown_project_is_404(http, people) -> None:
    r = http.put("/api/warehouse/project/" + "f" * 24, headers=h(people["tokens"]["root"]), json={})
    assert r.status_code == 404


def test_a_projects_group_changes_only_through_the_project(http, people, project) -> None:
    path = f"/api/auth/group/{project['group_id']}"
    for who in ("ann", "root"):
        r = http.put(path, headers=h(people["tokens"][who]), json={"members": []})
        assert r.status_code == 400 and "bl project update" in r.json()["message"], r.text


def test_people_replaced_by_several_requests_at_once(http, people, project) -> None:
    """Each PUT deletes the project's roles and group members and inserts the new ones: at
    once, on PostgreSQL, all but one failed on the duplicate keys (a 500). One at a time now
    (`db.lock_writes`): every request succeeds and the last one's people remain, the group
    following them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    subs, toks = people["subs"], people["tokens"]
    path = f"/api/warehouse/project/{project['_id']}"
    bodies = [
        {"members": [subs["mem"], subs["out"]], "guests": [subs["gue"]]},
        {"members": [subs["out"]], "admins": [subs["ann"], subs["root"]]},
        {"members": [subs["mem"]], "guests": []},
    ] * 3
    for _round in range(2):
        start = threading.Barrier(len(bodies))

        def send(i: int, start: threading.Barrier = start):
            start.wait(timeout=30)
            return http.put(path, headers=h(toks["ann"]), json=bodies[i])

        with ThreadPoolExecutor(len(bodies)) as pool:
            got = list(pool.map(send, range(len(bodies))))
        assert [r.status_code for r in got] == [200] * len(bodies), [r.text for r in got]
    doc = http.get(
        "/api/warehouse/project", params={"find": f'{{"_id": "{project["_id"]}"}}'},
        headers=h(toks["ann"]),
    ).json()["projects"][0]  # fmt: skip
    groups = http.get("/api/auth/groups", headers=h(toks["root"])).json()
    [group] = [g for g in groups if g["id"] == doc["group_id"]]
    assert group["admins"] == sorted(int(s) for s in doc["admins"])
    assert group["members"] == sorted(int(s) for s in doc["members"] if s not in doc["admins"])


def test_a_nul_in_any_text_of_a_body_is_400_on_every_engine(http, people, project) -> None:
    """PostgreSQL's text cannot hold U+0000 and SQLite can: a NUL anywhere in a JSON body (a
    project's name or description, a data object's meta, a key) is refused before any service
    reads the body, with the same 400 on both, and nothing changes."""
    token = h(people["tokens"]["ann"])
    path = f"/api/warehouse/project/{project['_id']}"
    find = {"find": json.dumps({"_id": project["_id"]})}

    def current() -> dict:
        [doc] = http.get("/api/warehouse/project", headers=token, params=find).json()["projects"]
        return doc

    before = current()
    assert before["name"] == "Lab study"
    for body in (
        {"name": "a\x00b"},
        {"desc": "a\x00"},
        {"name": "ok", "meta": {"k": ["x", {"deep": "\x00"}]}},
        {"name": "ok", "a\x00": 1},
    ):
        for method, url in (("POST", "/api/warehouse/project"), ("PUT", path)):
            r = http.request(method, url, headers=token, json=body)
            assert r.status_code == 400, (method, body, r.text)
            assert "NUL character" in r.json()["message"], r.text
    assert current() == before
    r = http.get("/api/warehouse/project", headers=token, params={"find": '{"name": "ok"}'})
    assert r.json()["count"] == 0
