"""A file declared without its sha256 (a client hashing while it sends, issue #10's speed target):
every byte but the last is taken before the digest, `PUT …/file/<n>/sha256` declares it (with the
same "already held" rule as at creation, so no oracle), and the whole file is checked against it.
Also the server's running sha256 kept between two `PUT`s of a file, and never trusted once the
staged file changed under it."""

from __future__ import annotations

import fcntl
import os

from brainlife.server.models import Dataset
from brainlife.server.services import uploads as upload_service
from tests.server.test_uploads import MEMBER, OTHER, T1, URL, auth, put, sha, t1_body, world

__all__ = ["world"]  # the fixture, used by name


def late_body(project: str, data: bytes = T1) -> dict:
    body = t1_body(project, data)
    del body["files"][0]["sha256"]
    return body


def declare(http, h, uid: str, n: int, digest: str):  # type: ignore[no-untyped-def]
    return http.put(f"{URL}/{uid}/file/{n}/sha256", json={"sha256": digest}, headers=h)


def test_digest_declared_while_sending(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    r = http.post(URL, json=late_body(world["private"]), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["files"][0]["sha256"] is None and r.json()["files"][0]["state"] == "partial"
    uid = r.json()["_id"]
    half = len(T1) // 2
    assert put(http, h, uid, 0, T1[:half], 0, len(T1)).json()["files"][0]["received"] == half
    # the last byte needs the digest first: refused before a byte is written
    r = put(http, h, uid, 0, T1[half:], half, len(T1))
    assert r.status_code == 409 and "Declare the sha256" in r.json()["message"]
    assert http.get(f"{URL}/{uid}", headers=h).json()["files"][0]["received"] == half
    r = declare(http, h, uid, 0, sha(T1))
    assert r.status_code == 200, r.text
    assert r.json()["files"][0] | {} == {
        "id": "t1",
        "name": "t1.nii.gz",
        "size": len(T1),
        "sha256": sha(T1),
        "state": "partial",
        "received": half,
    }
    assert declare(http, h, uid, 0, sha(T1)).status_code == 200  # a retried request
    r = declare(http, h, uid, 0, sha(b"other"))
    assert r.status_code == 409 and "declared already" in r.json()["message"]
    r = put(http, h, uid, 0, T1[half:], half, len(T1))
    assert r.status_code == 200 and r.json()["files"][0]["state"] == "stored", r.text
    doc = http.post(f"{URL}/{uid}/finalize", headers=h).json()
    manifest = http.get(f"/api/warehouse/dataset/manifest/{doc['_id']}", headers=h).json()
    assert manifest["files"] == [{"path": "t1.nii.gz", "size": len(T1), "sha256": sha(T1)}]


def test_a_wrong_late_digest_drops_the_bytes_and_may_be_declared_again(
    archive, http, world
) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=late_body(world["private"]), headers=h).json()["_id"]
    assert put(http, h, uid, 0, T1[:1000], 0, len(T1)).status_code == 200
    assert declare(http, h, uid, 0, sha(b"not these bytes")).status_code == 200
    r = put(http, h, uid, 0, T1[1000:], 1000, len(T1))
    assert r.status_code == 400 and "do not have the sha256 declared" in r.json()["message"]
    state = http.get(f"{URL}/{uid}", headers=h).json()["files"][0]
    assert state["received"] == 0 and state["sha256"] is None and state["state"] == "partial"
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 409
    # the right digest and bytes now go through
    assert declare(http, h, uid, 0, sha(T1)).status_code == 200
    assert put(http, h, uid, 0, T1, 0, len(T1)).json()["files"][0]["state"] == "stored"
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 200


def test_a_late_digest_finds_content_held_but_is_no_oracle(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, uid, 0, T1, 0, len(T1))
    assert http.post(f"{URL}/{uid}/finalize", headers=h).status_code == 200
    # the member can read that object: the rest need not be sent, the staged bytes go
    again = http.post(URL, json=late_body(world["private"]), headers=h).json()["_id"]
    assert put(http, h, again, 0, T1[:5000], 0, len(T1)).status_code == 200
    r = declare(http, h, again, 0, sha(T1))
    assert r.json()["files"][0]["state"] == "stored" and r.json()["files"][0]["received"] == len(T1)
    assert not (archive.settings.uploads_dir / again / "0").exists()
    assert http.post(f"{URL}/{again}/finalize", headers=h).status_code == 200
    # someone who cannot read it must send it in full
    outsider = auth(archive, OTHER)
    theirs = http.post(URL, json=late_body(world["other"]), headers=outsider).json()["_id"]
    r = declare(http, outsider, theirs, 0, sha(T1))
    assert r.json()["files"][0]["state"] == "partial" and r.json()["files"][0]["received"] == 0
    with archive.session() as s:
        assert s.query(Dataset).count() == 2


def test_declaring_is_checked(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=late_body(world["private"]), headers=h).json()["_id"]
    for bad in ({"sha256": "ABC"}, {"sha256": 5}, [], {"nope": 1}):
        r = http.put(f"{URL}/{uid}/file/0/sha256", json=bad, headers=h)
        assert r.status_code == 400 and "sha256" in r.json()["message"]
    assert declare(http, h, uid, 1, sha(T1)).status_code == 404
    assert declare(http, h, uid, 0, sha(T1)).status_code == 200
    # not the session's creator: the 404 of an unknown session
    assert declare(http, auth(archive, OTHER), uid, 0, sha(T1)).status_code == 404
    assert declare(http, {}, uid, 0, sha(T1)).status_code == 401


def test_declaring_while_bytes_arrive_is_refused(archive, http, world) -> None:
    h = auth(archive, MEMBER)
    uid = http.post(URL, json=late_body(world["private"]), headers=h).json()["_id"]
    path = upload_service.staged_path(archive, uid, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a PUT in progress holds
        r = declare(http, h, uid, 0, sha(T1))
        assert r.status_code == 409 and "sending" in r.json()["message"]
    finally:
        os.close(fd)
    assert declare(http, h, uid, 0, sha(T1)).status_code == 200


def test_running_sha256_kept_between_puts_but_not_trusted_after_a_change(
    archive, http, world, monkeypatch
) -> None:
    """The second `PUT` of a file does not read the staged prefix again (the running sha256 of
    the first is kept), unless the staged file changed since: then it is read again, and bytes
    that are not the client's are caught."""
    reads: list[str] = []
    real_open = open

    def spy(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "rb" in mode:
            reads.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(upload_service, "open", spy, raising=False)
    h = auth(archive, MEMBER)
    third = len(T1) // 3
    uid = http.post(URL, json=t1_body(world["private"]), headers=h).json()["_id"]
    put(http, h, uid, 0, T1[:third], 0, len(T1))
    put(http, h, uid, 0, T1[third : 2 * third], third, len(T1))
    assert reads == []
    # the staged bytes change under the server (same size, same modification time)
    path = upload_service.staged_path(archive, uid, 0)
    st = path.stat()
    with real_open(path, "r+b") as fh:
        fh.write(b"X" * 100)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = put(http, h, uid, 0, T1[2 * third :], 2 * third, len(T1))
    assert reads == [str(path)]
    assert r.status_code == 400 and "do not have the sha256 declared" in r.json()["message"]
