"""`POST /api/warehouse/dataset/downscript`: the script of the official `bl bids download`
(brainlife's layout), and its token, which reads the script's objects and nothing else."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from brainlife.client.transfer.layout import object_fields, resolve_layout
from brainlife.server.archive import Archive, open_archive
from brainlife.server.demo.world import O3D_PROJECT, PRIVATE_PROJECT
from brainlife.server.services.downscript import MAX_OBJECTS, object_folder, safe_component
from brainlife.server.settings import Settings
from tests.conftest import make_token

T1_0001 = "5a050ad5d76a2a002737e572"
FS_TASK = "5c49e4537c0d8a003351f00f"
FIND_0001 = {"project": O3D_PROJECT, "removed": False, "meta.subject": {"$in": ["0001"]}}


@pytest.fixture(scope="module")
def demo(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("downscript") / "data"
    shutil.copytree(demo_archive_dir, data)
    arch = open_archive(Settings(data_dir=data, failed_login_delay=0.0))
    yield arch
    arch.engine.dispose()


@pytest.fixture(scope="module")
def http(demo: Archive) -> Iterator[TestClient]:
    from brainlife.server.app import create_app

    with TestClient(create_app(archive=demo)) as client:
        yield client


@pytest.fixture(scope="module")
def login(demo: Archive) -> str:
    return make_token(demo, "hayashis")


def script_for(http: TestClient, token: str, body: dict) -> str:
    r = http.post(
        "/api/warehouse/dataset/downscript",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/x-shellscript")
    return r.text


@pytest.fixture(scope="module")
def scoped(http: TestClient, login: str) -> str:
    """The token of a script for subject 0001's O3D objects."""
    text = script_for(http, login, {"find": FIND_0001, "limit": 100, "skip": 0})
    (token,) = re.findall(r"Authorization: Bearer ([\w.-]+)", text)
    return token


def test_the_script_does_not_carry_the_login(http, login):
    text = script_for(http, login, {"find": FIND_0001, "limit": 100, "skip": 0})
    assert login not in text
    assert text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    folder = f"proj-{O3D_PROJECT}/sub-0001/dt-neuro-anat-t1w.tag-acpc_aligned.id-{T1_0001}"
    assert f"fetch /api/warehouse/dataset/download/{T1_0001} | tar -C {folder} -x" in text
    assert f"> {folder}/_info.json" in text
    assert f"> proj-{O3D_PROJECT}/bids/dataset_description.json" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_the_scoped_token_reads_its_objects(http, scoped):
    auth = {"Authorization": f"Bearer {scoped}"}
    find = json.dumps({"_id": T1_0001})
    r = http.get(f"/api/warehouse/dataset?single=true&find={find}", headers=auth)
    assert r.status_code == 200 and r.json()["_id"] == T1_0001
    r = http.get(f"/api/warehouse/dataset/download/{T1_0001}", headers=auth)
    assert r.status_code == 200 and len(r.content) > 1024
    listed = http.get("/api/warehouse/dataset?limit=0", headers=auth).json()
    assert listed["count"] == len(listed["datasets"]) == 100  # the script's first 100 of 0001
    assert {d["meta"]["subject"] for d in listed["datasets"]} == {"0001"}


