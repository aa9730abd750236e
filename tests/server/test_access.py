"""Who sees what (brainlife-server.md §2.1), through the HTTP app.

Callers: anonymous, outsider (a token, no role), guest, member, admin (roles in every project),
and the site admins (`warehouse`/`amaretti` admin scopes). Projects: public, private, private
but listed, and private with one published data object.
"""

from __future__ import annotations

import json

import pytest

from tests.server import factories as f

ADMIN, MEMBER, GUEST, OUTSIDER, SITE_ADMIN = 10, 11, 12, 13, 99


@pytest.fixture
def world(archive):
    with archive.session() as s:
        roles = {"admins": [ADMIN], "members": [MEMBER], "guests": [GUEST]}
        p_pub = f.project(s, name="public", access="public", **roles)
        p_priv = f.project(s, name="private", access="private", **roles)
        p_listed = f.project(s, name="listed", access="private", listed=True, **roles)
        p_pubd = f.project(s, name="published", access="private", **roles)
        dt = f.datatype(s)
        pub = f.publication(s, p_pubd)
        release = pub.releases[0].id
        ds = {
            "d_pub": f.dataset(s, p_pub, dt, size=1),
            "d_priv": f.dataset(s, p_priv, dt, size=2),
            "d_listed": f.dataset(s, p_listed, dt, size=4),
            "d_published": f.dataset(s, p_pubd, dt, size=8, publications=[release]),
            "d_unpublished": f.dataset(s, p_pubd, dt, size=16),
        }
        groups = [p.group_id for p in (p_pub, p_priv, p_listed, p_pubd)]
        tasks = {
            "t_pub": f.task(s, user_id=ADMIN, group_id=p_pub.group_id),
            "t_priv": f.task(s, user_id=ADMIN, group_id=p_priv.group_id),
            "t_listed": f.task(s, user_id=MEMBER, group_id=p_listed.group_id),
            "t_own": f.task(s, user_id=OUTSIDER, group_id=p_priv.group_id),
        }
        s.commit()
        names = (
            {p.id: p.name for p in (p_pub, p_priv, p_listed, p_pubd)}
            | {row.id: name for name, row in ds.items()}
            | {row.id: n for n, row in tasks.items()}
        )
        return {"names": names, "groups": groups, "release": release, "tasks": tasks}


