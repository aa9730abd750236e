"""The apps catalogue (`GET`/`POST /api/warehouse/app`), the compute resources
(`GET /api/amaretti/resource`), `$text`, and the refusal of every route that would run an app,
in-process over a copy of the demo world."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from brainlife.server.archive import Archive, open_archive
from brainlife.server.demo.apps import (
    APP_AFQ,
    APP_FREESURFER,
    APP_PRIVATE,
    APP_PROFILES,
    APP_REMOVED,
    APP_STAGE,
    APP_TRACKING,
    RESOURCE_PRIVATE,
    RESOURCE_PUBLIC,
    RESOURCE_TASKS,
)
from brainlife.server.demo.world import DT
from brainlife.server.services.apps import RUN_REFUSED
from brainlife.server.settings import Settings
from tests.conftest import make_token


@pytest.fixture(scope="module")
def demo(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("apps") / "data"
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
def tokens(demo: Archive) -> dict[str, dict[str, str]]:
    out = {
        name: {"Authorization": "Bearer " + make_token(demo, name)}
        for name in ("hayashis", "avesani", "demo")
    }
    admin = {"sub": 99, "gids": [], "scopes": {"warehouse": ["admin"]}, "profile": {}}
    out["admin"] = {"Authorization": "Bearer " + demo.signer.sign(admin, 600_000)}
    return out


def apps(http: TestClient, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    r = http.get("/api/warehouse/app", params=query, headers=headers or {})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["apps"]) or "limit" in params
    return [a["_id"] for a in body["apps"]]


PUBLIC_LIVE = {APP_STAGE, APP_FREESURFER, APP_TRACKING, APP_AFQ, APP_PROFILES}


def test_anonymous_sees_public_apps_and_removed_only_when_not_filtered(http):
    assert set(apps(http)) == PUBLIC_LIVE | {APP_REMOVED}
    assert set(apps(http, find={"removed": False})) == PUBLIC_LIVE


def test_app_document_has_brainlife_fields(http):
    r = http.get("/api/warehouse/app", params={"find": json.dumps({"_id": APP_FREESURFER})})
    (app,) = r.json()["apps"]
    assert app["github"] == "brainlife/app-freesurfer"
    assert app["inputs"][0] == {
        "id": "t1", "datatype": DT["neuro/anat/t1w"], "datatype_tags": ["acpc_aligned"],
        "desc": "T1 aligned to the AC-PC line", "optional": False, "multi": False,
        "advanced": False,
    }  # fmt: skip
    assert app["outputs"][0]["datatype"] == DT["neuro/freesurfer"]
    assert app["config"]["t1"] == {"type": "input", "input_id": "t1"}
    assert app["config"]["version"]["default"] == "6.0.0"
    assert app["projects"] == [] and app["_canedit"] is False
    assert app["create_date"].endswith("Z")


def test_private_app_is_seen_by_project_members_only(http, tokens):
    assert APP_PRIVATE not in apps(http, tokens["demo"])
    assert APP_PRIVATE in apps(http, tokens["avesani"])
    assert APP_PRIVATE in apps(http, tokens["admin"])


def test_elem_match_on_input_and_output_datatypes_as_the_official_cli_sends(http):
    find = {"removed": False, "$and": [{"inputs": {"$elemMatch": {"datatype": DT["neuro/dwi"]}}}]}
    assert set(apps(http, find=find, sort="name", skip="0", limit="100")) == {
        APP_TRACKING, APP_AFQ, APP_PROFILES,
    }  # fmt: skip
    both = {
        "removed": False,
        "$and": [
            {"inputs": {"$elemMatch": {"datatype": DT["neuro/dwi"]}}},
            {"outputs": {"$elemMatch": {"datatype": DT["neuro/wmc"]}}},
        ],
    }
    assert apps(http, find=both, sort="name") == [APP_AFQ]


def test_negated_elem_match_excludes_apps_taking_a_datatype(http):
    find = {"removed": False, "inputs": {"$not": {"$elemMatch": {"datatype": DT["neuro/dwi"]}}}}
    assert set(apps(http, find=find)) == {APP_STAGE, APP_FREESURFER}


def test_elem_match_with_tags_inside_the_element(http):
    find = {"inputs": {"$elemMatch": {"datatype": DT["neuro/anat/t1w"], "optional": True}}}
    assert apps(http, find=find) == [APP_TRACKING]


def test_regex_search_and_sort_by_name(http):
    find = {
        "removed": False,
        "$and": [{"$or": [{"name": {"$regex": "TRACT", "$options": "ig"}},
                          {"desc": {"$regex": "TRACT", "$options": "ig"}}]}],
    }  # fmt: skip
    ids = apps(http, find=find, sort="name")
    assert ids == [APP_TRACKING, APP_PROFILES, APP_AFQ]  # E…, T…, W… by name


def test_doi_is_exact(http):
    assert apps(http, find={"doi": "10.25663/bl.app.0"}) == [APP_FREESURFER]
    assert apps(http, find={"doi": "10.25663/bl.app"}) == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("freesurfer", {APP_FREESURFER}),
        ("FREESURFER tractography", {APP_FREESURFER, APP_TRACKING}),
        ('"major tracts"', {APP_AFQ}),
        ("tract -profiles", {APP_TRACKING, APP_AFQ}),
        ("-freesurfer", set()),
        ("10.25663/bl.app.43", {APP_PROFILES}),
        ("100%", set()),  # % is a character, not a LIKE wildcard
    ],
)
def test_text_search(http, search, expected):
    assert set(apps(http, find={"removed": False, "$text": {"$search": search}})) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "$text needs an object"),
        ({"$search": 3}, "$search needs a string"),
        ({"$search": "x" * 1001}, "at most 1000"),
        ({"$search": " ".join(["w"] * 33)}, "more than 32"),
        ({"$search": "x", "$caseSensitive": True}, "case-insensitive"),
        ({"$search": "x", "$where": "1"}, "unknown option"),
    ],
)
def test_text_search_is_bounded(http, text, message):
    r = http.get("/api/warehouse/app", params={"find": json.dumps({"$text": text})})
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_text_search_where_there_is_no_text_index(http, tokens):
    find = json.dumps({"$text": {"$search": "t1"}})
    r = http.get("/api/warehouse/datatype", params={"find": find})
    assert r.status_code == 400 and "cannot be searched by text" in r.json()["message"]


# --- adding apps ---------------------------------------------------------------------------


def _new_app(**over: Any) -> dict[str, Any]:
    doc = {
        "name": "Brain extraction",
        "github": "lab/app-bet",
        "desc": "FSL bet",
        "inputs": [{"id": "t1", "datatype": DT["neuro/anat/t1w"], "datatype_tags": []}],
        "outputs": [{"id": "mask", "datatype": DT["neuro/anat/t1w"], "datatype_tags": ["brain"]}],
        "config": {"t1": {"type": "input", "input_id": "t1"},
                   "f": {"type": "number", "default": 0.5}},
    }  # fmt: skip
    doc.update(over)
    return doc


def test_only_warehouse_admins_add_apps(http, tokens):
    r = http.post("/api/warehouse/app", json=_new_app(), headers=tokens["hayashis"])
    assert r.status_code == 403 and "administrator" in r.json()["message"]
    r = http.post("/api/warehouse/app", json=_new_app())
    assert r.status_code == 401


def test_admin_adds_an_app_that_is_then_listed(http, tokens):
    r = http.post(
        "/api/warehouse/app", json=_new_app(github="lab/app-bet2"), headers=tokens["admin"]
    )
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["inputs"][0]["optional"] is False and made["outputs"][0]["archive"] is True
    assert made["_canedit"] is True
    assert made["_id"] in apps(http, find={"github": "lab/app-bet2"})
    again = http.post(
        "/api/warehouse/app", json=_new_app(github="lab/app-bet2"), headers=tokens["admin"]
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"github": "no-slash"}, "org/repo"),
        ({"inputs": [{"id": "t1", "datatype": "5" * 24}]}, "is not a datatype"),
        ({"inputs": [{"id": "../x", "datatype": DT["neuro/dwi"]}]}, "inputs[0].id"),
        ({"inputs": [{"id": "a", "datatype": DT["neuro/dwi"]}] * 2}, "used twice"),
        ({"inputs": [{"id": "a", "datatype": DT["neuro/dwi"], "multi": "yes"}]}, "true or false"),
        ({"config": {"t1": {"type": "input", "input_id": "nope"}}}, "input_id"),
        ({"config": {"x": {"type": "shell"}}}, "type must be one of"),
        ({"config": {"t1": {"type": "input", "input_id": ["t1"]}}}, "input_id"),
        (
            {"outputs": [{"id": "o", "datatype": DT["neuro/dwi"], "datatype_tags_pass": {}}]},
            "datatype_tags_pass",
        ),
        ({"config": {"t1": {"type": {"x": 1}}}}, "type must be one of"),
        (
            {"inputs": [{"id": f"i{n}", "datatype": DT["neuro/dwi"]} for n in range(65)]},
            "at most 64",
        ),
        ({"projects": ["5" * 24]}, "not a project"),
    ],
)
def test_a_bad_app_is_refused_with_the_field_named(http, tokens, over, message):
    r = http.post("/api/warehouse/app", json=_new_app(**over), headers=tokens["admin"])
    assert r.status_code == 400 and message in r.json()["message"], r.text


def test_one_service_added_by_several_requests_at_once_is_one_app(http, tokens):
    """A second live app of one `github` is refused (no unique constraint holds it: removed
    apps keep theirs): also when the requests arrive together."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    for n in range(3):
        github = f"race/app-{n}"
        start = threading.Barrier(8)

        def send(_i: int, github: str = github, start: threading.Barrier = start) -> Any:
            start.wait(timeout=30)
            body = _new_app(github=github)
            return http.post("/api/warehouse/app", json=body, headers=tokens["admin"])

        with ThreadPoolExecutor(8) as pool:
            got = sorted(r.status_code for r in pool.map(send, range(8)))
        assert got == [200] + [409] * 7, got
        assert len(apps(http, find={"github": github})) == 1


