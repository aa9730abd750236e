"""Project files in-process over a copy of the demo world (O3D has a small tree and 1,200 event
logs in one folder): the listing (one folder level, pages of at most 1,000, continuation tokens
that reach every entry once), single-file downloads with Range/ETag, folder tars, and our
`PUT`/`DELETE /projectfile/...` — the access matrix of every route, hostile paths and bodies
(nothing half-stored), and the bounds."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from brainlife.server.app import create_app
from brainlife.server.archive import Archive, open_archive
from brainlife.server.demo.projectfiles import EVENT_LOGS, O3D_FILES, demo_files
from brainlife.server.demo.world import GUEST_PROJECT, O3D_PROJECT, PRIVATE_PROJECT, TP_PROJECT
from brainlife.server.models import ProjectFile
from brainlife.server.settings import Settings
from brainlife.wire import routes
from tests.conftest import make_token

USERS = ("hayashis", "avesani", "demo")
MISSING_PROJECT = "0123456789abcdef01234567"


def _open(demo: Path, where: Path) -> Archive:
    data = where / "data"
    shutil.copytree(demo, data)
    return open_archive(
        Settings(data_dir=data, failed_login_delay=0.0, max_project_file_bytes=64 * 1024)
    )


def _headers(archive: Archive) -> dict[str, dict[str, str]]:
    """Headers per user (`anonymous`: no token)."""
    out = {u: {"Authorization": f"Bearer {make_token(archive, u)}"} for u in USERS}
    out["anonymous"] = {}
    return out


@pytest.fixture(scope="module")
def reader(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], Archive]]:
    """One copy of the demo for the tests that only read."""
    arch = _open(demo_archive_dir, tmp_path_factory.mktemp("ro"))
    with TestClient(create_app(archive=arch)) as client:
        yield client, _headers(arch), arch
    arch.engine.dispose()


@pytest.fixture
def archive(demo_archive_dir: Path, tmp_path: Path) -> Iterator[Archive]:
    arch = _open(demo_archive_dir, tmp_path)
    yield arch
    arch.engine.dispose()


@pytest.fixture
def http(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive=archive)) as client:
        yield client


@pytest.fixture
def h(archive: Archive) -> dict[str, dict[str, str]]:
    return _headers(archive)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(http: TestClient, hdr: dict[str, str], project: str, path: str, data: bytes, **kw: Any):
    headers = {**hdr, "X-Content-SHA256": kw.pop("digest", sha(data))}
    return http.put(routes.PROJECT_FILE.url(project_id=project, path=path), content=data,
                    headers=headers)  # fmt: skip


def listing(http: TestClient, hdr: dict[str, str], project: str, prefix: str = "", **params: Any):
    url = (
        routes.PROJECT_FILES_PREFIX.url(project_id=project, prefix=prefix)
        if prefix
        else routes.PROJECT_FILES.url(project_id=project)
    )
    return http.get(url, headers=hdr, params=params)


def all_pages(http: TestClient, hdr: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    pages, token = [], None
    while True:
        params = {"limit": 1000} if token is None else {"limit": 1000, "continuationToken": token}
        res = listing(http, hdr, O3D_PROJECT, prefix, **params)
        assert res.status_code == 200, res.text
        pages.append(res.json())
        if not res.json()["isTruncated"]:
            return pages
        token = res.json()["nextContinuationToken"]


# -- listing --------------------------------------------------------------------------------


def test_the_root_lists_one_level_folders_and_files(reader) -> None:
    http, h, _archive = reader
    res = listing(http, h["demo"], O3D_PROJECT)
    assert res.status_code == 200, res.text
    body = res.json()
    assert [f["Name"] for f in body["folders"]] == ["docs", "logs", "qc"]
    assert [f["Prefix"] for f in body["folders"]] == ["docs/", "logs/", "qc/"]
    (readme,) = body["objects"]
    assert readme["Name"] == readme["Key"] == "README.txt"
    assert readme["Size"] == len(O3D_FILES["README.txt"])
    assert readme["ETag"] == sha(O3D_FILES["README.txt"])
    assert readme["LastModified"].startswith("2025-03-10T")
    assert body["isTruncated"] is False and body["nextContinuationToken"] == ""
    assert body["prefix"] == ""


@pytest.mark.parametrize("prefix", ["docs", "/docs/", "docs/"])
def test_a_folder_lists_its_files_with_names_relative_to_it(reader, prefix: str) -> None:
    http, h, _archive = reader
    body = listing(http, h["demo"], O3D_PROJECT, prefix).json()
    assert [o["Name"] for o in body["objects"]] == ["consent-template.txt", "protocol.pdf"]
    assert [o["Key"] for o in body["objects"]] == ["docs/consent-template.txt", "docs/protocol.pdf"]
    assert body["folders"] == [] and body["prefix"] == "docs/"


def test_a_folder_of_1200_files_comes_in_pages_that_reach_each_once(reader) -> None:
    http, h, _archive = reader
    pages = all_pages(http, h["demo"], "logs/events")
    assert [len(p["objects"]) for p in pages] == [1000, EVENT_LOGS - 1000]
    keys = [o["Key"] for p in pages for o in p["objects"]]
    expected = sorted(k for k in demo_files() if k.startswith("logs/events/"))
    assert keys == expected
    assert pages[0]["isTruncated"] and not pages[1]["isTruncated"]


def test_small_pages_mix_folders_and_files_in_name_order(reader) -> None:
    """Folders count as one entry each, whatever they hold, and a token after a folder skips
    all of it."""
    http, h, _archive = reader
    seen: list[str] = []
    token = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 1}
        if token:
            params["continuationToken"] = token
        body = listing(http, h["demo"], O3D_PROJECT, **params).json()
        seen += [f["Prefix"] for f in body["folders"]] + [o["Key"] for o in body["objects"]]
        if not body["isTruncated"]:
            break
        token = body["nextContinuationToken"]
    assert seen == ["README.txt", "docs/", "logs/", "qc/"]


def test_a_missing_folder_is_404_and_an_empty_root_is_an_empty_listing(reader) -> None:
    http, h, _archive = reader
    res = listing(http, h["demo"], O3D_PROJECT, "nope")
    assert res.status_code == 404 and "no folder" in res.json()["message"]
    res = listing(http, h["hayashis"], TP_PROJECT)
    assert res.status_code == 200 and res.json()["objects"] == res.json()["folders"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "\u00b2"},  # a digit to str.isdigit, not to int()
        {"limit": "9" * 5000},
        {"continuationToken": "!!!"},
        {"continuationToken": "ZG9jcy8"},  # "docs/": a token of another folder (the root's)
    ],
)
def test_bad_listing_parameters_are_400(reader, params: dict[str, str]) -> None:
    http, h, _archive = reader
    res = listing(http, h["demo"], O3D_PROJECT, "logs/events", **params)
    assert res.status_code == 400, res.text
    assert res.json()["message"]


@pytest.mark.parametrize("prefix", ["", "logs"])
def test_a_search_is_refused_not_ignored(reader, prefix: str) -> None:
    """brainlife's listing has no name filter: `?search=` answering the whole folder would
    look like every file matched."""
    http, h, _archive = reader
    res = listing(http, h["demo"], O3D_PROJECT, prefix, search="events")
    assert res.status_code == 400, res.text
    assert "search" in res.json()["message"]


def test_a_limit_over_1000_gives_1000(reader) -> None:
    http, h, _archive = reader
    body = listing(http, h["demo"], O3D_PROJECT, "logs/events", limit=5000).json()
    assert len(body["objects"]) == 1000 and body["isTruncated"]


# -- access matrix ---------------------------------------------------------------------------

READ_MATRIX = [
    # project, user, status
    (O3D_PROJECT, "demo", 200),  # public: any login
    (O3D_PROJECT, "anonymous", 401),
    (PRIVATE_PROJECT, "demo", 403),
    (PRIVATE_PROJECT, "avesani", 200),
    (GUEST_PROJECT, "demo", 200),  # a guest reads
    (MISSING_PROJECT, "hayashis", 404),
    ("not-an-id", "hayashis", 404),
]


@pytest.mark.parametrize(("project", "user", "status"), READ_MATRIX)
def test_who_may_list_and_download(http, h, archive, project, user, status) -> None:
    # a file in every project, put by an admin, so that 200 means the bytes
    owner = {PRIVATE_PROJECT: "avesani"}.get(project, "hayashis")
    if status != 404:
        assert put(http, h[owner], project, "notes/a.txt", b"abc").status_code == 200
    hdr = h[user]
    assert listing(http, hdr, project).status_code == status
    assert listing(http, hdr, project, "notes").status_code == status
    url = routes.PROJECT_FILE_DOWNLOAD.url(project_id=project, path="notes/a.txt")
    res = http.get(url, headers=hdr)
    assert res.status_code == status, res.text
    if status == 200:
        assert res.content == b"abc"
    url = routes.PROJECT_FILES_TAR.url(project_id=project)
    assert http.get(url, params={"paths[]": "notes"}, headers=hdr).status_code == status


WRITE_MATRIX = [
    (O3D_PROJECT, "hayashis", 200),  # admin
    (TP_PROJECT, "demo", 200),  # member
    (O3D_PROJECT, "demo", 403),  # a reader of a public project
    (GUEST_PROJECT, "demo", 403),  # a guest
    (PRIVATE_PROJECT, "demo", 403),
    (O3D_PROJECT, "anonymous", 401),
    (MISSING_PROJECT, "hayashis", 404),
]


@pytest.mark.parametrize(("project", "user", "status"), WRITE_MATRIX)
def test_who_may_put_and_remove(http, h, archive, project, user, status) -> None:
    res = put(http, h[user], project, "w/file.txt", b"written")
    assert res.status_code == status, res.text
    with archive.session() as s:
        rows = s.scalar(
            select(func.count()).select_from(ProjectFile).where(ProjectFile.path == "w/file.txt")
        )
    assert rows == (1 if status == 200 else 0)
    if status != 200:  # an existing file, that the same caller may or may not remove
        owner = "hayashis" if project != PRIVATE_PROJECT else "avesani"
        if status != 404:
            assert put(http, h[owner], project, "w/file.txt", b"x").status_code == 200
    url = routes.PROJECT_FILE.url(project_id=project, path="w/file.txt")
    res = http.delete(url, headers=h[user])
    assert res.status_code == (204 if status == 200 else status), res.text


def test_puts_at_once_of_one_path_or_a_file_and_its_folder(http, h, archive) -> None:
    """PUTs of one path at once: each succeeds, one row remains (on PostgreSQL the inserts
    clashed: 500). A file `x` and a file `x/y` at once: the checks made before the bodies
    arrive are made again under the lock of the project's files, so one of them is refused
    and the tree never holds `x` as both a file and a folder."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    user = h["hayashis"]  # an admin of O3D
    for n in range(3):
        paths = [f"same{n}.txt"] * 6 + [f"x{n}", f"x{n}/y"] * 3
        start = threading.Barrier(len(paths))

        def send(i: int, paths: list[str] = paths, start: threading.Barrier = start) -> Any:
            start.wait(timeout=30)
            return put(http, user, O3D_PROJECT, paths[i], f"body {i}".encode())

        with ThreadPoolExecutor(len(paths)) as pool:
            got = list(pool.map(send, range(len(paths))))
        assert all(r.status_code in (200, 400) for r in got), [r.text for r in got]
        assert all(r.status_code == 200 for r in got[:6]), [r.text for r in got[:6]]
        with archive.session() as s:
            stored = set(
                s.scalars(
                    select(ProjectFile.path).where(
                        ProjectFile.project_id == O3D_PROJECT,
                        ProjectFile.path.in_([f"same{n}.txt", f"x{n}", f"x{n}/y"]),
                    )
                )
            )
        assert f"same{n}.txt" in stored
        assert not {f"x{n}", f"x{n}/y"} <= stored, stored


