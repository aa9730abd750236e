"""`GET /task/download/:id/<path>` and our task manifest: files, folders as .tar.gz, and no way
out of the task folder."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.server._bytes_factories import MEMBER_GID, auth, make_task, token

SECRET = b"TOP-SECRET-OUTSIDE-THE-TASK"

TASK_FILES = {
    "freesurfer/output/stats/aseg.stats": b"# aseg\n" * 50,
    "freesurfer/output/stats/lh.aparc.stats": b"# lh\n" * 30,
    "freesurfer/output/stats/.hidden": b"no",
    "freesurfer/output/.cache/x": b"no",
    "freesurfer/output/mri/T1.mgz": os.urandom(100_000),
    "config.json": b'{"t1": "../t1.nii.gz"}',
    "_smon.out": b"log",
    ".brainlife.json": b"no",
}


def url(task_id: str, path: str = "") -> str:
    return f"/api/amaretti/task/download/{task_id}/{path}"


def members(body: bytes) -> dict[str, bytes | None]:
    """name → bytes (None for folders) of a .tar.gz body."""
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        out: dict[str, bytes | None] = {}
        for m in tar.getmembers():
            fh = tar.extractfile(m) if m.isfile() else None
            out[m.name] = fh.read() if fh else None
        return out


@pytest.fixture
def task(archive):
    return make_task(archive, files=TASK_FILES)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


# --- files -----------------------------------------------------------------------------------


def test_file(archive, http, task):
    tid, _folder = task
    r = http.get(url(tid, "config.json"), headers=auth(archive))
    assert r.status_code == 200
    assert r.content == TASK_FILES["config.json"]
    assert r.headers["content-length"] == str(len(TASK_FILES["config.json"]))
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == "attachment; filename=config.json"
    other = http.get(url(tid, "freesurfer/output/mri/T1.mgz"), params={"at": token(archive)})
    assert other.content == TASK_FILES["freesurfer/output/mri/T1.mgz"]
    log = http.get(url(tid, "_smon.out"), headers=auth(archive))
    assert log.headers["content-type"] == "application/octet-stream"


def test_file_by_query_parameter(archive, http, task):
    tid, _folder = task
    r = http.get(
        f"/api/amaretti/task/download/{tid}", params={"p": "_smon.out"}, headers=auth(archive)
    )
    assert r.content == b"log"


def test_file_range(archive, http, task):
    tid, _folder = task
    data = TASK_FILES["freesurfer/output/mri/T1.mgz"]
    u = url(tid, "freesurfer/output/mri/T1.mgz")
    h = auth(archive)
    a = http.get(u, headers={**h, "Range": "bytes=0-49999"})
    b = http.get(u, headers={**h, "Range": "bytes=50000-"})
    assert (a.status_code, b.status_code) == (206, 206)
    assert a.content + b.content == data
    assert http.get(u, headers={**h, "Range": "bytes=-10"}).content == data[-10:]
    assert http.get(u, headers={**h, "Range": f"bytes={len(data)}-"}).status_code == 416
    head = http.head(u, headers=h)
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"]


def test_hidden_file_can_be_asked_for_by_name(archive, http, task):
    tid, _folder = task
    r = http.get(url(tid, "freesurfer/output/stats/.hidden"), headers=auth(archive))
    assert r.content == b"no"


# --- folders ---------------------------------------------------------------------------------


def test_folder_is_a_tgz_of_its_contents(archive, http, task):
    tid, _folder = task
    r = http.get(url(tid, "freesurfer/output/stats"), params={"at": token(archive)})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tgz"
    assert r.headers["content-disposition"] == (
        f"attachment; filename={'a' * 24}.{tid}.freesurfer.output.stats.tar.gz"
    )
    assert gzip.decompress(r.content)  # a real gzip stream
    assert members(r.content) == {
        "aseg.stats": TASK_FILES["freesurfer/output/stats/aseg.stats"],
        "lh.aparc.stats": TASK_FILES["freesurfer/output/stats/lh.aparc.stats"],
    }


def test_folder_with_trailing_slash(archive, http, task):
    tid, _folder = task
    r = http.get(url(tid, "freesurfer/output/"), headers=auth(archive))
    got = members(r.content)
    assert set(got) == {"stats", "stats/aseg.stats", "stats/lh.aparc.stats", "mri", "mri/T1.mgz"}
    assert r.headers["content-disposition"].endswith(".freesurfer.output.tar.gz")


@pytest.mark.parametrize("variant", ["slash", "bare", "p"])
def test_whole_task_folder(archive, http, task, variant):
    tid, _folder = task
    h = auth(archive)
    if variant == "slash":
        r = http.get(url(tid, ""), headers=h)
    elif variant == "bare":
        r = http.get(f"/api/amaretti/task/download/{tid}", headers=h)
    else:
        r = http.get(f"/api/amaretti/task/download/{tid}", params={"p": "/"[1:]}, headers=h)
    assert r.status_code == 200
    got = members(r.content)
    assert "config.json" in got and "_smon.out" in got
    assert "freesurfer/output/mri/T1.mgz" in got
    assert not any(part.startswith(".") for name in got for part in name.split("/"))
    assert r.headers["content-disposition"] == f"attachment; filename={'a' * 24}.{tid}.tar.gz"


def test_folder_bytes_are_repeatable(archive, http, task):
    tid, _folder = task
    h = auth(archive)
    assert (
        http.get(url(tid, "freesurfer"), headers=h).content
        == http.get(url(tid, "freesurfer"), headers=h).content
    )


def test_head_on_folder(archive, http, task):
    tid, _folder = task
    r = http.head(url(tid, "freesurfer"), headers=auth(archive))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tgz"
    assert r.content == b""


# --- access ----------------------------------------------------------------------------------


def test_access(archive, http, task):
    tid, _folder = task
    assert http.get(url(tid, "config.json")).status_code == 401
    assert http.get(url(tid, "config.json"), params={"at": "bad"}).status_code == 401
    stranger = auth(archive, sub=6, gids=[])
    r = http.get(url(tid, "config.json"), headers=stranger)
    assert r.status_code == 403
    assert "message" in r.json()
    missing = http.get(url("0123456789abcdef01234567", "x"), headers=auth(archive))
    assert missing.status_code == 404


def test_group_member_may_read(archive, http):
    tid, _folder = make_task(archive, user_id="99", group_id=MEMBER_GID, files={"a": b"1"})
    assert http.get(url(tid, "a"), headers=auth(archive, sub=6, gids=[MEMBER_GID])).content == b"1"
    assert http.get(url(tid, "a"), headers=auth(archive, sub=6, gids=[1])).status_code == 403


def test_missing_path_and_folder(archive, http, task):
    tid, folder = task
    h = auth(archive)
    r = http.get(url(tid, "no/such/file"), headers=h)
    assert r.status_code == 404
    assert "no/such/file" in r.json()["message"]
    assert http.get(url(tid, "config.json/x"), headers=h).status_code == 404
    for p in folder.rglob("*"):
        if p.is_file():
            p.unlink()
    import shutil

    shutil.rmtree(folder)
    assert http.get(url(tid, ""), headers=h).status_code == 404


# --- never outside the task folder -----------------------------------------------------------


def _refused(r) -> None:
    assert r.status_code in (400, 404), r.status_code
    assert SECRET not in r.content
    assert b"PRIVATE KEY" not in r.content
    assert "message" in r.json()


@pytest.mark.parametrize(
    "p",
    [
        "../../keys/auth.key",
        "..",
        "freesurfer/../../",
        "freesurfer/../../../outside/secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "a\x00b",
    ],
)
def test_traversal_by_query_parameter(archive, http, task, p):
    tid, _folder = task
    r = http.get(f"/api/amaretti/task/download/{tid}", params={"p": p}, headers=auth(archive))
    _refused(r)
    assert r.status_code == 400


@pytest.mark.parametrize(
    "raw",
    [
        "%2e%2e/%2e%2e/keys/auth.key",
        "%2E%2E%2F%2E%2E%2Fkeys%2Fauth.key",
        "freesurfer/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt",
        "%2Fetc%2Fpasswd",
    ],
)
def test_traversal_encoded_in_the_path(archive, http, task, raw):
    tid, _folder = task
    r = http.get(f"/api/amaretti/task/download/{tid}/{raw}", headers=auth(archive))
    _refused(r)


def test_traversal_in_manifest(archive, http, task):
    tid, _folder = task
    r = http.get(f"/api/amaretti/task/manifest/{tid}", params={"p": "../.."}, headers=auth(archive))
    assert r.status_code == 400


def test_symlink_to_outside_file(archive, http, task, outside):
    tid, folder = task
    (folder / "leak.txt").symlink_to(outside / "secret.txt")
    (folder / "freesurfer" / "abs-leak").symlink_to("/etc/passwd")
    h = auth(archive)
    _refused(http.get(url(tid, "leak.txt"), headers=h))
    _refused(http.get(url(tid, "freesurfer/abs-leak"), headers=h))
    whole = http.get(url(tid), headers=h)
    assert whole.status_code == 200
    assert "leak.txt" not in members(whole.content)
    assert "freesurfer/abs-leak" not in members(whole.content)
    assert SECRET not in gzip.decompress(whole.content)


def test_symlinked_folder_to_outside(archive, http, task, outside):
    tid, folder = task
    (folder / "freesurfer" / "linked").symlink_to(outside, target_is_directory=True)
    h = auth(archive)
    _refused(http.get(url(tid, "freesurfer/linked"), headers=h))
    _refused(http.get(url(tid, "freesurfer/linked/secret.txt"), headers=h))
    r = http.get(url(tid, "freesurfer"), headers=h)
    assert not any(name.startswith("linked") for name in members(r.content))
    assert SECRET not in gzip.decompress(r.content)
    manifest = http.get(f"/api/amaretti/task/manifest/{tid}", headers=h).json()
    assert not any("linked" in f["path"] for f in manifest["files"])


def test_link_in_the_middle_of_the_path(archive, http, task, outside):
    tid, folder = task
    (folder / "up").symlink_to("..")  # the tasks folder itself
    (folder.parent / "sibling.txt").write_bytes(SECRET)
    (folder / "freesurfer" / "out").symlink_to(outside)
    h = auth(archive)
    _refused(http.get(url(tid, "up/sibling.txt"), headers=h))
    # through the link and back into the task folder is fine
    assert http.get(url(tid, f"up/{tid}/config.json"), headers=h).status_code == 200
    _refused(http.get(url(tid, "freesurfer/out/secret.txt"), headers=h))
    _refused(http.get(f"/api/amaretti/task/download/{tid}", params={"p": "up"}, headers=h))


def test_links_inside_the_task_are_followed(archive, http, task):
    tid, folder = task
    stats = folder / "freesurfer" / "output" / "stats"
    (folder / "aseg-link.stats").symlink_to("freesurfer/output/stats/aseg.stats")
    (folder / "stats-link").symlink_to(stats, target_is_directory=True)  # absolute, inside
    (folder / "loop").symlink_to(".")
    (folder / "dangling").symlink_to("does-not-exist")
    h = auth(archive)
    aseg = TASK_FILES["freesurfer/output/stats/aseg.stats"]
    assert http.get(url(tid, "aseg-link.stats"), headers=h).content == aseg
    assert http.get(url(tid, "stats-link/aseg.stats"), headers=h).content == aseg
    got = members(http.get(url(tid), headers=h).content)
    assert got["aseg-link.stats"] == aseg
    assert got["stats-link/aseg.stats"] == aseg
    assert got["stats-link"] is None  # a folder entry
    assert "dangling" not in got
    assert not any(name.startswith("loop") for name in got)  # a cycle is cut, not recursed
    sub = members(http.get(url(tid, "stats-link"), headers=h).content)
    assert set(sub) == {"aseg.stats", "lh.aparc.stats"}


# --- manifest --------------------------------------------------------------------------------


def test_task_manifest(archive, http, task):
    tid, _folder = task
    r = http.get(
        f"/api/amaretti/task/manifest/{tid}",
        params={"p": "freesurfer/output"},
        headers=auth(archive),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["_id"] == tid
    expected = {
        rel[len("freesurfer/output/") :]: data
        for rel, data in TASK_FILES.items()
        if rel.startswith("freesurfer/output/") and "/." not in rel
    }
    assert body["files"] == [
        {"path": p, "size": len(expected[p]), "sha256": hashlib.sha256(expected[p]).hexdigest()}
        for p in sorted(expected)
    ]
    one = http.get(f"/api/amaretti/task/manifest/{tid}/config.json", params={"at": token(archive)})
    assert one.json()["files"] == [
        {
            "path": "config.json",
            "size": len(TASK_FILES["config.json"]),
            "sha256": hashlib.sha256(TASK_FILES["config.json"]).hexdigest(),
        }
    ]
    assert http.get(f"/api/amaretti/task/manifest/{tid}").status_code == 401
    assert (
        http.get(
            f"/api/amaretti/task/manifest/{tid}", headers=auth(archive, sub=6, gids=[])
        ).status_code
        == 403
    )


# --- a real server: raw paths reach it without client-side normalisation --------------------


@pytest.fixture(scope="module")
def real_task(tmp_path_factory):
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    base = tmp_path_factory.mktemp("realtask")
    data_dir = base / "data"
    arch = open_archive(Settings(data_dir=data_dir))
    tid, _folder = make_task(
        arch,
        files={
            "freesurfer/output/stats/aseg.stats": b"A" * 3_000_000,
            "freesurfer/output/stats/wm.stats": b"W" * 10,
        },
    )
    (base / "secret.txt").write_bytes(SECRET)
    tok = token(arch)
    arch.engine.dispose()
    server = start_server(data_dir)
    yield server, tid, tok
    stop_server(server)


def _raw_get(server, target: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", target)  # sent exactly as written
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_real_server_seed_script_download(real_task):
    """The user document's script: `…/task/download/<id>/freesurfer/output/stats?at=<jwt>`."""
    server, tid, tok = real_task
    status, body = _raw_get(
        server, f"/api/amaretti/task/download/{tid}/freesurfer/output/stats?at={tok}"
    )
    assert status == 200
    assert members(body) == {"aseg.stats": b"A" * 3_000_000, "wm.stats": b"W" * 10}


@pytest.mark.parametrize(
    "path",
    [
        "../../keys/auth.key",
        "freesurfer/../../../secret.txt",
        "%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "..%2f..%2f..%2fsecret.txt",
        "/../../../secret.txt",
    ],
)
def test_real_server_raw_traversal(real_task, path):
    server, tid, tok = real_task
    status, body = _raw_get(server, f"/api/amaretti/task/download/{tid}/{path}?at={tok}")
    assert status in (400, 404)
    assert SECRET not in body and b"PRIVATE KEY" not in body
