"""`POST /api/warehouse/dataset/manifests` (ours): many manifests in one request, with the access
rules of the single manifest route, a constant number of queries, limits and 400s."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from brainlife.server.tarstream import TarLayout, TarMember, tar_size
from brainlife.wire import MANIFESTS_MAX_IDS, routes
from tests.server._bytes_factories import auth, make_dataset, make_project, token

URL = routes.DATASET_MANIFESTS.full
UNKNOWN = "0123456789abcdef01234567"
FILES = [("t1.nii.gz", b"\x1f\x8b" + b"x" * 1000), ("dwi/dwi.bvals", b"0 1000\n")]


@pytest.fixture
def project(archive) -> str:
    return make_project(archive)


@pytest.fixture
def did(archive, project) -> str:
    return make_dataset(archive, project, FILES)


@contextmanager
def counting(archive):
    """The number of SQL statements run inside the block."""
    count = [0]

    def before(_conn, _cursor, statement, *_args):
        # (the PostgreSQL budget, `statement_timeout`, is set on the driver's connection,
        # unseen here: brainlife.server.db)
        count[0] += 1

    event.listen(archive.engine, "before_cursor_execute", before)
    try:
        yield count
    finally:
        event.remove(archive.engine, "before_cursor_execute", before)


def test_same_manifest_as_the_single_route(archive, http, did, project):
    other = make_dataset(archive, project, [("a.txt", b"a")])
    r = http.post(URL, json={"ids": [other, did]}, headers=auth(archive))
    assert r.status_code == 200
    body = r.json()
    assert body["missing"] == []
    assert [m["_id"] for m in body["manifests"]] == [other, did]  # the order asked
    for m in body["manifests"]:
        single = http.get(routes.DATASET_MANIFEST.url(dataset_id=m["_id"]), headers=auth(archive))
        assert m == single.json()
    assert body["manifests"][1]["files"] == [
        {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in FILES
    ]
    tar = http.get(routes.DATASET_DOWNLOAD.url(dataset_id=did), headers=auth(archive)).content
    assert body["manifests"][1]["tar_size"] == len(tar)


def test_token_in_query_string_and_duplicates(archive, http, did):
    r = http.post(URL, params={"at": token(archive)}, json={"ids": [did, did]})
    assert r.status_code == 200
    assert [m["_id"] for m in r.json()["manifests"]] == [did]


def test_empty_list(archive, http):
    r = http.post(URL, json={"ids": []}, headers=auth(archive))
    assert r.status_code == 200
    assert r.json() == {"manifests": [], "missing": []}


def test_no_token_is_401(http, did):
    assert http.post(URL, json={"ids": [did]}).status_code == 401


def test_missing_reasons(archive, http, project):
    stored = make_dataset(archive, project, [("a", b"1")])
    storing = make_dataset(archive, project, status="storing")
    private = make_project(archive, members=())
    hidden = make_dataset(archive, private, [("secret.txt", b"secret")])
    hidden_storing = make_dataset(archive, private, status="storing")
    ids = [UNKNOWN, stored, hidden, storing, "not-an-id", hidden_storing]
    r = http.post(URL, json={"ids": ids}, headers=auth(archive))
    assert r.status_code == 200
    body = r.json()
    assert [m["_id"] for m in body["manifests"]] == [stored]
    reasons = {m["_id"]: m["reason"] for m in body["missing"]}
    assert reasons == {
        UNKNOWN: "not-found",
        "not-an-id": "not-found",
        hidden: "forbidden",
        hidden_storing: "forbidden",  # forbidden wins over not stored, as on the single route
        storing: "not-stored",
    }
    assert [m["_id"] for m in body["missing"]] == [
        UNKNOWN,
        hidden,
        storing,
        "not-an-id",
        hidden_storing,
    ]
    messages = {m["_id"]: m["message"] for m in body["missing"]}
    assert messages[UNKNOWN] == "couldn't find the dataset specified"
    assert messages[hidden] == "you don't have access to the project that the dataset belongs"
    assert "storing" in messages[storing]
    # nothing of an unreadable object leaks: not its files, not its status
    assert "secret" not in r.text
    assert "storing" not in messages[hidden_storing]


def test_public_published_and_admin(archive, http):
    public = make_project(archive, access="public", members=())
    open_id = make_dataset(archive, public, [("a", b"1")])
    private = make_project(archive, members=())
    published = make_dataset(archive, private, [("b", b"2")], published=True)
    hidden = make_dataset(archive, private, [("c", b"3")])
    ids = [open_id, published, hidden]
    stranger = http.post(URL, json={"ids": ids}, headers=auth(archive, sub=6, gids=[])).json()
    assert [m["_id"] for m in stranger["manifests"]] == [open_id, published]
    assert [(m["_id"], m["reason"]) for m in stranger["missing"]] == [(hidden, "forbidden")]
    admin = auth(archive, sub=6, gids=[], scopes={"warehouse": ["admin"]})
    assert len(http.post(URL, json={"ids": ids}, headers=admin).json()["manifests"]) == 3


def test_constant_number_of_queries(archive, http, project):
    few = [make_dataset(archive, project, [("f", b"1")]) for _ in range(2)]
    many = [make_dataset(archive, project, [("f", bytes([n])), ("g", b"2")]) for n in range(25)]
    headers = auth(archive)
    with counting(archive) as small:
        assert len(http.post(URL, json={"ids": few}, headers=headers).json()["manifests"]) == 2
    with counting(archive) as large:
        body = http.post(URL, json={"ids": [*many, UNKNOWN]}, headers=headers).json()
    assert len(body["manifests"]) == 25
    assert large[0] == small[0] <= 3


def test_at_most_the_limit(archive, http, did):
    ids = [did] + [f"{n:024x}" for n in range(MANIFESTS_MAX_IDS - 1)]
    r = http.post(URL, json={"ids": ids}, headers=auth(archive))
    assert r.status_code == 200
    assert len(r.json()["manifests"]) == 1
    assert len(r.json()["missing"]) == MANIFESTS_MAX_IDS - 1


def test_over_the_limit_is_400(archive, http):
    ids = [f"{n:024x}" for n in range(MANIFESTS_MAX_IDS + 1)]
    r = http.post(URL, json={"ids": ids}, headers=auth(archive))
    assert r.status_code == 400
    assert str(MANIFESTS_MAX_IDS) in r.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": []},
        {"ids": "0123456789abcdef01234567"},
        {"ids": [1, 2]},
        {"ids": [None]},
        ["0123456789abcdef01234567"],
        "ids",
        None,
    ],
)
def test_bad_body_is_400(archive, http, body):
    r = http.post(URL, json=body, headers=auth(archive))
    assert r.status_code == 400
    assert r.json()["message"]


def test_not_json_is_400(archive, http):
    headers = {**auth(archive), "Content-Type": "application/json"}
    r = http.post(URL, content=b"{not json", headers=headers)
    assert r.status_code == 400
    assert r.json()["message"]
    assert http.post(URL, headers=auth(archive)).status_code == 400  # no body at all


def test_get_is_405(archive, http):
    assert http.get(URL, headers=auth(archive)).status_code == 405


@pytest.mark.parametrize(
    "path",
    ["a", "x" * 99, "x" * 100, "x" * 101, "d/" * 60 + "f", "résumé.txt", "dwi/dwi.bvals"],
)
@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 8**11 - 1, 8**11])
@pytest.mark.parametrize("mtime", [0, 1_500_000_000, 8**11])
def test_tar_size_is_the_layouts(path, size, mtime):
    members = [TarMember(path, size, "0" * 64), TarMember("b", 3, "1" * 64, mode=0o755)]
    assert tar_size(members, mtime) == TarLayout(members, mtime).size


def test_long_and_unicode_names_round_trip(archive, http, project):
    files = [("d/" * 60 + "long.txt", b"long"), ("résumé.txt", b"r"), ("x" * 100, b"")]
    did = make_dataset(archive, project, files)
    body = http.post(URL, json={"ids": [did]}, headers=auth(archive)).json()
    tar = http.get(routes.DATASET_DOWNLOAD.url(dataset_id=did), headers=auth(archive)).content
    assert body["manifests"][0]["tar_size"] == len(tar)
