"""Curation in-process over a copy of the demo world: `PUT`/`DELETE /dataset/:id` and our
`GET /dataset/history/:id` — what changes, who may (the access matrix of each route), released
objects frozen (409), soft delete and restore, the history of every change, and the listing's
counts (trigger-kept aggregates) exact after each."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exists, func, select

from brainlife.server.app import create_app
from brainlife.server.archive import Archive, open_archive
from brainlife.server.demo.world import GUEST_PROJECT, O3D_PROJECT, PRIVATE_PROJECT, TP_PROJECT
from brainlife.server.models import Dataset, DatasetPublication, DatasetTag
from brainlife.server.settings import Settings
from tests.conftest import make_token


@pytest.fixture
def archive(demo_archive_dir: Path, tmp_path: Path) -> Iterator[Archive]:
    data = tmp_path / "data"
    shutil.copytree(demo_archive_dir, data)
    arch = open_archive(Settings(data_dir=data, failed_login_delay=0.0))
    yield arch
    arch.engine.dispose()


@pytest.fixture
def http(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive=archive)) as client:
        yield client


def auth(archive: Archive, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(archive, user)}"}


def pick(archive: Archive, project: str, *, published: bool = False) -> str:
    pub = exists().where(DatasetPublication.dataset_id == Dataset.id)
    with archive.session() as s:
        found = s.scalar(
            select(Dataset.id)
            .where(
                Dataset.project_id == project,
                Dataset.status == "stored",
                Dataset.removed.is_(False),
                pub if published else ~pub,
            )
            .order_by(Dataset.id)
        )
    assert found is not None
    return str(found)


def listing(http: TestClient, h: dict[str, str], find: dict[str, Any]) -> dict[str, Any]:
    res = http.get(
        "/api/warehouse/dataset", params={"find": json.dumps(find), "limit": 1}, headers=h
    )
    assert res.status_code == 200, res.text
    return dict(res.json())


def brute_count(archive: Archive, project: str, *, removed: bool, tag: str | None = None) -> int:
    with archive.session() as s:
        stmt = (
            select(func.count())
            .select_from(Dataset)
            .where(Dataset.project_id == project, Dataset.removed.is_(removed))
        )
        if tag is not None:
            stmt = stmt.where(
                exists().where(DatasetTag.dataset_id == Dataset.id, DatasetTag.tag == tag)
            )
        return int(s.scalar(stmt) or 0)


def test_update_replaces_the_fields_and_records_who_and_when(
    http: TestClient, archive: Archive
) -> None:
    h = auth(archive, "avesani")  # a member of O3D, not the uploader
    ds_id = pick(archive, O3D_PROJECT)
    before = http.get(
        "/api/warehouse/dataset", params={"find": json.dumps({"_id": ds_id})}, headers=h
    ).json()["datasets"][0]
    body = {
        "desc": "fixed",
        "tags": ["curated", "curated", "v2"],
        "datatype_tags": ["defaced"],
        "meta": {**before["meta"], "session": "2", "note": "checked"},
    }
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json=body, headers=h)
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["_canedit"] is True and doc["desc"] == "fixed"
    assert doc["tags"] == ["curated", "v2"] and doc["datatype_tags"] == ["defaced"]
    assert doc["meta"]["session"] == "2" and doc["meta"]["note"] == "checked"
    assert doc.get("prov") == before.get("prov") and doc["user_id"] == before["user_id"]
    assert doc["update_date"]
    # the promoted column follows meta: a query on meta.session finds it
    assert listing(http, h, {"_id": ds_id, "meta.session": "2"})["count"] == 1
    [event] = http.get(f"/api/warehouse/dataset/history/{ds_id}", headers=h).json()["events"]
    assert event["user_id"] == "2" and event["action"] == "update" and event["date"]
    assert event["changes"]["desc"] == {"from": before["desc"], "to": "fixed"}
    assert set(event["changes"]) == {"desc", "tags", "datatype_tags", "meta"}
    # the same request again changes nothing and records nothing
    assert http.put(f"/api/warehouse/dataset/{ds_id}", json=body, headers=h).status_code == 200
    assert len(http.get(f"/api/warehouse/dataset/history/{ds_id}", headers=h).json()["events"]) == 1


@pytest.mark.parametrize(
    ("user", "project", "status"),
    [
        (None, O3D_PROJECT, 401),
        ("demo", O3D_PROJECT, 403),  # public project, not a member
        ("demo", GUEST_PROJECT, 403),  # a guest reads, never writes
        ("demo", PRIVATE_PROJECT, 403),  # cannot even read it
        ("frakkopesto", O3D_PROJECT, 200),  # admin and member
        ("hayashis", GUEST_PROJECT, 200),
    ],
)
def test_access_matrix(
    http: TestClient, archive: Archive, user: str | None, project: str, status: int
) -> None:
    h = auth(archive, user) if user else {}
    ds_id = pick(archive, project)
    put = http.put(f"/api/warehouse/dataset/{ds_id}", json={"desc": "x"}, headers=h)
    assert put.status_code == status, put.text
    history = http.get(f"/api/warehouse/dataset/history/{ds_id}", headers=h)
    assert history.status_code == {401: 401, 200: 200}.get(
        status, 200 if project != PRIVATE_PROJECT else 403
    )
    delete = http.delete(f"/api/warehouse/dataset/{ds_id}", headers=h)
    assert delete.status_code == status, delete.text
    with archive.session() as s:
        row = s.get(Dataset, ds_id)
        assert row is not None
        assert row.removed is (status == 200) and (row.desc == "x") is (status == 200)
    unknown = "/api/warehouse/dataset/0123456789abcdef01234567"
    missing = 401 if not user else 404
    assert http.put(unknown, json={"desc": "x"}, headers=h).status_code == missing
    assert http.delete(unknown, headers=h).status_code == missing


def test_released_objects_cannot_be_changed_or_removed(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    ds_id = pick(archive, O3D_PROJECT, published=True)
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json={"desc": "x"}, headers=h)
    assert res.status_code == 409 and "released objects cannot be changed" in res.json()["message"]
    assert "upload a corrected copy as a new data object" in res.json()["message"]
    res = http.delete(f"/api/warehouse/dataset/{ds_id}", headers=h)
    assert res.status_code == 409 and "upload a corrected copy" in res.json()["message"]
    with archive.session() as s:
        row = s.get(Dataset, ds_id)
        assert row is not None and row.removed is False and row.desc != "x"


def test_a_release_and_removals_at_once_never_leave_a_released_object_removed(
    http: TestClient, archive: Archive
) -> None:
    """A removal checks "not released" and writes under the lock of the project's objects
    (`releases.lock_project_objects`), which the release holds too: each object ends either
    removed (200) and out of the release, or in it and unchanged (409), never both."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    h = auth(archive, "hayashis")  # an admin of TP
    pub = http.post("/api/warehouse/pub", json={"project": TP_PROJECT, "name": "race"}, headers=h)
    assert pub.status_code == 200, pub.text
    released = exists().where(DatasetPublication.dataset_id == Dataset.id)
    with archive.session() as s:
        ids = list(
            s.scalars(
                select(Dataset.id)
                .where(
                    Dataset.project_id == TP_PROJECT,
                    Dataset.status == "stored",
                    Dataset.removed.is_(False),
                    ~released,
                )
                .order_by(Dataset.id)
                .limit(12)
            )
        )
    assert len(ids) == 12
    start = threading.Barrier(len(ids) + 1)

    def send(i: int) -> Any:
        start.wait(timeout=30)
        if i == len(ids):
            return http.post(
                f"/api/warehouse/pub/release/{pub.json()['_id']}",
                json={"name": "1", "sets": [{}]},
                headers=h,
            )
        return http.delete(f"/api/warehouse/dataset/{ids[i]}", headers=h)

    with ThreadPoolExecutor(len(ids) + 1) as pool:
        *removals, release = list(pool.map(send, range(len(ids) + 1)))
    assert release.status_code == 200, release.text
    with archive.session() as s:
        for ds_id, res in zip(ids, removals, strict=True):
            row = s.get(Dataset, ds_id)
            assert row is not None
            in_release = bool(row.publications)
            assert res.status_code == (409 if in_release else 200), (ds_id, res.text)
            assert row.removed is not in_release, ds_id


