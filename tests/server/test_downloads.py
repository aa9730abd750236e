"""`GET /dataset/download/:id`, our manifest and per-file routes: access rules, headers, Range,
in-process and against a real `bl serve` on a real socket."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import urllib3

from brainlife.server.models import Dataset
from brainlife.wire import routes
from tests.conftest import start_server, stop_server
from tests.server._bytes_factories import auth, make_dataset, make_project, token

FILES = {
    "t1.nii.gz": os.urandom(150_000),
    "dwi/dwi.bvals": b"0 1000 2000\n",
    "dwi/dwi.bvecs": b"1 0 0\n0 1 0\n0 0 1\n",
}


def dl(did: str) -> str:
    return f"/api/warehouse/dataset/download/{did}"


@pytest.fixture
def project(archive) -> str:
    return make_project(archive)


@pytest.fixture
def did(archive, project) -> str:
    return make_dataset(archive, project, list(FILES.items()))


def untar(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        out = {}
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            assert fh is not None
            out[member.name] = fh.read()
        return out


# --- access ----------------------------------------------------------------------------------


def test_no_token_is_401(http, did):
    r = http.get(dl(did))
    assert r.status_code == 401
    assert "message" in r.json()


def test_bad_token_is_401(http, did):
    assert http.get(dl(did), headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert http.get(dl(did), params={"at": "nonsense"}).status_code == 401


def test_expired_token_is_401(archive, http, did):
    r = http.get(dl(did), params={"at": token(archive, ttl_ms=-10_000)})
    assert r.status_code == 401
    assert "expired" in r.json()["message"]


def test_unknown_id_is_404(archive, http):
    r = http.get(dl("0123456789abcdef01234567"), headers=auth(archive))
    assert r.status_code == 404
    assert r.json() == {"message": "couldn't find the dataset specified"}
    assert http.get(dl("not-an-id"), headers=auth(archive)).status_code == 404


def test_non_member_is_403(archive, http, did):
    r = http.get(dl(did), headers=auth(archive, sub=6, gids=[]))
    assert r.status_code == 403
    assert r.json()["message"] == "you don't have access to the project that the dataset belongs"


def test_warehouse_admin_may_read(archive, http, did):
    h = auth(archive, sub=6, gids=[], scopes={"warehouse": ["admin"]})
    assert http.get(dl(did), headers=h).status_code == 200


def test_public_project_and_published_objects_are_readable(archive, http):
    public = make_project(archive, access="public", members=())
    pub_id = make_dataset(archive, public, [("a", b"1")])
    private = make_project(archive, members=())
    published = make_dataset(archive, private, [("b", b"2")], published=True)
    hidden = make_dataset(archive, private, [("c", b"3")])
    h = auth(archive, sub=6, gids=[])
    assert untar(http.get(dl(pub_id), headers=h).content) == {"a": b"1"}
    assert untar(http.get(dl(published), headers=h).content) == {"b": b"2"}
    assert http.get(dl(hidden), headers=h).status_code == 403


@pytest.mark.parametrize("status", ["storing", "failed", "removed"])
def test_not_stored_is_409(archive, http, project, status):
    did = make_dataset(archive, project, status=status)
    r = http.get(dl(did), headers=auth(archive))
    assert r.status_code == 409
    assert status in r.json()["message"]
    m = http.get(f"/api/warehouse/dataset/manifest/{did}", headers=auth(archive))
    assert m.status_code == 409


def test_forbidden_wins_over_not_stored(archive, http):
    private = make_project(archive, members=())
    did = make_dataset(archive, private, status="storing")
    assert http.get(dl(did), headers=auth(archive)).status_code == 403


# --- the tar ---------------------------------------------------------------------------------


def test_download_headers_and_body(archive, http, did):
    r = http.get(dl(did), headers=auth(archive))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"] == f"attachment; filename={did}.tar"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('"') and len(r.headers["etag"]) == 66
    assert int(r.headers["content-length"]) == len(r.content)
    assert untar(r.content) == FILES
    with archive.session() as s:
        assert s.get(Dataset, did).size == len(r.content)


def test_token_in_query(archive, http, did):
    r = http.get(dl(did), params={"at": token(archive)})
    assert r.status_code == 200
    assert untar(r.content) == FILES


def test_head(archive, http, did):
    full = http.get(dl(did), headers=auth(archive))
    head = http.head(dl(did), headers=auth(archive))
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "etag", "content-disposition", "accept-ranges"):
        assert head.headers[name] == full.headers[name]
    ranged = http.head(dl(did), headers={**auth(archive), "Range": "bytes=-10"})
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "10"


def test_download_count_counts_complete_tars_only(archive, http, did):
    h = auth(archive)
    http.get(dl(did), headers=h)
    http.get(dl(did), params={"at": token(archive)})
    http.get(dl(did), headers={**h, "Range": "bytes=0-10"})
    http.head(dl(did), headers=h)
    with archive.session() as s:
        assert s.get(Dataset, did).extra["download_count"] == 2


def _count(archive, did: str) -> int:
    with archive.session() as s:
        return int((s.get(Dataset, did).extra or {}).get("download_count", 0))


def test_a_completed_download_counts_once_whatever_the_route(archive, http, did):
    """Counted when a response delivers the object's last byte: the tar's, or on the per-file
    route that of the last non-empty file in tar order (docs/decisions.md)."""
    h = auth(archive)
    manifest = http.get(routes.DATASET_MANIFEST.url(dataset_id=did), headers=h).json()
    paths = [f["path"] for f in manifest["files"]]
    assert paths == list(FILES)

    def file(path: str, **headers: str):
        return http.get(
            routes.DATASET_FILE.url(dataset_id=did, path=path), headers={**h, **headers}
        )

    for path in paths:  # what `bl` does: every file of the manifest, once
        assert file(path).status_code == 200
    assert _count(archive, did) == 1
    last = paths[-1]
    assert file(last, Range="bytes=0-3").status_code == 206  # cut short …
    assert _count(archive, did) == 1
    assert file(last, Range="bytes=4-").status_code == 206  # … and resumed to the end
    assert _count(archive, did) == 2
    file(paths[0])  # a file that does not end the object
    http.head(routes.DATASET_FILE.url(dataset_id=did, path=last), headers=h)
    assert (
        file(last, **{"If-None-Match": f'"{manifest["files"][-1]["sha256"]}"'}).status_code == 304
    )
    assert _count(archive, did) == 2
    assert http.get(dl(did), headers={**h, "Range": "bytes=0-99"}).status_code == 206
    assert http.get(dl(did), headers={**h, "Range": "bytes=100-"}).status_code == 206
    assert _count(archive, did) == 3  # the tar, resumed to its end


def test_the_last_non_empty_file_ends_an_object(archive, http, project):
    did = make_dataset(archive, project, [("a.txt", b"a" * 10), ("z.txt", b"")])
    h = auth(archive)
    http.get(routes.DATASET_FILE.url(dataset_id=did, path="z.txt"), headers=h)
    assert _count(archive, did) == 0
    http.get(routes.DATASET_FILE.url(dataset_id=did, path="a.txt"), headers=h)
    assert _count(archive, did) == 1


def test_empty_object(archive, http, project):
    did = make_dataset(archive, project, [])
    r = http.get(dl(did), headers=auth(archive))
    assert r.status_code == 200
    assert r.content == bytes(1024)
    assert untar(r.content) == {}


# --- manifest and single files ---------------------------------------------------------------


def test_manifest(archive, http, did):
    r = http.get(f"/api/warehouse/dataset/manifest/{did}", params={"at": token(archive)})
    assert r.status_code == 200
    body = r.json()
    assert body["_id"] == did
    assert body["files"] == [
        {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for p, b in FILES.items()
    ]
    assert body["tar_size"] == len(http.get(dl(did), headers=auth(archive)).content)


def test_manifest_access(archive, http, did):
    url = f"/api/warehouse/dataset/manifest/{did}"
    assert http.get(url).status_code == 401
    assert http.get(url, headers=auth(archive, sub=6, gids=[])).status_code == 403
    missing = "/api/warehouse/dataset/manifest/0123456789abcdef01234567"
    assert http.get(missing, headers=auth(archive)).status_code == 404


def test_single_file(archive, http, did):
    url = f"/api/warehouse/dataset/file/{did}/dwi/dwi.bvals"
    r = http.get(url, headers=auth(archive))
    assert r.status_code == 200
    assert r.content == FILES["dwi/dwi.bvals"]
    assert r.headers["etag"] == f'"{hashlib.sha256(FILES["dwi/dwi.bvals"]).hexdigest()}"'
    assert r.headers["content-length"] == str(len(FILES["dwi/dwi.bvals"]))
    assert r.headers["content-disposition"] == "attachment; filename=dwi.bvals"
    assert r.headers["accept-ranges"] == "bytes"
    big = http.get(f"/api/warehouse/dataset/file/{did}/t1.nii.gz", params={"at": token(archive)})
    assert big.content == FILES["t1.nii.gz"]
    assert big.headers["content-type"] == "application/gzip"


def test_single_file_range_and_errors(archive, http, did):
    url = f"/api/warehouse/dataset/file/{did}/t1.nii.gz"
    h = auth(archive)
    data = FILES["t1.nii.gz"]
    first = http.get(url, headers={**h, "Range": "bytes=0-65535"})
    rest = http.get(url, headers={**h, "Range": "bytes=65536-"})
    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.content + rest.content == data
    assert http.get(url, headers={**h, "Range": f"bytes={len(data)}-"}).status_code == 416
    assert http.get(f"/api/warehouse/dataset/file/{did}/nope", headers=h).status_code == 404
    assert http.get(f"/api/warehouse/dataset/file/{did}/dwi", headers=h).status_code == 404
    assert http.get(url, headers=auth(archive, sub=6, gids=[])).status_code == 403
    assert http.get(url).status_code == 401
    assert http.head(url, headers=h).headers["content-length"] == str(len(data))


# --- a real server on a real socket ----------------------------------------------------------

BIG = os.urandom(6 * 1024 * 1024 + 4321)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("real") / "data"
    arch = open_archive(Settings(data_dir=data_dir))
    pid = make_project(arch)
    files = {**FILES, "big/dwi.nii.gz": BIG}
    did = make_dataset(arch, pid, list(files.items()))
    # bigger than loopback socket buffers: a client that stops reading really stops the server
    huge = make_dataset(arch, pid, [("huge.bin", os.urandom(1024 * 1024) * 32)])
    tok = token(arch)
    arch.engine.dispose()
    server = start_server(data_dir)
    server.huge = huge  # type: ignore[attr-defined]
    yield server, did, tok, files
    stop_server(server)


def _get(url: str, tok: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "GET",
        url,
        headers={"Authorization": f"Bearer {tok}", **(headers or {})},
        preload_content=False,
        retries=False,
    )


def test_real_server_full_download(real):
    server, did, tok, files = real
    r = _get(server.url + dl(did), tok)
    assert r.status == 200
    body = b"".join(r.stream(1024 * 1024))
    assert len(body) == int(r.headers["content-length"])
    assert untar(body) == files


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_real_server_curl_piped_into_tar(real, tmp_path: Path):
    """What the official CLI and brainlife's downscript do: stream the body into `tar -x`."""
    server, did, tok, files = real
    out = tmp_path / "obj"
    out.mkdir()
    cmd = f"curl -sSf '{server.url}{dl(did)}?at={tok}' | tar -x -C '{out}'"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == files


