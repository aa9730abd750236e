"""`GET /task/download/:id/<path>` and our task manifest: files, folders as .tar.gz, and no way
out of the task folder."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import tarfile
from pathlib import Path

import pytest

from brainlife.wire import routes
from tests.conftest import start_server, stop_server
from tests.server._bytes_factories import MEMBER_GID, auth, make_task, token

SECRET = b"TOP-SECRET-OUTSIDE-THE-TASK"
NOISE = os.urandom(3_000_000)  # does not compress: its .tar.gz is a 3 MB stream

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
    unknown = "0123456789abcdef01234567"
    # a task the caller may not read is told apart from an unknown one by no route
    for route in ("download", "manifest"):
        for method in ["GET", "HEAD"] if route == "download" else ["GET"]:
            hidden = http.request(method, f"/api/amaretti/task/{route}/{tid}/a", headers=stranger)
            missing = http.request(
                method, f"/api/amaretti/task/{route}/{unknown}/a", headers=stranger
            )
            assert hidden.status_code == missing.status_code == 404, (route, method)
            if method == "GET":
                assert hidden.json()["message"].replace(tid, unknown) == missing.json()["message"]
    r = http.get(url(tid, "config.json"), headers={**stranger, "Range": "bytes=1-"})
    assert r.status_code == 404
    r = http.get(f"/api/amaretti/task/{tid}", headers=stranger)
    assert r.status_code == 404


def test_group_member_may_read(archive, http):
    tid, _folder = make_task(archive, user_id="99", group_id=MEMBER_GID, files={"a": b"1"})
    assert http.get(url(tid, "a"), headers=auth(archive, sub=6, gids=[MEMBER_GID])).content == b"1"
    assert http.get(url(tid, "a"), headers=auth(archive, sub=6, gids=[1])).status_code == 404


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
    assert (body["path"], body["type"]) == ("freesurfer/output", "folder")
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
    assert (one.json()["path"], one.json()["type"]) == ("config.json", "file")
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
        == 404
    )


def test_task_manifest_reads_each_version_of_a_file_once(archive, http, task, monkeypatch):
    """A second manifest of an unchanged folder reads no file data; a rewritten file (same size,
    mtime put back) is read again, and only it."""
    from brainlife.server import taskstore

    tid, folder = task
    target = routes.TASK_MANIFEST_PATH.url(task_id=tid, path="freesurfer/output")
    first = http.get(target, headers=auth(archive)).json()
    opened: list[str] = []

    def spy(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(taskstore, "open", spy, raising=False)
    assert http.get(target, headers=auth(archive)).json() == first
    assert opened == []
    stats = folder / "freesurfer" / "output" / "stats" / "aseg.stats"
    st = stats.stat()
    stats.write_bytes(b"# ASEG\n" * 50)
    os.utime(stats, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = http.get(target, headers=auth(archive)).json()
    assert opened == ["aseg.stats"]
    changed = {f["path"]: f["sha256"] for f in again["files"]}
    assert changed["stats/aseg.stats"] == hashlib.sha256(b"# ASEG\n" * 50).hexdigest()


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
            "random/noise.bin": NOISE,
            "random/more/text.txt": b"some text\n" * 1000,
            "random/.hidden": b"no",
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


# --- folders: byte-stable, tagged and resumable ----------------------------------------------

BIG = "freesurfer/output/mri/T1.mgz"  # 100 kB of random bytes: a .tar.gz of about that size


def _folder(http, archive, tid, path="freesurfer", **headers):
    return http.get(url(tid, path), headers={**auth(archive), **headers})


def test_folder_download_is_byte_stable_and_tagged(archive, http, task):
    tid, _folder_path = task
    a = _folder(http, archive, tid)
    b = _folder(http, archive, tid)
    assert (a.status_code, b.status_code) == (200, 200)
    assert a.content == b.content
    etag = a.headers["etag"]
    assert etag == b.headers["etag"]
    assert etag.startswith('"tgz-') and etag.endswith('"') and len(etag) == 38
    assert a.headers["accept-ranges"] == "bytes"
    assert "content-length" not in a.headers  # unknown until compressed: chunked
    assert a.headers["content-type"] == "application/x-tgz"
    head = http.head(url(tid, "freesurfer"), headers=auth(archive))
    assert head.status_code == 200
    assert head.headers["etag"] == etag
    assert head.headers["accept-ranges"] == "bytes"
    assert "content-length" not in head.headers
    # another folder, another tag
    assert _folder(http, archive, tid, "freesurfer/output").headers["etag"] != etag


def test_folder_gzip_header_is_fixed(archive, http, task):
    tid, _folder_path = task
    body = _folder(http, archive, tid).content
    # magic, deflate, no flags (so no file name), mtime 0, XFL 0, OS 3
    assert body[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for m in tar.getmembers():
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")


def test_folder_tag_changes_with_the_files(archive, http, task):
    tid, folder = task
    stats = folder / "freesurfer" / "output" / "stats" / "aseg.stats"
    first = _folder(http, archive, tid)
    st = stats.stat()
    os.utime(stats, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched only
    touched = _folder(http, archive, tid)
    assert touched.headers["etag"] != first.headers["etag"]
    assert touched.content != first.content  # the header's mtime moved
    stats.write_bytes(b"# ASEG\n" * 50)  # same size, new bytes
    rewritten = _folder(http, archive, tid)
    assert rewritten.headers["etag"] not in (first.headers["etag"], touched.headers["etag"])
    assert members(rewritten.content)["output/stats/aseg.stats"] == b"# ASEG\n" * 50
    (folder / "freesurfer" / ".new-hidden").write_bytes(b"x")
    assert ".new-hidden" not in members(_folder(http, archive, tid).content)


def test_folder_range_resumes_exactly(archive, http, task, tmp_path):
    from brainlife.server.ranges import known_length

    tid, _folder_path = task
    etag = http.head(url(tid, "freesurfer"), headers=auth(archive)).headers["etag"]
    assert known_length(etag) is None  # the first range is measured
    first = _folder(http, archive, tid, Range="bytes=1000-", **{"If-Range": etag})
    assert first.status_code == 206
    assert known_length(etag) is not None  # … and the length remembered
    full = _folder(http, archive, tid)
    body = full.content
    total = len(body)
    assert first.content == body[1000:]
    assert first.headers["content-range"] == f"bytes 1000-{total - 1}/{total}"
    assert total > 50_000
    for start in (1, total // 3, total // 2, total - 1):
        part = _folder(http, archive, tid, Range=f"bytes={start}-", **{"If-Range": etag})
        assert part.status_code == 206, start
        assert part.content == body[start:]
        assert part.headers["content-range"] == f"bytes {start}-{total - 1}/{total}"
        assert part.headers["content-length"] == str(total - start)
        assert part.headers["etag"] == etag
        assert part.headers["content-type"] == "application/x-tgz"
        assert part.headers["content-disposition"] == full.headers["content-disposition"]
    # the resumed file is the download: it extracts to the folder's files, hidden ones left out
    half = total // 2
    rest = _folder(http, archive, tid, Range=f"bytes={half}-", **{"If-Range": etag}).content
    resumed = body[:half] + rest
    assert resumed == body
    out = tmp_path / "x"
    with tarfile.open(fileobj=io.BytesIO(resumed), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    expected = {
        rel[len("freesurfer/") :]: data
        for rel, data in TASK_FILES.items()
        if rel.startswith("freesurfer/") and "/." not in rel
    }
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == expected
    assert not any(p.name.startswith(".") for p in out.rglob("*"))


def test_folder_range_forms(archive, http, task):
    tid, _folder_path = task
    full = _folder(http, archive, tid)
    body, total = full.content, len(full.content)
    no_if_range = _folder(http, archive, tid, Range="bytes=100-")
    assert no_if_range.status_code == 206
    assert no_if_range.content == body[100:]
    bounded = _folder(http, archive, tid, Range="bytes=10-19")
    assert bounded.status_code == 206
    assert bounded.content == body[10:20]
    assert bounded.headers["content-range"] == f"bytes 10-19/{total}"
    assert bounded.headers["content-length"] == "10"
    suffix = _folder(http, archive, tid, Range="bytes=-16")
    assert suffix.content == body[-16:]
    assert suffix.headers["content-range"] == f"bytes {total - 16}-{total - 1}/{total}"
    for malformed in ("bytes=abc", "lines=1-", "bytes=5-2", "bytes=1-2,5-6"):
        r = _folder(http, archive, tid, Range=malformed)
        assert r.status_code == 200, malformed
        assert r.content == body
        assert "content-range" not in r.headers


def test_folder_range_past_the_end(archive, http, task):
    tid, _folder_path = task
    full = _folder(http, archive, tid)
    total = len(full.content)
    for start in (total, total + 1, 10**12):
        r = _folder(
            http, archive, tid, Range=f"bytes={start}-", **{"If-Range": full.headers["etag"]}
        )
        assert r.status_code == 416, start
        assert r.headers["content-range"] == f"bytes */{total}"
        assert "message" in r.json()
    zero_suffix = _folder(http, archive, tid, Range="bytes=-0")
    assert zero_suffix.status_code == 416
    assert zero_suffix.headers["content-range"] == f"bytes */{total}"


def test_folder_stale_if_range_gets_the_whole_new_body(archive, http, task):
    tid, folder = task
    old = _folder(http, archive, tid)
    (folder / "freesurfer" / "output" / "stats" / "lh.aparc.stats").write_bytes(b"# new\n")
    new = _folder(http, archive, tid, Range="bytes=1000-", **{"If-Range": old.headers["etag"]})
    assert new.status_code == 200
    assert "content-range" not in new.headers
    assert new.headers["etag"] != old.headers["etag"]
    assert new.content == _folder(http, archive, tid).content
    assert members(new.content)["output/stats/lh.aparc.stats"] == b"# new\n"
    # an If-Range date (never a match for a strong tag) and a weak tag: the whole body too
    for validator in ("Sat, 01 Jan 2000 00:00:00 GMT", "W/" + new.headers["etag"]):
        r = _folder(http, archive, tid, Range="bytes=1000-", **{"If-Range": validator})
        assert r.status_code == 200
        assert r.content == new.content


def test_folder_range_respects_access(archive, http, task):
    tid, _folder_path = task
    r = http.get(url(tid, "freesurfer"), headers={"Range": "bytes=10-"})
    assert r.status_code == 401
    r = http.get(
        url(tid, "freesurfer"), headers={**auth(archive, sub=6, gids=[]), "Range": "bytes=10-"}
    )
    assert r.status_code == 404
    assert "message" in r.json()


# --- the stream itself (foldertgz, ranges) ------------------------------------------------------


def _snapshot(folder: Path):
    from brainlife.server.foldertgz import snapshot_folder

    real = os.path.realpath(folder)
    return snapshot_folder(real, real)


def _whole(snap, *, chunk_size: int, strict: bool = False) -> bytes:
    from brainlife.server.ranges import whole

    return b"".join(whole(snap, chunk_size=chunk_size, strict=strict))


@pytest.fixture
def loose(tmp_path: Path) -> Path:
    """A folder of files that compress to a stream much longer than the read size used."""
    folder = tmp_path / "loose"
    for i in range(5):
        (folder / f"d{i}").mkdir(parents=True)
        (folder / f"d{i}" / "noise.bin").write_bytes(os.urandom(20_000 + i))
        (folder / f"d{i}" / "text.txt").write_bytes(b"".join(b"line %d\n" % n for n in range(3000)))
    (folder / ".hidden").write_bytes(b"no")
    return folder


def test_stream_does_not_depend_on_the_read_size(loose):
    snap = _snapshot(loose)
    bodies = {size: _whole(snap, chunk_size=size) for size in (1, 1000, 4096, 1 << 20)}
    assert len(set(bodies.values())) == 1
    body = bodies[4096]
    raw = gzip.decompress(body)  # the trailer's CRC and length are checked here
    assert len(raw) % 512 == 0
    assert _snapshot(loose).etag == snap.etag


def test_stream_length_is_remembered_only_when_intact(loose):
    from brainlife.server.ranges import known_length

    snap = _snapshot(loose)
    assert known_length(snap.etag) is None
    body = _whole(snap, chunk_size=8192)
    assert known_length(snap.etag) == len(body)

    (loose / "d4" / "new.txt").write_bytes(b"new")
    changed = _snapshot(loose)
    assert changed.etag != snap.etag
    text = loose / "d1" / "text.txt"
    size = text.stat().st_size
    text.write_bytes(b"changed")  # shrank after the walk
    lenient = _whole(changed, chunk_size=8192)
    assert known_length(changed.etag) is None  # those bytes are not what the tag names
    # the whole body stays lenient (brainlife's behaviour): padded to the announced size
    assert members(lenient)["d1/text.txt"] == b"changed" + bytes(size - 7)
    assert _snapshot(loose).etag != changed.etag


def test_strict_stream_refuses_a_changed_file(loose):
    from brainlife.server.foldertgz import FolderChanged
    from brainlife.server.ranges import body_slice

    noise = loose / "d3" / "noise.bin"
    os.utime(noise, (1_000_000_000, 1_000_000_000))  # so that a rewrite surely moves the mtime
    snap = _snapshot(loose)
    full = _whole(snap, chunk_size=4096, strict=True)
    assert b"".join(body_slice(snap, 5000, len(full), chunk_size=4096)) == full[5000:]
    assert b"".join(body_slice(snap, 100, 200, chunk_size=64)) == full[100:200]
    noise.write_bytes(os.urandom(noise.stat().st_size))  # same size, new bytes
    with pytest.raises(FolderChanged):
        b"".join(body_slice(snap, 5000, len(full), chunk_size=4096))
    with pytest.raises(FolderChanged):
        _whole(snap, chunk_size=4096, strict=True)


def test_a_swapped_file_is_never_read(loose, outside):
    """A file replaced by a link after the walk: its bytes are zeros, never the link target's."""
    target = loose / "d2" / "text.txt"
    size = target.stat().st_size
    snap = _snapshot(loose)
    target.unlink()
    target.symlink_to(outside / "secret.txt")
    body = _whole(snap, chunk_size=4096)
    assert SECRET not in gzip.decompress(body)
    assert members(body)["d2/text.txt"] == bytes(size)