# --- resources -----------------------------------------------------------------------------


def resources(http, headers, **params):
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    r = http.get("/api/amaretti/resource", params=query, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["resources"]


def test_resources_need_a_login(http):
    assert http.get("/api/amaretti/resource").status_code == 401


def test_resources_are_public_ones_and_those_of_the_callers_groups(http, tokens):
    seen = [r["_id"] for r in resources(http, tokens["demo"], sort='{"name":1}')]
    assert seen == [RESOURCE_PUBLIC, RESOURCE_TASKS]  # Carbonate, Jetstream2
    assert RESOURCE_PRIVATE in [r["_id"] for r in resources(http, tokens["avesani"])]


def test_resource_query_by_service_as_the_official_cli_sends(http, tokens):
    find = {"$and": [{"config.services": {"$elemMatch": {"name": "brainlife/app-freesurfer"}}}]}
    (res,) = resources(http, tokens["demo"], find=find, sort='{"name":1}', skip="0", limit="100")
    assert res["_id"] == RESOURCE_TASKS and res["type"] == "ssh"
    assert res["config"]["username"] == "brainlife" and res["gids"] == [1]


# --- running apps is refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/amaretti/instance", "/api/amaretti/task", "/api/warehouse/dataset/stage"]
)
def test_every_route_that_would_run_an_app_is_refused(http, tokens, path):
    r = http.post(path, json={"name": "x"}, headers=tokens["hayashis"])
    assert r.status_code == 403
    assert r.json()["message"] == RUN_REFUSED
    assert http.post(path, json={}).status_code == 401


def test_instances_lists_the_callers_own_and_groups(http, tokens):
    r = http.get("/api/amaretti/instance", headers=tokens["hayashis"])
    names = {i["name"] for i in r.json()["instances"]}
    assert "FreeSurfer on O3D T1w" in names
    find = json.dumps({"name": "CLI Process.0.123"})
    r = http.get(f"/api/amaretti/instance?find={find}", headers=tokens["hayashis"])
    assert r.json() == {"instances": []}
    r = http.get("/api/amaretti/instance", headers=tokens["demo"])
    assert all(i["group_id"] != 53 for i in r.json()["instances"])