def test_real_server_resume_after_interrupted_download(real):
    server, did, tok, _files = real
    url = server.url + dl(did)
    whole = b"".join(_get(url, tok).stream(1024 * 1024))
    # an interrupted download: read part of the body, then drop the connection
    r = _get(url, tok)
    etag = r.headers["etag"]
    partial = r.read(2 * 1024 * 1024 + 17)
    r.release_conn()
    r.close()
    rest = _get(url, tok, {"Range": f"bytes={len(partial)}-", "If-Range": etag})
    assert rest.status == 206
    assert rest.headers["content-range"] == f"bytes {len(partial)}-{len(whole) - 1}/{len(whole)}"
    assert partial + b"".join(rest.stream(1024 * 1024)) == whole
    # the server is still fine
    assert _get(server.url + f"/api/warehouse/dataset/manifest/{did}", tok).status == 200


def test_real_server_parallel_downloads_are_intact(real):
    server, did, tok, _files = real
    url = server.url + dl(did)
    expected = hashlib.sha256(b"".join(_get(url, tok).stream(1024 * 1024))).hexdigest()
    digests: list[str] = []

    def fetch() -> None:
        digest = hashlib.sha256()
        for chunk in _get(url, tok).stream(1024 * 1024):
            digest.update(chunk)
        digests.append(digest.hexdigest())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert digests == [expected] * 8