def headers(archive, world, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    sub = {"admin": ADMIN, "member": MEMBER, "guest": GUEST, "outsider": OUTSIDER}.get(
        who, SITE_ADMIN
    )
    # the auth group of a project holds its admins and members (not guests)
    gids = world["groups"] if who in ("admin", "member") else []
    scopes = {}
    if who == "site_admin":
        scopes = {"warehouse": ["user", "admin"], "amaretti": ["user", "admin"]}
    claims = {"sub": sub, "gids": [*gids, 0], "scopes": scopes, "profile": {"username": who}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def names(world, docs: list[dict]) -> set[str]:
    return {world["names"][d["_id"]] for d in docs}


ALL_PROJECTS = {"public", "private", "listed", "published"}
ALL_DATASETS = {"d_pub", "d_priv", "d_listed", "d_published", "d_unpublished"}
SIZES = {"d_pub": 1, "d_priv": 2, "d_listed": 4, "d_published": 8, "d_unpublished": 16}

PROJECTS = {
    "anonymous": {"public"},
    "outsider": {"public", "listed"},
    "guest": ALL_PROJECTS,
    "member": ALL_PROJECTS,
    "admin": ALL_PROJECTS,
    "site_admin": ALL_PROJECTS,
}


@pytest.mark.parametrize(("who", "expected"), PROJECTS.items())
def test_project_listing(archive, http, world, who: str, expected: set[str]) -> None:
    r = http.get("/api/warehouse/project", headers=headers(archive, world, who))
    assert r.status_code == 200
    body = r.json()
    assert names(world, body["projects"]) == expected
    assert body["count"] == len(expected)


def test_anonymous_cannot_widen_project_listing(archive, http, world) -> None:
    find = json.dumps({"$or": [{"access": "private"}, {"listed": True}]})
    r = http.get("/api/warehouse/project", params={"find": find})
    assert r.json() == {"projects": [], "count": 0}


DATASETS = {
    "outsider": {"d_pub", "d_published"},
    "guest": ALL_DATASETS,
    "member": ALL_DATASETS,
    "admin": ALL_DATASETS,
    "site_admin": ALL_DATASETS,
}


@pytest.mark.parametrize(("who", "expected"), DATASETS.items())
def test_dataset_listing(archive, http, world, who: str, expected: set[str]) -> None:
    h = headers(archive, world, who)
    body = http.get("/api/warehouse/dataset", headers=h).json()
    assert names(world, body["datasets"]) == expected
    assert body["count"] == len(expected)
    assert body["size"] == sum(SIZES[n] for n in expected)
    # count and size are computed in the database when the page is not the whole answer
    body = http.get("/api/warehouse/dataset", params={"limit": "1"}, headers=h).json()
    assert len(body["datasets"]) == 1
    assert body["count"] == len(expected)
    assert body["size"] == sum(SIZES[n] for n in expected)


def test_dataset_listing_needs_a_token(http, world) -> None:
    r = http.get("/api/warehouse/dataset")
    assert r.status_code == 401
    assert "message" in r.json()


def test_outsider_cannot_reach_private_data_with_find(archive, http, world) -> None:
    ids = [i for i, n in world["names"].items() if n in ("d_priv", "d_listed", "d_unpublished")]
    find = json.dumps({"$or": [{"_id": {"$in": ids}}, {"removed": False}]})
    h = headers(archive, world, "outsider")
    body = http.get("/api/warehouse/dataset", params={"find": find}, headers=h).json()
    assert names(world, body["datasets"]) == {"d_pub", "d_published"}


@pytest.mark.parametrize("who", ["anonymous", "outsider", "guest", "member", "admin"])
def test_release_datasets_are_public(archive, http, world, who: str) -> None:
    url = f"/api/warehouse/pub/datasets/{world['release']}"
    body = http.get(url, headers=headers(archive, world, who)).json()
    assert names(world, body["datasets"]) == {"d_published"}
    assert body["count"] == 1


def test_pubs_and_datatypes_are_public(http, world) -> None:
    assert http.get("/api/warehouse/pub").json()["count"] == 1
    assert http.get("/api/warehouse/datatype").json()["count"] == 1


TASKS = {
    "outsider": {"t_own"},
    "guest": set(),
    # t_own is in the private project's group, which members and admins belong to
    "member": {"t_pub", "t_priv", "t_listed", "t_own"},
    "admin": {"t_pub", "t_priv", "t_listed", "t_own"},
    "site_admin": {"t_pub", "t_priv", "t_listed", "t_own"},
}


@pytest.mark.parametrize(("who", "expected"), TASKS.items())
def test_task_listing(archive, http, world, who: str, expected: set[str]) -> None:
    h = headers(archive, world, who)
    body = http.get("/api/amaretti/task", headers=h).json()
    assert set(body) == {"tasks"}
    assert names(world, body["tasks"]) == expected
    # a caller's own top-level $or cannot widen access (it is ANDed with the access rule)
    find = json.dumps({"$or": [{"user_id": str(ADMIN)}, {"_group_id": {"$gte": 0}}]})
    body = http.get("/api/amaretti/task", params={"find": find}, headers=h).json()
    assert names(world, body["tasks"]) == expected
    for name, task in world["tasks"].items():
        r = http.get(f"/api/amaretti/task/{task.id}", headers=h)
        assert r.status_code == (200 if name in expected else 404), name


def test_task_routes_need_a_token(http, world) -> None:
    assert http.get("/api/amaretti/task").status_code == 401
    task = world["tasks"]["t_pub"]
    assert http.get(f"/api/amaretti/task/{task.id}").status_code == 401


def test_bad_token_is_401_even_where_none_is_needed(http, world) -> None:
    r = http.get("/api/warehouse/project", headers={"Authorization": "Bearer junk"})
    assert r.status_code == 401