def test_remove_hides_the_object_and_an_admin_restores_it(
    http: TestClient, archive: Archive
) -> None:
    ds_id = pick(archive, TP_PROJECT)
    member, admin = auth(archive, "demo"), auth(archive, "hayashis")  # TP: member, admin
    res = http.delete(f"/api/warehouse/dataset/{ds_id}", headers=member)
    assert res.json() == {"status": "ok", "removed": 1}
    assert http.delete(f"/api/warehouse/dataset/{ds_id}", headers=member).json()["removed"] == 0
    # gone from the queries clients send (removed: false) and from downloads; asked for, it is there
    assert listing(http, member, {"_id": ds_id, "removed": False})["count"] == 0
    doc = listing(http, member, {"_id": ds_id})["datasets"][0]
    assert doc["removed"] is True and doc["remove_date"]
    res = http.get(f"/api/warehouse/dataset/download/{ds_id}", headers=member)
    assert res.status_code == 410 and "was removed" in res.json()["message"]
    res = http.post("/api/warehouse/dataset/manifests", json={"ids": [ds_id]}, headers=member)
    assert res.json()["missing"][0]["reason"] == "removed"
    # a removed object is changed only once restored, and only an admin restores
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json={"desc": "y"}, headers=member)
    assert res.status_code == 409 and "restore" in res.json()["message"]
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json={"removed": False}, headers=member)
    assert res.status_code == 403 and "project admin" in res.json()["message"]
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json={"removed": False}, headers=admin)
    assert res.status_code == 200 and res.json()["removed"] is False
    assert "remove_date" not in res.json()
    assert http.get(f"/api/warehouse/dataset/download/{ds_id}", headers=member).status_code == 200
    events = http.get(f"/api/warehouse/dataset/history/{ds_id}", headers=member).json()["events"]
    assert [(e["action"], e["user_id"]) for e in events] == [("remove", "4"), ("restore", "1")]