def test_real_server_single_file_and_errors(real):
    server, did, tok, files = real
    r = _get(server.url + f"/api/warehouse/dataset/file/{did}/big/dwi.nii.gz", tok)
    assert r.status == 200
    assert b"".join(r.stream(1024 * 1024)) == files["big/dwi.nii.gz"]
    assert _get(server.url + dl(did), "bad").status == 401
    assert _get(server.url + dl("0123456789abcdef01234567"), tok).status == 404


def _download_count(data_dir: Path, did: str) -> int:
    import json
    import sqlite3

    with sqlite3.connect(data_dir / "archive.sqlite3") as db:
        (extra,) = db.execute("SELECT extra FROM datasets WHERE id = ?", (did,)).fetchone()
    return int(json.loads(extra).get("download_count", 0))


def test_real_server_counts_complete_downloads_only(real):
    import time

    server, _did, tok, _files = real
    did = server.huge
    url = server.url + dl(did)
    before = _download_count(server.data_dir, did)
    pool = urllib3.HTTPConnectionPool(
        "127.0.0.1",
        server.port,
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)],
        retries=False,
    )
    r = pool.request(
        "GET", dl(did), headers={"Authorization": f"Bearer {tok}"}, preload_content=False
    )
    r.read(65536)
    r.close()  # drop the connection half way
    pool.close()
    time.sleep(1.0)
    assert _download_count(server.data_dir, did) == before
    b"".join(_get(url, tok).stream(1024 * 1024))
    deadline = time.monotonic() + 10
    while _download_count(server.data_dir, did) != before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _download_count(server.data_dir, did) == before + 1
