"""brainlife's datatype catalogue in every archive (`catalogue.seed_catalogue`), and admins
adding datatypes (`services.datatype_writes`, `POST /api/warehouse/datatype`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from brainlife.server.catalogue import CATALOGUE, seed_catalogue
from brainlife.server.demo.objects import o3d_objects, other_objects
from brainlife.server.errors import BadRequest, Conflict
from brainlife.server.models import Datatype
from brainlife.server.services import accounts, auth, datatype_writes

PASSWORD = "correct horse battery"
T1 = {"name": "neuro/anat/t1w", "files": [{"id": "t1", "filename": "t1.nii.gz"}]}


def names(archive) -> dict[str, Datatype]:
    with archive.session() as s:
        return {d.name: d for d in s.scalars(select(Datatype))}


def test_an_empty_archive_gets_every_datatype_the_demo_uses(archive) -> None:
    import random

    with archive.session() as s:
        assert seed_catalogue(s) == len(CATALOGUE)
    have = names(archive)
    used = {o.datatype for o in o3d_objects(random.Random(0)) + other_objects(random.Random(0))}
    assert used <= set(have)
    for name in (*used, "neuro/func/task", "neuro/fmap", "neuro/anat/flair"):
        files = have[name].extra["files"]
        assert files and all(("filename" in f) != ("dirname" in f) for f in files), name
        assert all(isinstance(f["required"], bool) for f in files)
    assert [f["id"] for f in have["neuro/dwi"].extra["files"]] == ["dwi", "bvecs", "bvals"]


def test_seeding_is_idempotent_and_keeps_an_admins_changes(archive) -> None:
    with archive.session() as s:
        seed_catalogue(s)
        row = s.scalar(select(Datatype).where(Datatype.name == "neuro/dwi"))
        row.desc = "changed by the admin"
        s.commit()
    with archive.session() as s:
        assert seed_catalogue(s) == 0
    have = names(archive)
    assert have["neuro/dwi"].desc == "changed by the admin"
    assert len(have) == len(CATALOGUE)


def test_a_datatype_of_the_same_name_is_not_doubled(archive) -> None:
    from tests.server import factories as f

    with archive.session() as s:
        f.datatype(s, name="neuro/anat/t1w")  # another id
        s.commit()
        assert seed_catalogue(s) == len(CATALOGUE) - 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**T1, "name": "Neuro/T1"}, "Invalid datatype name"),
        ({**T1, "name": "neuro//t1"}, "Invalid datatype name"),
        ({**T1, "name": "neuro/../x"}, "Invalid datatype name"),
        ({**T1, "files": []}, "1 to 100"),
        ({**T1, "files": [{"id": "t1", "filename": "../t1.nii.gz"}]}, "plain file name"),
        ({**T1, "files": [{"id": "t1", "filename": "a/b"}]}, "plain file name"),
        ({**T1, "files": [{"id": "t1", "filename": ".hidden"}]}, "plain file name"),
        ({**T1, "files": [{"id": "t1"}]}, "exactly one of"),
        ({**T1, "files": [{"id": "t1", "filename": "a", "dirname": "b"}]}, "exactly one of"),
        ({**T1, "files": [{"id": "a b", "filename": "a"}]}, ".id must be"),
        (
            {**T1, "files": [{"id": "a", "filename": "a"}, {"id": "a", "filename": "b"}]},
            "used twice",
        ),
        ({**T1, "files": [{"id": "a", "filename": "a", "required": "yes"}]}, "true or false"),
        ({**T1, "datatype_tags": [5]}, "datatype_tags[0]"),
        ([], "JSON object"),
    ],
)
def test_bad_datatypes_are_refused(archive, body, message) -> None:
    with archive.session() as s, pytest.raises(BadRequest) as info:
        datatype_writes.add_datatype(s, body)
    assert message in info.value.message


def test_a_taken_name_is_a_conflict(archive) -> None:
    with archive.session() as s:
        seed_catalogue(s)
        with pytest.raises(Conflict, match="already has"):
            datatype_writes.add_datatype(s, T1)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()


CALLERS = {
    "anonymous": 401,
    "user": 403,
    "datatype.create": 200,
    "root": 200,
    "disabled": 401,
    "revoked": 401,
}


@pytest.mark.parametrize(("who", "expected"), CALLERS.items())
def test_post_datatype_access_matrix(archive, http, who: str, expected: int) -> None:
    with archive.session() as s:
        accounts.add_user(s, username="root", password=PASSWORD, admin=True)
        user = accounts.add_user(s, username="user", password=PASSWORD)
        s.commit()
        sub = user.sub
    headers = {}
    if who != "anonymous":
        name = "root" if who == "root" else "user"
        r = http.post("/api/auth/local/auth", json={"username": name, "password": PASSWORD})
        value = r.json()["jwt"]
        if who == "datatype.create":  # brainlife's service token scope, without a jti
            value = archive.signer.sign({"sub": sub, "scopes": {"warehouse": [who]}}, 60_000)
        with archive.session() as s:
            if who == "disabled":
                accounts.set_active(s, accounts.find_user(s, "user"), False)
            if who == "revoked":
                accounts.revoke_tokens(s, sub=sub)
            s.commit()
        headers = {"Authorization": f"Bearer {value}"}
    body = {
        "name": "lab/eeg",
        "desc": "EEG recording",
        "files": [{"id": "eeg", "filename": "eeg.edf"}, {"id": "ch", "dirname": "channels"}],
        "datatype_tags": [{"datatype_tag": "raw", "desc": "as recorded"}],
    }
    r = http.post("/api/warehouse/datatype", headers=headers, json=body)
    assert r.status_code == expected, r.text
    listed = http.get("/api/warehouse/datatype", params={"find": '{"name": "lab/eeg"}'}).json()
    if expected == 200:
        doc = r.json()
        assert len(doc["_id"]) == 24 and doc["files"][1] == {
            "id": "ch",
            "dirname": "channels",
            "desc": "",
            "required": True,
        }
        assert listed["count"] == 1
    else:
        assert r.json()["message"] and listed["count"] == 0


def test_one_name_added_by_several_requests_at_once_is_one_datatype(archive, http) -> None:
    """The name check and the insert are one step (`db.lock_writes`): the others get the 409
    of an existing name, not a 500 on the unique name."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with archive.session() as s:
        accounts.add_user(s, username="root", password=PASSWORD, admin=True)
        s.commit()
    r = http.post("/api/auth/local/auth", json={"username": "root", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['jwt']}"}
    for n in range(4):
        body = {"name": f"neuro/race{n}", "files": [{"id": "a", "filename": "a.nii.gz"}]}
        start = threading.Barrier(8)

        def send(_i: int, body: dict = body, start: threading.Barrier = start):
            start.wait(timeout=30)
            return http.post("/api/warehouse/datatype", json=body, headers=headers)

        with ThreadPoolExecutor(8) as pool:
            got = sorted(r.status_code for r in pool.map(send, range(8)))
        assert got == [200] + [409] * 7, got