# -- downloads --------------------------------------------------------------------------------


def test_a_file_downloads_with_etag_range_and_304(reader) -> None:
    http, h, _archive = reader
    data = O3D_FILES["docs/protocol.pdf"]
    url = routes.PROJECT_FILE_DOWNLOAD.url(project_id=O3D_PROJECT, path="docs/protocol.pdf")
    res = http.get(url, headers=h["demo"])
    assert res.status_code == 200 and res.content == data
    assert res.headers["etag"] == f'"{sha(data)}"'
    assert "protocol.pdf" in res.headers["content-disposition"]
    part = http.get(url, headers={**h["demo"], "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    again = http.get(url, headers={**h["demo"], "If-None-Match": res.headers["etag"]})
    assert again.status_code == 304
    assert http.head(url, headers=h["demo"]).headers["content-length"] == str(len(data))


def test_the_download_token_may_be_in_the_query_string(reader) -> None:
    http, _h, archive = reader
    url = routes.PROJECT_FILE_DOWNLOAD.url(project_id=O3D_PROJECT, path="README.txt")
    res = http.get(url, params={"at": make_token(archive, "demo")})
    assert res.status_code == 200 and res.content == O3D_FILES["README.txt"]


def untar(content: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_one_folder_tars_relative_to_it(reader) -> None:
    http, h, _archive = reader
    url = routes.PROJECT_FILES_TAR.url(project_id=O3D_PROJECT)
    res = http.get(url, params={"paths[]": "docs"}, headers=h["demo"])
    assert res.status_code == 200, res.text
    assert untar(res.content) == {
        "consent-template.txt": O3D_FILES["docs/consent-template.txt"],
        "protocol.pdf": O3D_FILES["docs/protocol.pdf"],
    }
    assert res.headers["etag"]
    part = http.get(url, params={"paths[]": "docs"}, headers={**h["demo"], "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == res.content[:100]


def test_the_whole_tree_and_several_folders_tar(reader) -> None:
    http, h, _archive = reader
    url = routes.PROJECT_FILES_TAR.url(project_id=O3D_PROJECT)
    whole = untar(http.get(url, params={"paths[]": ""}, headers=h["demo"]).content)
    assert whole == demo_files()
    both = untar(
        http.get(url, params=[("paths[]", "docs"), ("paths[]", "qc")], headers=h["demo"]).content
    )
    assert set(both) == {"docs/consent-template.txt", "docs/protocol.pdf", "qc/summary.tsv"}


@pytest.mark.parametrize("paths", [[], ["nope"], ["../docs"]])
def test_bad_tar_requests_are_clear(reader, paths: list[str]) -> None:
    http, h, _archive = reader
    url = routes.PROJECT_FILES_TAR.url(project_id=O3D_PROJECT)
    res = http.get(url, params=[("paths[]", p) for p in paths], headers=h["demo"])
    assert res.status_code in (400, 404) and res.json()["message"]


# -- put and remove -----------------------------------------------------------------------------


def test_a_put_file_lists_downloads_and_replaces(http, h, archive) -> None:
    res = put(http, h["hayashis"], O3D_PROJECT, "docs/new notes.txt", b"first")
    assert res.status_code == 200, res.text
    assert res.json()["Key"] == "docs/new notes.txt" and res.json()["Size"] == 5
    url = routes.PROJECT_FILE_DOWNLOAD.url(project_id=O3D_PROJECT, path="docs/new notes.txt")
    assert http.get(url, headers=h["demo"]).content == b"first"
    assert (
        put(http, h["hayashis"], O3D_PROJECT, "docs/new notes.txt", b"second!").status_code == 200
    )
    assert http.get(url, headers=h["demo"]).content == b"second!"
    names = [o["Name"] for o in listing(http, h["demo"], O3D_PROJECT, "docs").json()["objects"]]
    assert "new notes.txt" in names
    assert archive.store.has(sha(b"second!"))
    delete = routes.PROJECT_FILE.url(project_id=O3D_PROJECT, path="docs/new notes.txt")
    assert http.delete(delete, headers=h["hayashis"]).status_code == 204
    assert http.get(url, headers=h["demo"]).status_code == 404
    assert http.delete(delete, headers=h["hayashis"]).status_code == 404


def test_a_body_of_another_digest_stores_nothing(http, h, archive) -> None:
    res = put(http, h["hayashis"], O3D_PROJECT, "README.txt", b"tampered", digest=sha(b"other"))
    assert res.status_code == 400 and "not those declared" in res.json()["message"]
    url = routes.PROJECT_FILE_DOWNLOAD.url(project_id=O3D_PROJECT, path="README.txt")
    assert http.get(url, headers=h["demo"]).content == O3D_FILES["README.txt"]  # untouched
    assert not archive.store.has(sha(b"tampered"))
    assert list(Path(archive.store.tmp).iterdir()) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("digest", ["", "abc", "z" * 64])
def test_a_put_without_a_sha256_is_400(http, h, digest: str) -> None:
    res = put(http, h["hayashis"], O3D_PROJECT, "x.txt", b"x", digest=digest)
    assert res.status_code == 400 and "X-Content-SHA256" in res.json()["message"]


def test_a_file_over_the_bound_is_413_and_nothing_is_kept(http, h, archive) -> None:
    big = b"x" * (64 * 1024 + 1)
    res = put(http, h["hayashis"], O3D_PROJECT, "big.bin", big)
    assert res.status_code == 413, res.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield big[:40_000]
        yield big[40_000:]

    res = http.put(
        routes.PROJECT_FILE.url(project_id=O3D_PROJECT, path="big.bin"),
        content=chunks(),
        headers={**h["hayashis"], "X-Content-SHA256": sha(big)},
    )
    assert res.status_code == 413, res.text
    with archive.session() as s:
        assert s.get(ProjectFile, (O3D_PROJECT, "big.bin")) is None
    assert not archive.store.has(sha(big))
    assert list(Path(archive.store.tmp).iterdir()) == []  # type: ignore[attr-defined]


HOSTILE = [
    "../escape.txt",
    "docs/../../escape.txt",
    "docs/./x.txt",
    "a//b.txt",
    "back\\slash.txt",
    "nul\x00.txt",
    "ctl\x1b.txt",
    "x" * 256 + ".txt",
    "download/x.txt",  # the listing routes' own words
    "download-multiple",
    "README.txt/inner.txt",  # a file cannot hold a folder
    "docs",  # a folder cannot become a file
]


def _raw(path: str) -> str:
    """`path` quoted so that no client folds its `.` and `..` segments away."""
    parts = [quote(p, safe="").replace(".", "%2E") if p in (".", "..") else quote(p, safe="")
             for p in path.split("/")]  # fmt: skip
    return "/".join(parts)


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused_before_a_byte_is_kept(http, h, archive, path: str) -> None:
    res = http.put(
        routes.PROJECT_FILE.prefix_of(project_id=O3D_PROJECT) + _raw(path),
        content=b"payload",
        headers={**h["hayashis"], "X-Content-SHA256": sha(b"payload")},
    )
    assert res.status_code in (400, 404), res.text  # 404: the router saw no path at all
    assert res.json()["message"]
    with archive.session() as s:
        count = s.scalar(select(func.count()).select_from(ProjectFile))
    assert count == len(demo_files())
    assert not archive.store.has(sha(b"payload"))
    assert not (archive.settings.data_dir.parent / "escape.txt").exists()


@pytest.mark.parametrize("path", ["../README.txt", "docs/../README.txt", "nul\x00"])
def test_hostile_download_paths_are_refused(reader, path: str) -> None:
    http, h, _archive = reader
    url = routes.PROJECT_FILE_DOWNLOAD.prefix_of(project_id=O3D_PROJECT) + _raw(path)
    res = http.get(url, headers=h["demo"])
    assert res.status_code in (400, 404) and res.json()["message"]