@contextlib.contextmanager
def _request(server, method: str, target: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, target, headers=headers or {})
        yield conn, conn.getresponse()
    finally:
        conn.close()


def test_real_server_folder_download_resumes_after_a_cut(real_task):
    """A real client cut off half way through a folder's .tar.gz continues with Range/If-Range
    and ends up with exactly the bytes of a whole download."""
    server, tid, tok = real_task
    target = f"/api/amaretti/task/download/{tid}/random?at={tok}"
    # the cut comes first: no whole download has told the server the length yet, so the 206
    # below measures it
    with _request(server, "GET", target) as (conn, resp):
        assert resp.status == 200
        etag = resp.getheader("ETag")
        assert resp.getheader("Accept-Ranges") == "bytes"
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
        prefix = resp.read(len(NOISE) // 2)
        conn.sock.close()  # dropped half way

    headers = {"Range": f"bytes={len(prefix)}-", "If-Range": etag}
    with _request(server, "GET", target, headers) as (_conn, resp):
        assert resp.status == 206
        assert resp.getheader("ETag") == etag
        content_range = resp.getheader("Content-Range")
        rest = resp.read()
        assert resp.getheader("Content-Length") == str(len(rest))
    total = len(prefix) + len(rest)
    assert content_range == f"bytes {len(prefix)}-{total - 1}/{total}"

    with _request(server, "GET", target) as (_conn, resp):
        assert resp.getheader("ETag") == etag
        full = resp.read()
    assert prefix + rest == full
    assert members(full) == {
        "noise.bin": NOISE,
        "more": None,
        "more/text.txt": b"some text\n" * 1000,
    }

    with _request(server, "GET", target, {"Range": f"bytes={len(full)}-"}) as (_conn, resp):
        assert resp.status == 416
        assert resp.getheader("Content-Range") == f"bytes */{len(full)}"
        assert b"message" in resp.read()

    with _request(server, "HEAD", target) as (_conn, resp):
        assert resp.status == 200
        assert resp.getheader("ETag") == etag
        assert resp.getheader("Content-Length") is None
        assert resp.read() == b""


# --- conditional GET: If-None-Match -----------------------------------------------------------


@pytest.mark.parametrize("path", ["freesurfer/output/stats", "freesurfer/output/mri/T1.mgz"])
def test_if_none_match_answers_304_while_unchanged(archive, http, task, path):
    tid, folder = task
    h = auth(archive)
    first = http.get(url(tid, path), headers=h)
    etag = first.headers["etag"]
    again = http.get(url(tid, path), headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak_list = http.get(url(tid, path), headers={**h, "If-None-Match": f'"x", W/{etag}'})
    assert weak_list.status_code == 304  # weak comparison, any tag of a list
    other = http.get(url(tid, path), headers={**h, "If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content
    changed = folder / path if path.endswith(".mgz") else folder / path / "aseg.stats"
    changed.write_bytes(b"new content")
    after = http.get(url(tid, path), headers={**h, "If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag


def test_if_none_match_on_a_data_object_tar(archive, http):
    from tests.server._bytes_factories import make_dataset, make_project

    ds = make_dataset(archive, make_project(archive), [("a.txt", b"a")], status="stored")
    u = f"/api/warehouse/dataset/download/{ds}"
    etag = http.get(u, headers=auth(archive)).headers["etag"]
    assert http.get(u, headers={**auth(archive), "If-None-Match": etag}).status_code == 304
    assert http.get(u, headers={**auth(archive), "If-None-Match": "*"}).status_code == 304


def test_real_server_304_for_a_folder(real_task):
    server, tid, tok = real_task
    target = f"/api/amaretti/task/download/{tid}/freesurfer/output/stats?at={tok}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        etag = resp.getheader("ETag")
        resp.read()
        conn.request("GET", target, headers={"If-None-Match": etag})  # same connection
        resp = conn.getresponse()
        assert (resp.status, resp.read(), resp.getheader("ETag")) == (304, b"", etag)
        conn.request("GET", target)  # the connection is still good after the 304
        resp = conn.getresponse()
        assert resp.status == 200 and members(resp.read())["wm.stats"] == b"W" * 10
    finally:
        conn.close()
