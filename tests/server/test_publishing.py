"""Publications and releases (`POST /pub`, `PUT /pub/:id`, ours `POST /pub/release/:id`): who may
do what, what a release freezes, that it never changes afterwards, and the rule curation uses
(`services.releases`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from brainlife.server.errors import Conflict
from brainlife.server.models import DatasetPublication, Publication, Release, User
from brainlife.server.principal import Principal
from brainlife.server.services import dataset_totals, releases
from tests.server import factories as f
from tests.server.test_dataset_totals import aggregates_from_scratch, stored_aggregates

ADMIN, MEMBER, GUEST, OUTSIDER, SITE_ADMIN = 10, 11, 12, 13, 99
WHO = ["anonymous", "outsider", "guest", "member", "admin", "site_admin"]


@pytest.fixture
def world(archive):
    with archive.session() as s:
        for sub in (ADMIN, MEMBER, GUEST, OUTSIDER, SITE_ADMIN):
            s.add(User(sub=sub, username=f"u{sub}", create_date=datetime.now(UTC)))
        roles = {"admins": [ADMIN], "members": [MEMBER], "guests": [GUEST]}
        priv = f.project(s, name="private", access="private", **roles)
        public = f.project(s, name="public", access="public", **roles)
        other = f.project(s, name="other", access="private", admins=[OUTSIDER])
        t1, dwi = f.datatype(s, name="neuro/anat/t1w"), f.datatype(s, name="neuro/dwi")
        objs: dict[str, Any] = {}
        for subj in ("01", "02", "03"):
            objs[f"t1_{subj}"] = f.dataset(
                s, priv, t1, meta={"subject": subj, "session": "1"}, tags=["good"], size=10
            )
            objs[f"dwi_{subj}"] = f.dataset(
                s,
                priv,
                dwi,
                meta={"subject": subj},
                tags=["good", "noisy"] * (subj == "03") or ["good"],
                datatype_tags=["preprocessed"],
                size=100,
            )
        objs["storing"] = f.dataset(s, priv, t1, meta={"subject": "04"}, status="storing")
        objs["removed"] = f.dataset(s, priv, t1, meta={"subject": "05"}, removed=True)
        objs["foreign"] = f.dataset(s, other, t1, meta={"subject": "01"})
        objs["public"] = f.dataset(s, public, t1, meta={"subject": "01"})
        pub = f.publication(s, priv, releases=[])
        s.commit()
        return {
            "pub": pub.id,
            "project": priv.id,
            "public_project": public.id,
            "other_project": other.id,
            "t1": t1.id,
            "dwi": dwi.id,
            "ids": {k: v.id for k, v in objs.items()},
        }


def headers(archive, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    sub = {"admin": ADMIN, "member": MEMBER, "guest": GUEST, "outsider": OUTSIDER}.get(
        who, SITE_ADMIN
    )
    scopes = {"warehouse": ["user", "admin"]} if who == "site_admin" else {}
    claims = {"sub": sub, "gids": [0], "scopes": scopes, "profile": {"username": who}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def release_rows(archive) -> list[tuple[str, str]]:
    with archive.session() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(DatasetPublication.dataset_id, DatasetPublication.release_id)
            ).all()
        ]


def count_rows(archive, model) -> int:
    with archive.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def release(http, archive, world, who="admin", **body: Any):
    body.setdefault("name", "1")
    body.setdefault("sets", [{"datatype": world["t1"]}])
    return http.post(
        f"/api/warehouse/pub/release/{world['pub']}", json=body, headers=headers(archive, who)
    )


# --- the access matrix ----------------------------------------------------------------------

CREATE = {
    "anonymous": 401,
    "outsider": 404,
    "guest": 403,
    "member": 403,
    "admin": 200,
    "site_admin": 200,
}


@pytest.mark.parametrize("who", WHO)
def test_create_only_by_project_admins(archive, http, world, who) -> None:
    body = {"project": world["project"], "name": "My paper", "desc": "d", "license": "cc0"}
    r = http.post("/api/warehouse/pub", json=body, headers=headers(archive, who))
    assert r.status_code == CREATE[who], r.text
    assert "message" in r.json() or r.status_code == 200
    pubs = count_rows(archive, Publication)
    if who in ("admin", "site_admin"):
        doc = r.json()
        sub = str(ADMIN if who == "admin" else SITE_ADMIN)
        assert doc["user_id"] == sub  # the creator is recorded
        assert doc["authors"] == [sub]  # and is the author unless others are named
        assert (doc["name"], doc["project"], doc["license"]) == (
            "My paper",
            world["project"],
            "cc0",
        )
        assert doc["releases"] == []
        assert pubs == 2
    else:
        assert pubs == 1  # nothing written


def test_outsider_gets_403_on_a_project_it_can_see(archive, http, world) -> None:
    body = {"project": world["public_project"], "name": "x"}
    r = http.post("/api/warehouse/pub", json=body, headers=headers(archive, "outsider"))
    assert r.status_code == 403
    assert "Only the admins of project 'public'" in r.json()["message"]


UPDATE = {
    "anonymous": 401,
    "outsider": 403,
    "guest": 403,
    "member": 403,
    "admin": 200,
    "site_admin": 200,
}


@pytest.mark.parametrize("who", WHO)
def test_update_only_by_project_admins(archive, http, world, who) -> None:
    r = http.put(
        f"/api/warehouse/pub/{world['pub']}",
        json={"name": "renamed", "authors": [str(MEMBER), GUEST]},
        headers=headers(archive, who),
    )
    assert r.status_code == UPDATE[who], r.text
    with archive.session() as s:
        pub = s.get(Publication, world["pub"])
        assert (pub.name == "renamed") is (who in ("admin", "site_admin"))
    if r.status_code == 200:
        assert r.json()["authors"] == [str(MEMBER), str(GUEST)]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("dry_run", [False, True])
def test_release_only_by_project_admins(archive, http, world, who, dry_run) -> None:
    r = release(http, archive, world, who, dry_run=dry_run)
    assert r.status_code == UPDATE[who], r.text
    written = release_rows(archive)
    if who in ("admin", "site_admin") and not dry_run:
        assert len(written) == 3
    else:
        assert written == []
        assert count_rows(archive, Release) == 0


# --- what a release freezes --------------------------------------------------------------------


def test_a_release_set_can_want_a_tag_starting_with_an_exclamation_mark(
    archive, http, world
) -> None:
    """`\\!odd` wants the tag `!odd`, `!!odd` excludes it (brainlife's sets cannot say it)."""
    with archive.session() as s:
        from brainlife.server.models import Datatype, Project

        project, t1 = s.get(Project, world["project"]), s.get(Datatype, world["t1"])
        odd = f.dataset(s, project, t1, meta={"subject": "09"}, tags=["!odd"]).id
        s.commit()
    dry = release(http, archive, world, sets=[{"tags": ["\\!odd"]}], dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["count"] == 1
    r = release(http, archive, world, sets=[{"datatype": world["t1"], "tags": ["!!odd"]}])
    assert r.status_code == 200, r.text
    assert odd not in {d for d, _rel in release_rows(archive)}
    assert r.json()["count"] == 3  # t1_01..03; storing and removed objects are never released


def test_release_freezes_exactly_the_filtered_objects(archive, http, world) -> None:
    ids = world["ids"]
    sets = [
        {"datatype": world["dwi"], "tags": ["good", "!noisy"], "datatype_tags": ["preprocessed"]},
        {"datatype": {"_id": world["t1"]}, "subjects": ["02", "03", 4]},
    ]
    dry = release(http, archive, world, sets=sets, dry_run=True).json()
    r = release(http, archive, world, sets=sets, desc="first")
    assert r.status_code == 200, r.text
    doc = r.json()
    want = {ids["dwi_01"], ids["dwi_02"], ids["t1_02"], ids["t1_03"]}
    rid = doc["release"]["_id"]
    assert {d for d, rel in release_rows(archive) if rel == rid} == want
    assert (doc["count"], doc["size"], doc["subjects"], doc["sessions"]) == (4, 220, 3, 2)
    assert doc["dry_run"] is False and dry["dry_run"] is True
    # the dry run said exactly this
    assert {k: dry[k] for k in ("count", "size", "subjects", "sessions")} == {
        k: doc[k] for k in ("count", "size", "subjects", "sessions")
    }
    assert dry["release"]["sets"] == doc["release"]["sets"]
    sets_doc = doc["release"]["sets"]
    assert [(s["datatype"]["name"], s["count"], s["size"]) for s in sets_doc] == [
        ("neuro/dwi", 2, 200),
        ("neuro/anat/t1w", 2, 20),
    ]
    assert sets_doc[1]["subjects"] == ["02", "03", "4"]
    # the publication shows it in brainlife's shape (the document's jq .[0].releases)
    pub = http.get("/api/warehouse/pub", params={"find": json.dumps({"_id": world["pub"]})})
    (rel,) = pub.json()["pubs"][0]["releases"]
    assert list(rel)[:4] == ["removed", "_id", "name", "create_date"]
    assert (rel["name"], rel["desc"], rel["user_id"]) == ("1", "first", str(ADMIN))


def test_a_set_without_datatype_takes_every_datatype(archive, http, world) -> None:
    r = release(http, archive, world, sets=[{"subjects": ["01"]}])
    assert r.json()["count"] == 2
    names = [s["datatype"]["name"] for s in r.json()["release"]["sets"]]
    assert names == ["neuro/anat/t1w", "neuro/dwi"]


def test_only_stored_objects_of_the_project_that_are_not_removed(archive, http, world) -> None:
    r = release(http, archive, world, sets=[{"datatype": world["t1"]}])
    frozen = {d for d, _ in release_rows(archive)}
    ids = world["ids"]
    assert frozen == {ids["t1_01"], ids["t1_02"], ids["t1_03"]}
    assert r.json()["count"] == 3


def test_anonymous_reads_only_the_released_objects_of_a_private_project(
    archive, http, world
) -> None:
    rid = release(http, archive, world, sets=[{"subjects": ["01"]}]).json()["release"]["_id"]
    ids = world["ids"]
    listing = http.get(f"/api/warehouse/pub/datasets/{rid}").json()
    assert {d["_id"] for d in listing["datasets"]} == {ids["t1_01"], ids["dwi_01"]}
    assert listing["count"] == 2
    # an outsider's token reads the released objects of the private project, and no other
    h = headers(archive, "outsider")
    find = json.dumps({"project": world["project"]})
    seen = http.get("/api/warehouse/dataset", params={"find": find}, headers=h).json()
    assert {d["_id"] for d in seen["datasets"]} == {ids["t1_01"], ids["dwi_01"]}
    assert seen["count"] == 2
    # without a token there is no dataset listing at all (brainlife: token required)
    assert http.get("/api/warehouse/dataset", params={"find": find}).status_code == 401


def test_release_counts_are_exact(archive, http, world) -> None:
    r1 = release(http, archive, world, name="1", sets=[{"datatype": world["dwi"]}])
    r2 = release(http, archive, world, name="2", sets=[{"subjects": ["01", "02"]}])
    with archive.session() as s:
        assert stored_aggregates(s) == aggregates_from_scratch(s)
        for r in (r1, r2):
            rid = r.json()["release"]["_id"]
            principal = Principal(sub=OUTSIDER)
            fast = dataset_totals.fast_totals(s, principal, {"publications": rid})
            assert fast == (r.json()["count"], r.json()["size"])
    assert (r1.json()["count"], r2.json()["count"]) == (3, 4)
    # an object in two releases is listed once by each
    for r in (r1, r2):
        rid = r.json()["release"]["_id"]
        body = http.get(
            "/api/warehouse/dataset",
            params={"find": json.dumps({"publications": rid}), "limit": "1"},
            headers=headers(archive, "outsider"),
        ).json()
        assert body["count"] == r.json()["count"]
        assert body["size"] == r.json()["size"]


# --- releases are immutable ----------------------------------------------------------------------


def test_a_release_name_cannot_be_reused(archive, http, world) -> None:
    assert release(http, archive, world, name="1").status_code == 200
    before = release_rows(archive)
    r = release(http, archive, world, name="1", sets=[{"datatype": world["dwi"]}])
    assert r.status_code == 409
    assert "already has a release named '1'" in r.json()["message"]
    assert release_rows(archive) == before
    # through brainlife's PUT too
    r = http.put(
        f"/api/warehouse/pub/{world['pub']}",
        json={"releases": [{"name": "1", "sets": [{"datatype": world["dwi"]}]}]},
        headers=headers(archive, "admin"),
    )
    assert r.status_code == 409
    assert release_rows(archive) == before


def test_the_name_of_a_removed_release_is_not_reused(archive, http, world) -> None:
    with archive.session() as s:
        s.add(
            Release(
                id=f.oid(),
                pub_id=world["pub"],
                pos=0,
                name="old",
                removed=True,
                create_date=f.when(),
            )
        )
        s.commit()
    assert release(http, archive, world, name="old").status_code == 409


def test_the_database_refuses_two_live_releases_of_one_name(archive, world) -> None:
    with archive.session() as s:
        for _ in range(2):
            s.add(Release(id=f.oid(), pub_id=world["pub"], pos=0, name="x", create_date=f.when()))
        with pytest.raises(IntegrityError):
            s.commit()


def test_put_freezes_new_releases_and_never_reruns_old_ones(archive, http, world) -> None:
    """brainlife re-runs doRelease for every release on each PUT: an object added later that
    matches release 1's sets would join it. Here release 1 keeps its objects."""
    h = headers(archive, "admin")
    url = f"/api/warehouse/pub/{world['pub']}"
    body = {"releases": [{"name": "1", "sets": [{"datatype": world["t1"]}]}]}
    doc = http.put(url, json=body, headers=h).json()
    (r1,) = doc["releases"]
    first = {d for d, rel in release_rows(archive) if rel == r1["_id"]}
    assert len(first) == 3 and r1["count"] == 3
    with archive.session() as s:
        proj = s.get(f.Project, world["project"])
        dt = s.get(f.Datatype, world["t1"])
        late = f.dataset(s, proj, dt, meta={"subject": "09"}).id
        s.commit()
    # the UI sends the whole document back, with release 1 as it got it, and a new release
    doc["releases"].append({"name": "2", "sets": [{"datatype": world["t1"]}]})
    doc["desc"] = "now with release 2"
    r = http.put(url, json=doc, headers=h)
    assert r.status_code == 200, r.text
    assert [x["name"] for x in r.json()["releases"]] == ["1", "2"]
    rows = release_rows(archive)
    assert {d for d, rel in rows if rel == r1["_id"]} == first
    r2 = r.json()["releases"][1]["_id"]
    assert {d for d, rel in rows if rel == r2} == first | {late}
    # renaming an existing release is refused; leaving it out keeps it
    r1["name"] = "one"
    assert http.put(url, json={"releases": [r1]}, headers=h).status_code == 409
    assert http.put(url, json={"releases": []}, headers=h).status_code == 200
    names = [x["name"] for x in http.get("/api/warehouse/pub").json()["pubs"][0]["releases"]]
    assert names == ["1", "2"]


def test_a_release_of_no_objects_is_refused(archive, http, world) -> None:
    r = release(http, archive, world, sets=[{"datatype": world["t1"], "subjects": ["77"]}])
    assert r.status_code == 404
    assert r.json()["message"].startswith("Nothing to release: no stored data object")
    assert "subjects 77" in r.json()["message"]
    # and what to do next: look at what the project holds, try filters without releasing
    assert f"'bl data query -p {world['project']}'" in r.json()["message"]
    assert "'bl pub release --dry-run'" in r.json()["message"]
    assert count_rows(archive, Release) == 0 and release_rows(archive) == []


def test_create_with_a_release_of_no_objects_writes_nothing(archive, http, world) -> None:
    body = {
        "project": world["project"],
        "name": "p",
        "releases": [{"name": "1", "sets": [{"datatype": world["t1"], "tags": ["none"]}]}],
    }
    r = http.post("/api/warehouse/pub", json=body, headers=headers(archive, "admin"))
    assert r.status_code == 404
    assert count_rows(archive, Publication) == 1 and count_rows(archive, Release) == 0


def test_the_rule_for_curation(archive, http, world) -> None:
    ids = world["ids"]
    release(http, archive, world, sets=[{"subjects": ["01"]}])
    with archive.session() as s:
        assert releases.dataset_is_released(s, ids["t1_01"])
        assert not releases.dataset_is_released(s, ids["t1_02"])
        assert set(releases.released_among(s, [ids["t1_01"], ids["t1_02"], ids["dwi_01"]])) == {
            ids["t1_01"],
            ids["dwi_01"],
        }
        releases.refuse_released(s, [ids["t1_02"]], "deleted")  # not released: fine
        with pytest.raises(Conflict) as err:
            releases.refuse_released(s, [ids["t1_02"], ids["dwi_01"]], "deleted")
        assert f"{ids['dwi_01']} is in release '1' of publication 'pub'" in err.value.message
        assert err.value.message.startswith("Released data objects cannot be deleted")
        released = s.scalars(
            select(f.Dataset.id).where(releases.released_clause()).order_by(f.Dataset.id)
        ).all()
        assert set(released) == {ids["t1_01"], ids["dwi_01"]}


# --- hostile input -------------------------------------------------------------------------------


def test_objects_of_another_project_cannot_be_released(archive, http, world) -> None:
    ids = world["ids"]
    for foreign in ("foreign", "public", "storing", "removed"):
        r = release(http, archive, world, sets=[{"ids": [ids["t1_01"], ids[foreign]]}])
        assert r.status_code == 400, foreign
        assert ids[foreign] in r.json()["message"]
        assert "not stored data objects of the publication's project" in r.json()["message"]
    assert release_rows(archive) == []
    # nor by naming another project in the body
    r = release(http, archive, world, sets=[{"datatype": world["t1"]}], project="x" * 24)
    assert {d for d, _ in release_rows(archive)} == {ids["t1_01"], ids["t1_02"], ids["t1_03"]}
    assert r.status_code == 200


def test_a_project_admin_cannot_release_into_another_projects_publication(
    archive, http, world
) -> None:
    r = release(http, archive, world, "outsider", sets=[{"ids": [world["ids"]["foreign"]]}])
    assert r.status_code == 403
    assert release_rows(archive) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"sets": [{"subjects": [f"s{i}" for i in range(20_000)]}]}, "at most 10000"),
        (
            {
                "sets": [
                    {"subjects": [f"a{i}" for i in range(6000)]},
                    {"sessions": [f"b{i}" for i in range(6000)]},
                ]
            },
            "more than 10000",
        ),
        ({"sets": [{"datatype": "neuro/anat/t1w"}] * 65}, "65 sets; at most 64"),
        ({"sets": [{"tags": [f"t{i}" for i in range(65)]}]}, "at most 64"),
        ({"sets": [{"tags": ["x" * 300]}]}, "at most 256"),
        ({"sets": [{"subjects": ["x" * 129]}]}, "at most 128"),
        ({"sets": [{"tags": ["!"]}]}, "'!' alone"),
        ({"sets": [{"ids": ["nope"]}]}, "not a data object id"),
        ({"sets": [{"datatype": "neuro/none"}]}, "no datatype 'neuro/none'"),
        ({"sets": [{"subjects": [{"$ne": 1}]}]}, "must be a string"),
        ({"sets": [{"subjects": "01"}]}, "must be a list"),
        ({"sets": []}, "at least one set"),
        ({"sets": "all"}, "at least one set"),
        ({"sets": [["x"]]}, "must be an object"),
        ({"name": ""}, "name: must not be empty"),
        ({"name": "x" * 257}, "at most 256"),
        ({"name": ["1"]}, "name: must be a string"),
        ({"name": "a\x00b"}, "NUL"),
        ({"dry_run": "yes"}, "dry_run: must be true or false"),
    ],
)
def test_bad_release_requests_are_clear_400s(archive, http, world, body, message) -> None:
    r = release(http, archive, world, **body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert release_rows(archive) == [] and count_rows(archive, Release) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x"}, "project: give the id"),
        ({"project": "nope", "name": "x"}, "project: give the id"),
        ({"project": "5" * 24, "name": "x"}, "No project 555"),
        ("PROJECT", "must be a JSON object"),
        ({"name": "x", "project": "P", "authors": ["nobody"]}, "project: give the id"),
    ],
)
def test_bad_create_requests(archive, http, world, body, message) -> None:
    r = http.post("/api/warehouse/pub", json=body, headers=headers(archive, "admin"))
    assert r.status_code in (400, 404), r.text
    assert message in r.json()["message"]
    assert count_rows(archive, Publication) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"authors": ["nobody"]}, "authors: 'nobody' is not a user id"),
        ({"authors": ["424242"]}, "authors: no user with id 424242"),
        # beyond PostgreSQL's INTEGER (SQLite holds it): no account has it, on either engine
        ({"authors": ["99999999999"]}, "authors: no user with id 99999999999"),
        ({"contributors": [2**31]}, f"contributors: no user with id {2**31}"),
        ({"authors": ["9" * 30]}, "is not a user id"),
        ({"contributors": [10**30]}, "is not a user id"),
        ({"authors": ["١٢"]}, "is not a user id"),
        ({"contributors": [True]}, "must be a string"),
        ({"name": ""}, "name: must not be empty"),
        ({"desc": "d" * 70_000}, "desc: 70000 characters"),
        ({"license": 5}, "license: must be a string"),
        ({"removed": "yes"}, "removed: must be true or false"),
        ({"project": "6" * 24}, "cannot move to another project"),
        ({"releases": [{"_id": "7" * 24}]}, "is not a release of this publication"),
        ({"releases": "1"}, "releases: must be a list"),
        ({"releases": [{"name": str(i), "sets": [{}]} for i in range(9)]}, "at most 8"),
        ({"tags": ["t"] * 101}, "at most 100"),
    ],
)
def test_bad_update_requests(archive, http, world, body, message) -> None:
    url = f"/api/warehouse/pub/{world['pub']}"
    r = http.put(url, json=body, headers=headers(archive, "admin"))
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    with archive.session() as s:
        assert s.get(Publication, world["pub"]).name == "pub"