def test_counts_stay_exact_after_update_and_delete(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    live = {"project": O3D_PROJECT, "removed": False}
    gone = {"project": O3D_PROJECT, "removed": True}
    before = listing(http, h, live)
    ids = [pick(archive, O3D_PROJECT) for _ in range(1)]
    with archive.session() as s:
        ids = list(
            s.scalars(
                select(Dataset.id)
                .where(
                    Dataset.project_id == O3D_PROJECT,
                    ~exists().where(DatasetPublication.dataset_id == Dataset.id),
                )
                .order_by(Dataset.id)
                .limit(3)
            )
        )
        sizes = sum(s.get(Dataset, i).size or 0 for i in ids)  # type: ignore[union-attr]
    for ds_id in ids:
        assert (
            http.put(
                f"/api/warehouse/dataset/{ds_id}", json={"tags": ["fresh-tag"]}, headers=h
            ).status_code
            == 200
        )
    tagged = listing(http, h, {**live, "tags": "fresh-tag"})
    assert tagged["count"] == 3 == brute_count(archive, O3D_PROJECT, removed=False, tag="fresh-tag")
    http.delete(f"/api/warehouse/dataset/{ids[0]}", headers=h)
    after = listing(http, h, live)
    assert after["count"] == before["count"] - 1 == brute_count(archive, O3D_PROJECT, removed=False)
    assert listing(http, h, gone)["count"] == brute_count(archive, O3D_PROJECT, removed=True) >= 1
    assert listing(http, h, {**live, "tags": "fresh-tag"})["count"] == 2
    assert listing(http, h, {**gone, "tags": "fresh-tag"})["count"] == 1
    assert before["size"] - after["size"] == sizes - sum(
        listing(http, h, {"_id": i})["datasets"][0]["size"] or 0 for i in ids[1:]
    )
    http.put(f"/api/warehouse/dataset/{ids[1]}", json={"tags": []}, headers=h)
    assert listing(http, h, {**live, "tags": "fresh-tag"})["count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"tags": "x"},
        {"tags": [""]},
        {"tags": [1]},
        {"meta": {"$where": 1}},
        {"meta": {"a.b": 1}},
        {"meta": []},
        {"desc": 5},
        {"removed": "no"},
        {"tags": [f"t{i}" for i in range(101)]},
    ],
)
def test_bad_bodies_are_400_and_change_nothing(
    http: TestClient, archive: Archive, body: Any
) -> None:
    ds_id = pick(archive, O3D_PROJECT)
    res = http.put(f"/api/warehouse/dataset/{ds_id}", json=body, headers=auth(archive, "hayashis"))
    assert res.status_code == 400, res.text
    assert (
        http.get(
            f"/api/warehouse/dataset/history/{ds_id}", headers=auth(archive, "hayashis")
        ).json()["events"]
        == []
    )
