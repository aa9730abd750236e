"""A small data object in one request (`wire.uploads`: `data`, `finalize`, a chosen `id`): made
at once with every rule of the long path (write access, the datatype's files, sizes and
digests checked), idempotent under its id, and every malformed or hostile variant refused
before anything is written."""

from __future__ import annotations

import base64
import hashlib

import pytest

from brainlife.server.models import Dataset, Upload
from brainlife.wire.uploads import UPLOAD_INLINE_MAX
from tests.server.test_uploads import MEMBER, OTHER, URL, auth, sha, t1_body, world

__all__ = ["world"]  # the fixture, used by name

SMALL = b"small T1 " * 500  # 4.5 kB
ID = "6b10e0591c9a8e93d7d9d4ae"


def inline_body(project: str, data: bytes = SMALL, **more) -> dict:
    body = t1_body(project, data, id=ID, finalize=True, **more)
    body["files"][0]["data"] = base64.b64encode(data).decode()
    return body


def objects(archive) -> int:
    with archive.session() as s:
        return s.query(Dataset).count()


def test_a_small_object_is_made_in_one_request_and_once(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    r = http.post(URL, json=inline_body(world["private"]), headers=h)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["_id"] == ID and doc["status"] == "finalized"
    made = doc["object"]
    assert made["_id"] == doc["dataset"] and made["status"] == "stored"
    assert made["meta"] == {"subject": "0001", "session": "1"} and made["tags"] == ["upload"]
    manifest = http.get(f"/api/warehouse/dataset/manifest/{made['_id']}", headers=h).json()
    assert manifest["files"] == [{"path": "t1.nii.gz", "size": len(SMALL), "sha256": sha(SMALL)}]
    # read from whichever store the archive has (the local one, or S3 in CI's second pass)
    assert b"".join(archive.store.read_range(sha(SMALL), 0, len(SMALL))) == SMALL
    # the same request again (a lost answer): the same session and object, no second one
    again = http.post(URL, json=inline_body(world["private"]), headers=h)
    assert again.status_code == 201 and again.json()["object"]["_id"] == made["_id"]
    assert objects(archive) == 1
    assert not (archive.settings.uploads_dir / ID).exists()


def test_inline_files_without_finalize_are_stored_and_the_session_stays_open(
    archive, http, world
) -> None:
    h = auth(archive, MEMBER)
    body = inline_body(world["private"])
    del body["finalize"]
    doc = http.post(URL, json=body, headers=h).json()
    assert doc["status"] == "open" and "object" not in doc
    assert doc["files"][0]["state"] == "stored" and objects(archive) == 0
    r = http.post(f"{URL}/{ID}/finalize", headers=h)
    assert r.status_code == 200 and objects(archive) == 1


def test_finalize_with_a_file_still_to_send_answers_the_session(archive, http, world) -> None:
    """`finalize: true` without the bytes (and not held): no object, no 409, the usual
    session, whose file is then sent with PUT."""
    h = auth(archive, MEMBER)
    r = http.post(URL, json=t1_body(world["private"], SMALL, id=ID, finalize=True), headers=h)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "open" and "object" not in doc
    assert doc["files"][0]["state"] == "partial" and objects(archive) == 0


def test_another_accounts_session_id_is_a_409_that_reveals_nothing(archive, http, world) -> None:
    http.post(URL, json=inline_body(world["private"]), headers=auth(archive, MEMBER))
    r = http.post(URL, json=inline_body(world["other"]), headers=auth(archive, OTHER))
    assert r.status_code == 409, r.text
    assert r.json()["message"] == f"The upload session id {ID} is taken: choose another."
    assert objects(archive) == 1


def _with(project: str, **change) -> dict:
    body = inline_body(project)
    body["files"][0].update(change.pop("file", {}))
    body.update(change)
    return body


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"file": {"data": "not base64!"}}, 400, "not valid base64"),
        ({"file": {"data": 12}}, 400, "must be base64 text"),
        ({"file": {"data": base64.b64encode(b"x" * 10).decode()}}, 400, "holds 10 bytes"),
        ({"file": {"data": base64.b64encode(b"y" * len(SMALL)).decode()}}, 400, "sha256"),
        ({"file": {"sha256": None}}, 400, "needs its 'sha256'"),
        ({"file": {"data": "A" * (UPLOAD_INLINE_MAX * 4 // 3 + 8)}}, 413, "larger ones with PUT"),
        ({"finalize": "yes"}, 400, "'finalize' must be true or false"),
        ({"id": "../../etc"}, 400, "'id' must be 24 lower-case hex digits"),
        ({"id": ID.upper()}, 400, "'id' must be 24 lower-case hex digits"),
    ],
)
def test_bad_inline_requests_are_refused_and_write_nothing(
    archive, http, world, change, status, words
) -> None:
    body = _with(world["private"], **change)
    if body["files"][0].get("sha256") is None:
        del body["files"][0]["sha256"]
    r = http.post(URL, json=body, headers=auth(archive, MEMBER))
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert objects(archive) == 0
    with archive.session() as s:
        assert s.query(Upload).count() == 0
    assert not archive.store.has(sha(b"y" * len(SMALL)))


def test_inline_upload_keeps_the_access_rules(archive, http, world) -> None:
    """A project the caller may only read, or not see: refused as the long path refuses, and
    the bytes are not stored."""
    r = http.post(URL, json=inline_body(world["other"]), headers=auth(archive, MEMBER))
    assert r.status_code == 404, r.text
    assert objects(archive) == 0 and not archive.store.has(hashlib.sha256(SMALL).hexdigest())


def test_an_open_session_sent_again_after_losing_write_access_makes_nothing(
    archive, http, world
) -> None:
    """The session was made while the caller was a member; sent again with `finalize` after
    the member was taken out of the project: refused as `POST …/finalize` would be."""
    from brainlife.server.models import ProjectRole

    h = auth(archive, MEMBER)
    body = t1_body(world["private"], SMALL, id=ID, finalize=True)  # no data: stays open
    assert http.post(URL, json=body, headers=h).json()["status"] == "open"
    with archive.session() as s:
        s.query(ProjectRole).filter_by(project_id=world["private"], sub=str(MEMBER)).delete()
        s.commit()
    r = http.post(URL, json=inline_body(world["private"]), headers=h)
    assert r.status_code == 404, r.text  # a private project the caller no longer sees
    assert objects(archive) == 0


def test_a_full_disk_is_507_and_records_nothing(archive, http, world, monkeypatch) -> None:
    """The store cannot write the blob (a full disk, simulated: it cannot be made here for
    real without filling the machine's): 507, no session, no object; sent again once there is
    room, the object is made."""
    import errno

    real = archive.store.put_stream

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.store, "put_stream", full)
    h = auth(archive, MEMBER)
    r = http.post(URL, json=inline_body(world["private"]), headers=h)
    assert r.status_code == 507 and "disk is full" in r.json()["message"], r.text
    with archive.session() as s:
        assert s.query(Upload).count() == 0
    monkeypatch.setattr(archive.store, "put_stream", real)
    r = http.post(URL, json=inline_body(world["private"]), headers=h)
    assert r.status_code == 201 and r.json()["object"]["status"] == "stored"