def test_a_publication_holds_a_bounded_number_of_releases(
    archive, http, world, monkeypatch
) -> None:
    """Its pages and documents list every release: past `MAX_RELEASES` a new one is a 409
    pointing to a new publication, by either route, dry run included."""
    from brainlife.server.services import publishing

    monkeypatch.setattr(publishing, "MAX_RELEASES", 2)
    assert release(http, archive, world, name="1").status_code == 200
    assert release(http, archive, world, name="2").status_code == 200
    for dry_run in (True, False):
        r = release(http, archive, world, name="3", dry_run=dry_run)
        assert r.status_code == 409 and "has 2 releases" in r.json()["message"], r.text
        assert "bl pub create" in r.json()["message"]
    r = http.put(
        f"/api/warehouse/pub/{world['pub']}",
        json={"releases": [{"name": "3", "sets": [{"datatype": world["t1"]}]}]},
        headers=headers(archive, "admin"),
    )
    assert r.status_code == 409, r.text
    assert count_rows(archive, Release) == 2


def test_unknown_and_removed_publications(archive, http, world) -> None:
    h = headers(archive, "admin")
    for pid in ("5" * 24, "not-an-id"):
        assert http.put(f"/api/warehouse/pub/{pid}", json={}, headers=h).status_code == 404
        r = http.post(f"/api/warehouse/pub/release/{pid}", json={"name": "1"}, headers=h)
        assert r.status_code == 404 and "'bl pub query' lists" in r.json()["message"], r.text
    assert http.put(f"/api/warehouse/pub/{world['pub']}", json={"removed": True}, headers=h).json()[
        "removed"
    ]
    r = release(http, archive, world)
    assert r.status_code == 409 and "is removed" in r.json()["message"]