def test_the_scoped_token_reads_nothing_else(http, scoped, login):
    auth = {"Authorization": f"Bearer {scoped}"}
    other = http.get(
        "/api/warehouse/dataset",
        params={"find": json.dumps({"meta.subject": "0002"}), "limit": "1"},
        headers={"Authorization": f"Bearer {login}"},
    ).json()["datasets"][0]["_id"]
    find = json.dumps({"_id": other})
    assert http.get(f"/api/warehouse/dataset?find={find}", headers=auth).json()["count"] == 0
    assert http.get(f"/api/warehouse/dataset/download/{other}", headers=auth).status_code in (
        403, 404,
    )  # fmt: skip
    assert http.get(f"/api/warehouse/dataset/manifest/{other}", headers=auth).status_code in (
        403, 404,
    )  # fmt: skip
    batch = http.post("/api/warehouse/dataset/manifests", json={"ids": [other]}, headers=auth)
    assert batch.json()["manifests"] == []
    task_file = http.get(f"/api/amaretti/task/download/{FS_TASK}/stdout.log", headers=auth)
    assert task_file.status_code in (403, 404)
    for method, path in [
        ("GET", "/api/warehouse/project"),
        ("GET", "/api/warehouse/datatype"),
        ("GET", "/api/warehouse/app"),
        ("GET", "/api/amaretti/task"),
        ("GET", "/api/amaretti/resource"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/warehouse/dataset/downscript"),
    ]:
        r = http.request(method, path, headers=auth, json={})
        assert r.status_code == 403, (path, r.text)
        assert "download script" in r.json()["message"]


def test_a_private_projects_objects_are_not_in_anothers_script(http, demo):
    token = make_token(demo, "demo")
    text = script_for(http, token, {"find": {"project": PRIVATE_PROJECT}, "limit": 100})
    assert "fetch /api/warehouse/dataset/download" not in text
    assert "dataset_description.json" not in text


def test_more_matches_than_the_limit_are_announced(http, login):
    text = script_for(http, login, {"find": {"project": O3D_PROJECT, "removed": False}, "limit": 5})
    assert text.count("| tar -C") == 5
    assert "2703 more data objects match: run again with --skip 5." in text


def test_a_limit_over_the_maximum_is_cut_and_the_rest_announced(http, login):
    find = {"project": O3D_PROJECT, "removed": False}
    text = script_for(http, login, {"find": find, "limit": MAX_OBJECTS + 4000})
    assert text.count("| tar -C") == MAX_OBJECTS
    assert f"{2708 - MAX_OBJECTS} more data objects match: run again with --skip 1000." in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "The body must be"),
        ({"find": "x"}, "find must be an object"),
        ({"find": {}, "limit": -1}, "limit must be a whole number"),
        ({"find": {}, "skip": True}, "skip must be a whole number"),
        ({"find": {}, "skip": "²"}, "skip must be a whole number"),  # isdigit, but not int
        ({"find": {}, "limit": "١٢"}, "limit must be a whole number"),
        ({"find": {}, "skip": "9" * 40}, "skip must be a whole number"),
        ({"find": {}, "skip": 10**30}, "skip must be at most"),  # beyond SQL's OFFSET
        ({"find": {}, "skip": str(2**63)}, "skip must be at most"),
        ({"find": {"$where": "1"}}, "$where"),
    ],
)
def test_bad_requests(http, login, body, message):
    r = http.post(
        "/api/warehouse/dataset/downscript",
        json=body,
        headers={"Authorization": f"Bearer {login}"},
    )
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_a_login_is_needed(http):
    assert http.post("/api/warehouse/dataset/downscript", json={"find": {}}).status_code == 401


@pytest.mark.parametrize(
    "value", ["../../etc", "a/b", "$(rm -rf ~)", "`id`", "x'y", "-rf", "..", ".hidden", "a\nb"]
)
def test_hostile_values_make_one_harmless_component(value):
    clean = safe_component(value)
    assert "/" not in clean and "\n" not in clean
    assert clean not in ("..", ".") and not clean.startswith(("-", "."))


def test_folder_names_match_the_clients_brainlife_layout():
    doc = {
        "_id": "5a050ad5d76a2a002737e572",
        "project": O3D_PROJECT,
        "meta": {"subject": "0001", "session": "2", "run": "1"},
        "datatype_tags": ["acpc_aligned", "!x"],
        "datatype": "58c33bcee13a50849b25879a",
    }
    ours = object_folder(doc, "neuro/anat/t1w")
    client = resolve_layout("bids").folder(object_fields(doc, datatype_name="neuro/anat/t1w"))
    assert ours == client
