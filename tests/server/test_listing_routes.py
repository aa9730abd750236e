"""Every listing route through HTTP: envelopes, find/select/sort/skip/limit, and the exact
requests the official CLI and the user document's script send."""

from __future__ import annotations

import json

import pytest

from tests.server import factories as f

ALICE, BOB = 1, 2


@pytest.fixture
def world(archive):
    with archive.session() as s:
        o3d = f.project(s, name="O3D", access="public", admins=[ALICE], members=[ALICE, BOB],
                        desc="Open diffusion", group_id=851)  # fmt: skip
        other = f.project(s, name="Another", access="public", admins=[BOB], group_id=900)
        t1w = f.datatype(s, name="neuro/anat/t1w")
        dwi = f.datatype(s, name="neuro/dwi")
        pub = f.publication(s, o3d, name="O3D pub", releases=["1", "2"], authors=[str(ALICE)])
        release = pub.releases[0].id
        rows = [
            f.dataset(s, o3d, t1w, meta={"subject": "0008", "session": "1", "run": "2"},
                      tags=["a", "run1"], datatype_tags=["acpc"], desc="t1 (x) for 0008",
                      prov={"task_id": "5c0000000000000000000001"}, days=1, size=10,
                      publications=[release]),
            f.dataset(s, o3d, t1w, meta={"subject": "0008"}, tags=["a", "b"],
                      datatype_tags=["acpc"], desc="other", days=2, size=20),
            f.dataset(s, o3d, dwi, meta={"subject": "0009"}, tags=["a"], days=3, size=30,
                      removed=True, publications=[release]),
            f.dataset(s, other, t1w, meta={"subject": "0001"}, days=4, size=40),
        ]  # fmt: skip
        tasks = [
            f.task(s, group_id=851, service="brainlife/app-freesurfer", status="finished",
                   config={"_inputs": [{"meta": {"subject": "0008", "session": "1"}, "id": "t1"}],
                           "other": 1}),
            f.task(s, group_id=851, service="brainlife/app-freesurfer", status="failed",
                   config={"_inputs": [{"meta": {"subject": "0009"}}]}),
            f.task(s, group_id=851, service="brainlife/app-dipy", status="finished"),
        ]  # fmt: skip
        s.commit()
        return {
            "o3d": o3d.id, "other": other.id, "t1w": t1w.id, "dwi": dwi.id, "pub": pub.id,
            "release": release, "ds": [r.id for r in rows], "tasks": [t.id for t in tasks],
        }  # fmt: skip


