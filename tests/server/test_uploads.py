"""The resumable upload API (`routes.uploads`, `services.uploads`) through the HTTP app: who may
upload where, what is refused before a byte moves, how bytes are staged, verified and resumed,
and that a data object appears only whole."""

from __future__ import annotations

import errno
import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest

from brainlife.server.models import Dataset, Upload
from brainlife.server.services import uploads as upload_service
from tests.server import factories as f

ADMIN, MEMBER, GUEST, OUTSIDER, OTHER, SITE_ADMIN = 10, 11, 12, 13, 14, 99
URL = "/api/warehouse/upload"
T1 = b"NIfTI" * 100_000  # 500 kB: more than one request body may hold elsewhere (256 KiB)
DWI_FILES = [
    {"id": "dwi", "filename": "dwi.nii.gz", "required": True},
    {"id": "bvecs", "filename": "dwi.bvecs", "required": True},
    {"id": "bvals", "filename": "dwi.bvals", "required": True},
    {"id": "extra", "dirname": "extra", "required": False},
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def world(archive):
    with archive.session() as s:
        roles = {"admins": [ADMIN], "members": [MEMBER], "guests": [GUEST]}
        public = f.project(s, name="public", access="public", **roles)
        private = f.project(s, name="private", access="private", **roles)
        other = f.project(s, name="other", access="private", members=[OTHER])
        removed = f.project(s, name="removed", access="public", removed=True, **roles)
        t1 = f.datatype(s)
        dwi = f.datatype(s, name="neuro/dwi", files=DWI_FILES)
        s.commit()
        return {
            "public": public.id,
            "private": private.id,
            "other": other.id,
            "removed": removed.id,
            "t1": t1.id,
            "dwi": dwi.id,
        }


def auth(archive, who: int | None) -> dict[str, str]:
    if who is None:
        return {}
    scopes = {"warehouse": ["user", "admin"]} if who == SITE_ADMIN else {}
    claims = {"sub": who, "gids": [0], "scopes": scopes, "profile": {"username": str(who)}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def t1_body(project: str, data: bytes = T1, **more) -> dict:
    return {
        "project": project,
        "datatype": "neuro/anat/t1w",
        "meta": {"subject": "0001", "session": "1"},
        "tags": ["upload"],
        "datatype_tags": ["defaced"],
        "desc": "a T1",
        "files": [{"id": "t1", "name": "t1.nii.gz", "size": len(data), "sha256": sha(data)}],
        **more,
    }


def put(http, h, upload_id: str, n: int | str, data: bytes, start: int, size: int):
    end = start + len(data) - 1
    return http.put(
        f"{URL}/{upload_id}/file/{n}",
        content=data,
        headers={**h, "Content-Range": f"bytes {start}-{end}/{size}"},
    )


def test_upload_resume_finalize_and_download(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    r = http.post(URL, json=t1_body(world["private"]), headers=h)
    assert r.status_code == 201, r.text
    sess = r.json()
    assert sess["status"] == "open"
    assert sess["files"][0] | {} == {
        "id": "t1",
        "name": "t1.nii.gz",
        "size": len(T1),
        "sha256": sha(T1),
        "state": "partial",
        "received": 0,
    }
    uid = sess["_id"]
    half = len(T1) // 2
    assert put(http, h, uid, 0, T1[:half], 0, len(T1)).json()["files"][0]["received"] == half
    # resuming from the wrong offset is refused, and says where to start
    r = put(http, h, uid, 0, T1[:10], 0, len(T1))
    assert r.status_code == 409 and f"send from byte {half}" in r.json()["message"]
    # not complete: no object yet
    r = http.post(f"{URL}/{uid}/finalize", headers=h)
    assert r.status_code == 409
    with archive.session() as s:
        assert s.query(Dataset).count() == 0
    assert http.get(f"{URL}/{uid}", headers=h).json()["files"][0]["received"] == half
    r = put(http, h, uid, 0, T1[half:], half, len(T1))
    assert r.status_code == 200, r.text
    assert r.json()["files"][0]["state"] == "stored"
    r = http.post(f"{URL}/{uid}/finalize", headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "stored" and doc["project"] == world["private"]
    assert doc["meta"] == {"subject": "0001", "session": "1"}
    assert doc["tags"] == ["upload"] and doc["datatype_tags"] == ["defaced"]
    assert doc["desc"] == "a T1" and doc["user_id"] == str(MEMBER)
    # finalizing again answers the same object (a lost answer is retried safely)
    assert http.post(f"{URL}/{uid}/finalize", headers=h).json()["_id"] == doc["_id"]
    manifest = http.get(f"/api/warehouse/dataset/manifest/{doc['_id']}", headers=h).json()
    assert manifest["files"] == [{"path": "t1.nii.gz", "size": len(T1), "sha256": sha(T1)}]
    body = http.get(f"/api/warehouse/dataset/file/{doc['_id']}/t1.nii.gz", headers=h).content
    assert body == T1
    # staged bytes are gone once finalized
    assert not (archive.settings.uploads_dir / uid).exists()


# who may create an upload in which project: 201, or the status
MATRIX = {
    (None, "public"): 401,
    (OUTSIDER, "public"): 403,
    (OUTSIDER, "private"): 404,
    (GUEST, "private"): 403,
    (MEMBER, "private"): 201,
    (ADMIN, "public"): 201,
    (SITE_ADMIN, "private"): 201,
    (MEMBER, "removed"): 404,
    (SITE_ADMIN, "removed"): 404,
}


@pytest.mark.parametrize(("who", "project"), MATRIX)
def test_create_access_matrix(archive, http, world, who, project) -> None:
    r = http.post(URL, json=t1_body(world[project]), headers=auth(archive, who))
    assert r.status_code == MATRIX[(who, project)], r.text
    assert "message" in r.json() or r.status_code == 201


@pytest.mark.parametrize("who", [None, OUTSIDER, ADMIN, SITE_ADMIN])
def test_a_session_is_its_creators_alone(archive, http, world, who) -> None:
    """Nobody else (not even the project's admin or a site admin) reads, feeds, finalizes or
    deletes someone's upload session: 401 without a token, else the 404 of an unknown id."""
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    expected = 401 if who is None else 404
    other = auth(archive, who)
    assert http.get(f"{URL}/{uid}", headers=other).status_code == expected
    assert put(http, other, uid, 0, T1, 0, len(T1)).status_code == expected
    assert http.post(f"{URL}/{uid}/finalize", headers=other).status_code == expected
    assert http.delete(f"{URL}/{uid}", headers=other).status_code == expected
    state = http.get(f"{URL}/{uid}", headers=h).json()
    assert state["files"][0]["received"] == 0


def test_finalize_rechecks_write_access(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    assert put(http, h, uid, 0, T1, 0, len(T1)).status_code == 200
    from brainlife.server.models import ProjectRole

    with archive.session() as s:
        s.query(ProjectRole).filter_by(sub=str(MEMBER), project_id=world["private"]).delete()
        s.commit()
    r = http.post(f"{URL}/{uid}/finalize", headers=h)
    assert r.status_code == 404
    with archive.session() as s:
        assert s.query(Dataset).count() == 0


def _dwi(files):
    return {"project": "", "datatype": "neuro/dwi", "files": files}


def _f(fid, name, data=b"x"):
    out = {"name": name, "size": len(data), "sha256": sha(data)}
    if fid is not None:
        out["id"] = fid
    return out


GOOD_DWI = [_f("dwi", "dwi.nii.gz"), _f("bvecs", "dwi.bvecs"), _f("bvals", "dwi.bvals")]
REFUSED = {
    "unknown id": ([*GOOD_DWI, _f("t1", "t1.nii.gz")], "Unknown file id 't1'"),
    "required missing": (GOOD_DWI[:2], "Required file(s) missing: bvals"),
    "wrong name": (
        [_f("dwi", "data.nii.gz"), *GOOD_DWI[1:]],
        "must be named 'dwi.nii.gz'",
    ),
    "outside its folder": ([*GOOD_DWI, _f("extra", "other/a.txt")], "must lie in the folder"),
    "no id": ([*GOOD_DWI, _f(None, "notes.txt")], "names no datatype file id"),
    "climbs": ([*GOOD_DWI, _f("extra", "extra/../../x")], "'.' or '..' component"),
    "absolute": ([*GOOD_DWI, _f("extra", "/etc/passwd")], "absolute"),
    "backslash": ([*GOOD_DWI, _f("extra", "extra\\..\\x")], "backslash"),
    "control": ([*GOOD_DWI, _f("extra", "extra/a\nb")], "control character"),
    "twice": ([*GOOD_DWI, _f("extra", "extra/a"), _f("extra", "extra/a")], "appears twice"),
    "file and folder": (
        [*GOOD_DWI, _f("extra", "extra/a"), _f("extra", "extra/a/b")],
        "both a file and a folder",
    ),
    "bad sha": ([{**GOOD_DWI[0], "sha256": "0" * 63}, *GOOD_DWI[1:]], "64 lower-case hex"),
    "negative size": ([{**GOOD_DWI[0], "size": -1}, *GOOD_DWI[1:]], "number of bytes"),
    "empty": ([], "non-empty list"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_files_checked_against_the_datatype(archive, http, world, case) -> None:
    files, message = REFUSED[case]
    body = _dwi(files) | {"project": world["private"]}
    r = http.post(URL, json=body, headers=auth(archive, MEMBER))
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    with archive.session() as s:
        assert s.query(Upload).count() == 0


def test_bounds(archive, http, world, monkeypatch) -> None:
    h = auth(archive, MEMBER)
    monkeypatch.setattr(upload_service, "UPLOAD_MAX_FILES", 5)
    many = [_f("extra", f"extra/{i}") for i in range(3)]
    body = _dwi([*GOOD_DWI, *many]) | {"project": world["private"]}
    r = http.post(URL, json=body, headers=h)
    assert r.status_code == 400 and "at most 5 files" in r.json()["message"]
    r = http.post(URL, json=t1_body(world["private"], tags=["x" * 300]), headers=h)
    assert r.status_code == 400 and "1 to 256 characters" in r.json()["message"]
    r = http.post(URL, json=t1_body(world["private"], meta={"subject": ["a"]}), headers=h)
    assert r.status_code == 400 and "meta.subject" in r.json()["message"]
    # meta follows the rules of every write route (`objectfields`: what PUT /dataset refuses,
    # an upload may not store)
    for meta in ({"a.b": 1}, {"$where": "1"}, {"": 1}, {"notes": "x" * (64 * 1024)}):
        r = http.post(URL, json=t1_body(world["private"], meta=meta), headers=h)
        assert r.status_code == 400 and "meta" in r.json()["message"], r.text
    archive.settings.max_upload_session_bytes = 1000
    big = {**GOOD_DWI[0], "size": 1001}
    r = http.post(URL, json=_dwi([big, *GOOD_DWI[1:]]) | {"project": world["private"]}, headers=h)
    assert r.status_code == 413 and "at most 1000 bytes" in r.json()["message"]


def test_a_file_that_changed_while_sent_is_refused_and_dropped(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    assert put(http, h, uid, 0, T1[:1000], 0, len(T1)).status_code == 200
    changed = b"Y" * (len(T1) - 1000)
    r = put(http, h, uid, 0, changed, 1000, len(T1))
    assert r.status_code == 400 and "change while it was being uploaded" in r.json()["message"]
    state = http.get(f"{URL}/{uid}", headers=h).json()
    assert state["files"][0]["received"] == 0 and state["files"][0]["state"] == "partial"
    assert not archive.store.has(sha(T1[:1000] + changed))


def test_content_range_and_body_checked(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    r = http.put(f"{URL}/{uid}/file/0", content=b"abc", headers=h)
    assert r.status_code == 400 and "Content-Range" in r.json()["message"]
    r = put(http, h, uid, 0, b"abc", 0, len(T1) + 1)
    assert r.status_code == 400 and "declared" in r.json()["message"]
    r = put(http, h, uid, 1, b"abc", 0, len(T1))
    assert r.status_code == 404
    for index in ("²", "١", "9" * 30):  # digits `int` refuses, beyond any file
        r = put(http, h, uid, index, b"abc", 0, len(T1))
        assert r.status_code == 404 and "has no file" in r.json()["message"], r.text
        r = http.put(f"{URL}/{uid}/file/{index}/sha256", json={"sha256": "0" * 64}, headers=h)
        assert r.status_code == 404, r.text
    # a body longer than its range: the range is kept, the rest refused
    r = http.put(
        f"{URL}/{uid}/file/0",
        content=iter([b"a" * 10, b"b" * 10]),
        headers={**h, "Content-Range": f"bytes 0-9/{len(T1)}"},
    )
    assert r.status_code == 400 and "longer than its Content-Range" in r.json()["message"]
    assert http.get(f"{URL}/{uid}", headers=h).json()["files"][0]["received"] == 10


def test_content_already_held_is_not_sent_again_but_no_oracle(archive, http, world) -> None:
    """Content a readable object holds is `stored` at once; the same digest declared by a
    user who cannot read that object must be sent in full."""
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, uid, 0, T1, 0, len(T1))
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 200
    again = http.post(URL, json=t1_body(world["private"]), headers=h).json()
    assert again["files"][0]["state"] == "stored"
    # the digest with another size is not "held": a manifest never gets a wrong size
    body = t1_body(world["private"])
    body["files"][0]["size"] = len(T1) + 1
    lying = http.post(URL, json=body, headers=h).json()
    assert lying["files"][0]["state"] == "partial"
    assert http.post(f"{URL}/{again['_id']}/finalize", headers=h).status_code == 200
    outsider = auth(archive, OTHER)
    theirs = http.post(URL, json=t1_body(world["other"]), headers=outsider).json()
    assert theirs["files"][0]["state"] == "partial" and theirs["files"][0]["received"] == 0
    r = http.post(f"{URL}/{theirs['_id']}/finalize", headers=outsider)
    assert r.status_code == 409


def test_full_disk_is_507_and_keeps_what_arrived(archive, http, world, monkeypatch) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    real_write = os.write
    budget = {"left": 300_000}

    def full_disk(fd: int, data) -> int:
        if budget["left"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: budget["left"]]))
        budget["left"] -= n
        return n

    monkeypatch.setattr(upload_service.os, "write", full_disk)
    r = put(http, h, uid, 0, T1, 0, len(T1))
    assert r.status_code == 507 and "disk is full" in r.json()["message"]
    monkeypatch.setattr(upload_service.os, "write", real_write)
    got = http.get(f"{URL}/{uid}", headers=h).json()["files"][0]["received"]
    assert got == 300_000
    assert put(http, h, uid, 0, T1[got:], got, len(T1)).json()["files"][0]["state"] == "stored"
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 200


def test_not_enough_free_space_refused_before_a_byte(archive, http, world, monkeypatch) -> None:
    import shutil as sh

    monkeypatch.setattr(
        upload_service.shutil, "disk_usage", lambda _p: sh._ntuple_diskusage(10**9, 10**9, 10)
    )
    r = http.post(URL, json=t1_body(world["private"]), headers=auth(archive, MEMBER))
    assert r.status_code == 507 and "free disk space" in r.json()["message"]


def test_delete_drops_the_session_and_its_bytes(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, uid, 0, T1[:100], 0, len(T1))
    assert (archive.settings.uploads_dir / uid).exists()
    assert http.delete(f"{URL}/{uid}", headers=h).status_code == 204
    assert http.get(f"{URL}/{uid}", headers=h).status_code == 404
    assert not (archive.settings.uploads_dir / uid).exists()


def test_finalizes_and_deletes_of_one_session_at_once(archive, http, world) -> None:
    """Finalize and delete read the session and then write: at once, a finalize whose session
    a delete removed meanwhile failed on the vanished row (a 500), and finalizes could each
    make an object. Under the session's lock each request sees the one before: finalizes
    answer the one object, deletes a 204 or the 404 of a gone session, never a 500."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    h = auth(archive, MEMBER)
    for mix in ("finalize", "both", "both"):
        content = f"{mix} {os.urandom(8).hex()}".encode()
        uid = http.post(URL, json=t1_body(world["private"], content), headers=h).json()["_id"]
        assert put(http, h, uid, 0, content, 0, len(content)).status_code == 200
        start = threading.Barrier(8)

        def send(i: int, uid: str = uid, mix: str = mix, start: threading.Barrier = start):
            start.wait(timeout=30)
            if mix == "both" and i % 2:
                return http.delete(f"{URL}/{uid}", headers=h)
            return http.post(f"{URL}/{uid}/finalize", headers=h)

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(send, range(8)))
        assert all(r.status_code in (200, 204, 404) for r in got), [r.text for r in got]
        made = {r.json()["_id"] for r in got if r.status_code == 200}
        with archive.session() as s:
            objects = [
                d.id for d in s.scalars(select(Dataset)) if (d.prov or {}).get("upload_id") == uid
            ]
        assert len(made) <= 1 and set(objects) == made, (made, objects)


def test_expired_sessions_and_orphans_cleaned_at_start_up(archive, http, world) -> None:
    from brainlife.server.app import create_app

    h = auth(archive, MEMBER)
    other = b"another file" * 1000
    old = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, old, 0, T1[:100], 0, len(T1))
    stored = http.post(URL, json=t1_body(world["private"], other), headers=h).json()["_id"]
    put(http, h, stored, 0, other, 0, len(other))
    assert archive.store.has(sha(other))
    live = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, live, 0, T1[:50], 0, len(T1))
    orphan = archive.settings.uploads_dir / ("f" * 24)
    orphan.mkdir()
    (orphan / "0").write_bytes(b"left by a crash")
    with archive.session() as s:
        for uid in (old, stored):
            s.get(Upload, uid).expires = datetime.now(UTC) - timedelta(seconds=1)
        s.commit()
    create_app(archive=archive)  # a restart
    assert http.get(f"{URL}/{old}", headers=h).status_code == 404
    assert http.get(f"{URL}/{stored}", headers=h).status_code == 404
    assert not (archive.settings.uploads_dir / old).exists()
    assert not orphan.exists()
    assert not archive.store.has(sha(other))  # referenced by nothing any more
    assert http.get(f"{URL}/{live}", headers=h).json()["files"][0]["received"] == 50


def test_complete_but_unmarked_file_recovered(archive, http, world) -> None:
    """The server stopped between a file's last byte and its commit: the next GET verifies the
    staged bytes and stores them."""
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    staged = upload_service.staged_path(archive, uid, 0)
    staged.parent.mkdir(parents=True)
    staged.write_bytes(T1)
    state = http.get(f"{URL}/{uid}", headers=h).json()
    assert state["files"][0]["state"] == "stored"
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 200


def test_off_under_no_extensions(settings, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app
    from brainlife.server.archive import open_archive

    settings.extensions = False
    with TestClient(create_app(archive=open_archive(settings))) as client:
        assert client.post(URL, json={}).status_code == 404