@pytest.fixture
def auth(archive):
    claims = {"sub": ALICE, "gids": [851, 0], "scopes": {}, "profile": {"username": "alice"}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def get(http, auth, path: str, **params):
    r = http.get("/api/warehouse" + path, params=params, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_envelopes(http, auth, world) -> None:
    assert set(get(http, auth, "/project")) == {"projects", "count"}
    assert set(get(http, auth, "/datatype")) == {"datatypes", "count"}
    assert set(get(http, auth, "/dataset")) == {"datasets", "count", "size"}
    assert set(get(http, auth, "/pub")) == {"pubs", "count"}
    assert set(get(http, auth, f"/pub/datasets/{world['release']}")) == {"datasets", "count"}
    assert get(http, auth, "/health") == {"status": "ok", "messages": [], "reports": {}}
    r = http.get("/api/amaretti/task", headers=auth)
    assert set(r.json()) == {"tasks"}


def test_dataset_document(http, auth, world) -> None:
    body = get(http, auth, "/dataset", find=json.dumps({"_id": world["ds"][0]}))
    assert body["count"] == 1 and body["size"] == 10
    doc = body["datasets"][0]
    assert doc["_id"] == world["ds"][0]
    assert doc["project"] == world["o3d"] and doc["datatype"] == world["t1w"]
    assert doc["tags"] == ["a", "run1"] and doc["datatype_tags"] == ["acpc"]
    assert doc["publications"] == [world["release"]]
    assert doc["meta"] == {"subject": "0008", "session": "1", "run": "2"}
    assert doc["create_date"] == "2024-01-02T00:00:00.000Z"
    assert doc["status"] == "stored" and doc["storage"] == "local" and doc["removed"] is False
    assert doc["prov"] == {"task_id": "5c0000000000000000000001"}
    assert doc["__v"] == 0


def test_cli_data_query_full(http, auth, world) -> None:
    """`bl data query` with every flag (brainlife-cli.md §4.3), exactly as it is sent."""
    find = {
        "removed": False,
        "$and": [
            {"tags": {"$all": ["a"]}},
            {"tags": {"$nin": ["b"]}},
            {"datatype_tags": {"$all": ["acpc"]}},
            {"datatype_tags": {"$nin": ["x"]}},
            {"project": world["o3d"]},
            {"datatype": world["t1w"]},
            {"meta.subject": "0008"},
            {"meta.session": "1"},
            {"meta.run": "2"},
            {"prov.task_id": "5c0000000000000000000001"},
            {"$or": [
                {"_id": "t1 (x)"},
                {"name": {"$regex": "t1 \\(x\\)", "$options": "ig"}},
                {"desc": {"$regex": "t1 \\(x\\)", "$options": "ig"}},
            ]},
        ],
    }  # fmt: skip
    body = get(http, auth, "/dataset", find=json.dumps(find), skip="0", limit="100")
    assert [d["_id"] for d in body["datasets"]] == [world["ds"][0]]
    assert body["count"] == 1 and body["size"] == 10


def test_cli_data_query_pub(http, auth, world) -> None:
    """`--pub` drops `removed:false` and puts `publications` first."""
    find = {"$and": [{"publications": world["release"]}, {"meta.subject": "0009"}]}
    body = get(http, auth, "/dataset", find=json.dumps(find))
    assert [d["_id"] for d in body["datasets"]] == [world["ds"][2]]


def test_cli_project_query(http, auth, world) -> None:
    find = {
        "removed": False,
        "$and": [
            {"admins": {"$in": [str(ALICE)]}},
            {"members": {"$in": [str(BOB)]}},
            {"$or": [
                {"_id": "o3d"},
                {"name": {"$regex": "o3d", "$options": "ig"}},
                {"desc": {"$regex": "o3d", "$options": "ig"}},
            ]},
        ],
    }  # fmt: skip
    body = get(http, auth, "/project", find=json.dumps(find), sort='{"name":1}', skip="0",
               limit="100")  # fmt: skip
    assert body["count"] == 1
    doc = body["projects"][0]
    assert doc["_id"] == world["o3d"] and doc["name"] == "O3D"
    assert doc["admins"] == ["1"] and doc["members"] == ["1", "2"] and doc["guests"] == []
    assert doc["access"] == "public" and doc["listed"] is False and doc["group_id"] == 851


def test_cli_pub_query(http, auth, world) -> None:
    regex = {"$regex": "o3d", "$options": "ig"}
    find = {
        "removed": False,
        "$and": [{"authors": {"$in": [str(ALICE)]}}, {"$or": [{"name": regex}]}],
    }
    body = get(http, auth, "/pub", find=json.dumps(find), sort='{"name":1}')
    assert body["count"] == 1
    pub = body["pubs"][0]
    assert pub["authors"] == [str(ALICE)]
    assert [r["name"] for r in pub["releases"]] == ["1", "2"]
    assert list(pub["releases"][0])[:4] == ["removed", "_id", "name", "create_date"]


def test_cli_datatype_query(http, auth, world) -> None:
    body = get(http, auth, "/datatype", find=json.dumps({"name": "neuro/dwi"}), limit="1")
    assert [d["_id"] for d in body["datatypes"]] == [world["dwi"]]
    body = get(http, auth, "/datatype", sort="name", limit="0", offset="0")
    assert [d["name"] for d in body["datatypes"]] == ["neuro/anat/t1w", "neuro/dwi"]
    assert body["datatypes"][0]["files"][0]["filename"] == "t1.nii.gz"


def test_seed_task_query(http, auth, world) -> None:
    """The user document's Python script (seeds/001): freesurfer tasks of group 851."""
    find = {"_group_id": "851", "service": "brainlife/app-freesurfer", "status": "finished"}
    params = {
        "limit": 500,
        "select": "config._inputs.meta",
        "find": json.JSONEncoder().encode(find),
    }
    r = http.get("/api/amaretti/task", params=params, headers=auth)
    assert r.status_code == 200
    tasks = r.json()["tasks"]
    assert tasks == [
        {
            "_id": world["tasks"][0],
            "config": {"_inputs": [{"meta": {"subject": "0008", "session": "1"}}]},
        }
    ]
    assert tasks[0]["config"]["_inputs"][0]["meta"]["subject"] == "0008"


def test_task_document(http, auth, world) -> None:
    doc = http.get(f"/api/amaretti/task/{world['tasks'][0]}", headers=auth).json()
    assert doc["_group_id"] == 851 and doc["service"] == "brainlife/app-freesurfer"
    assert doc["status"] == "finished" and doc["config"]["other"] == 1
    assert doc["create_date"] == "2024-01-01T00:00:00.000Z"
    r = http.get("/api/amaretti/task/000000000000000000000000", headers=auth)
    assert r.status_code == 404 and "message" in r.json()


def test_sort_skip_limit(http, auth, world) -> None:
    ds = world["ds"]
    body = get(http, auth, "/dataset", sort="-create_date", limit="2")
    assert [d["_id"] for d in body["datasets"]] == [ds[3], ds[2]]
    assert body["count"] == 4 and body["size"] == 100
    body = get(http, auth, "/dataset", sort='{"create_date":-1}', skip="2", limit="1")
    assert [d["_id"] for d in body["datasets"]] == [ds[1]]
    assert body["count"] == 4
    body = get(http, auth, "/dataset", sort="meta.subject -create_date", limit="0")
    assert [d["_id"] for d in body["datasets"]] == [ds[3], ds[1], ds[0], ds[2]]
    body = get(http, auth, "/dataset", skip="10")
    assert body["datasets"] == [] and body["count"] == 4 and body["size"] == 100
    body = get(http, auth, "/project", sort='{"name":1}')
    assert [p["name"] for p in body["projects"]] == ["Another", "O3D"]


def test_select(http, auth, world) -> None:
    body = get(http, auth, "/dataset", select="meta.subject tags", limit="1")
    assert body["datasets"] == [{"_id": world["ds"][0], "meta": {"subject": "0008"},
                                 "tags": ["a", "run1"]}]  # fmt: skip
    body = get(http, auth, "/dataset", select="-meta -prov -_id", limit="1")
    doc = body["datasets"][0]
    assert "meta" not in doc and "prov" not in doc and "_id" not in doc and "tags" in doc
    body = get(http, auth, "/project", select="name")
    assert all(set(p) == {"_id", "name"} for p in body["projects"])


def test_single(http, auth, world) -> None:
    doc = get(http, auth, "/dataset", single="true", find=json.dumps({"_id": world["ds"][1]}))
    assert doc["_id"] == world["ds"][1]
    missing = json.dumps({"_id": "ffffffffffffffffffffffff"})
    r = http.get("/api/warehouse/dataset", params={"single": "true", "find": missing}, headers=auth)
    assert r.status_code == 200 and r.content == b""


def test_populate(http, auth, world) -> None:
    body = get(http, auth, "/dataset", populate="datatype project", limit="1")
    doc = body["datasets"][0]
    assert doc["datatype"]["name"] == "neuro/anat/t1w" and doc["project"]["name"] == "O3D"
    body = get(http, auth, "/dataset", populate='{"path":"bogus"}', limit="1")
    assert body["datasets"][0]["datatype"] == world["t1w"]


def test_deprecated_datatype_tags_param(http, auth, world) -> None:
    r = http.get("/api/warehouse/dataset", params=[("datatype_tags", "!acpc")], headers=auth)
    assert {d["_id"] for d in r.json()["datasets"]} == {world["ds"][2], world["ds"][3]}


def test_release_datasets(http, world) -> None:
    body = http.get(f"/api/warehouse/pub/datasets/{world['release']}",
                    params={"find": json.dumps({"meta.subject": "0008"})}).json()  # fmt: skip
    assert [d["_id"] for d in body["datasets"]] == [world["ds"][0]]
    body = http.get("/api/warehouse/pub/datasets/notanid").json()
    assert body == {"datasets": [], "count": 0}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/dataset", {"find": "{bad json"}),
        ("/dataset", {"find": "[1]"}),
        ("/dataset", {"find": '{"$where": "this.a"}'}),
        ("/dataset", {"find": '{"tags": {"$in": "a"}}'}),
        ("/dataset", {"find": '{"tags": {"$bogus": 1}}'}),
        ("/dataset", {"limit": "-1"}),
        ("/dataset", {"limit": "lots"}),
        ("/dataset", {"limit": "1000000"}),
        ("/dataset", {"skip": "-3"}),
        ("/dataset", {"sort": "nosuchfield"}),
        ("/dataset", {"sort": "tags"}),
        ("/dataset", {"select": "name -desc"}),
        ("/project", {"find": '{"group_id": "abc"}'}),
        ("/pub", {"sort": '{"name": 5}'}),
        ("/datatype", {"find": '{"name": {"$regex": "("}}'}),
    ],
)
def test_bad_requests(http, auth, world, path: str, params: dict) -> None:
    r = http.get("/api/warehouse" + path, params=params, headers=auth)
    assert r.status_code == 400
    assert r.json()["message"]


def test_bad_task_query(http, auth, world) -> None:
    r = http.get("/api/amaretti/task", params={"find": '{"$or": []}'}, headers=auth)
    assert r.status_code == 400 and "$or" in r.json()["message"]


def test_the_data_object_listing_runs_outside_any_transaction(archive, http, auth, world) -> None:
    """`GET /dataset` only reads: its session (`deps.ReadSession`) is in autocommit, so that on
    PostgreSQL no BEGIN and ROLLBACK round trips surround the token check, the page, its arrays
    and the totals (issue #11); each statement finds the driver's connection outside a
    transaction, on either engine. Results: the other tests of this module."""
    from sqlalchemy import event

    seen: list[tuple[str, bool]] = []

    def in_transaction(driver) -> bool:
        if hasattr(driver, "in_transaction"):  # sqlite3
            return bool(driver.in_transaction)
        return driver.info.transaction_status != 0  # psycopg: 0 is IDLE

    def record(conn, _cursor, statement, *_rest) -> None:
        seen.append((statement, in_transaction(conn.connection.driver_connection)))

    event.listen(archive.engine, "before_cursor_execute", record)
    try:
        body = get(http, auth, "/dataset", find=json.dumps({"removed": False}), limit="1")
    finally:
        event.remove(archive.engine, "before_cursor_execute", record)
    assert body["count"] == 3 and len(body["datasets"]) == 1
    assert len(seen) >= 3  # the token check, the page, its arrays (and maybe the totals)
    assert [s for s, inside in seen if inside] == []
