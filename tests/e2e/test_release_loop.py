"""Publishing end to end against a real `bl serve` over the demo world: `bl pub create`, `bl pub
release` of a filtered set, then the document's release loop (its "Download published
data-objects" block, with only the release id put in) and `bl pub download` on what was
released, every downloaded byte checked against the objects' sha256; and the read rule of a
private project's release for anonymous callers and users outside the project."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brainlife.server.demo.world import O3D_PROJECT, PRIVATE_PROJECT, RELEASE_1
from tests.conftest import LiveServer, start_server, stop_server
from tests.e2e.test_document import fenced_blocks

BIN = Path(sys.executable).parent
Shell = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """This module's own server: releases change the archive other tests read."""
    data_dir = tmp_path_factory.mktemp("releases") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


@pytest.fixture
def login(server: LiveServer, tmp_path: Path) -> Callable[[str], Shell]:
    """`login(user)`: a bash runner with the real `bl` logged in as `user` (own HOME)."""

    def make(user: str) -> Shell:
        home = tmp_path / f"home-{user}"
        work = tmp_path / f"work-{user}"
        home.mkdir()
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
        env.update(
            BLHOST=server.url,
            HOME=str(home),
            BL_USERNAME=user,
            BL_PASSWORD=user,
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        )

        def run(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if check:
                assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc

        run("bl login")
        run.work = work  # type: ignore[attr-defined]
        run.token = (home / ".config" / server.hostport / ".jwt").read_text().strip()  # type: ignore[attr-defined]
        return run

    return make


def get_json(server: LiveServer, path: str, token: str | None = None) -> Any:
    request = urllib.request.Request(server.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def status_of(server: LiveServer, path: str, token: str | None = None) -> int:
    try:
        get_json(server, path, token)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def assert_bytes_match(server: LiveServer, token: str, dsid: str, folder: Path) -> int:
    """Every file of the object in `folder`, byte for byte (sha256 of the server's manifest),
    and nothing else; returns the number of files."""
    manifest = get_json(server, f"/api/warehouse/dataset/manifest/{dsid}", token)
    want = {f["path"]: f["sha256"] for f in manifest["files"]}
    got = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert got == want, dsid
    return len(want)


def test_create_release_and_the_documents_loop(server: LiveServer, login) -> None:  # type: ignore[no-untyped-def]
    sh = login("hayashis")
    created = json.loads(
        sh(
            "bl pub create -p O3D -n 'O3D anatomy' --desc 'T1w and T2w' -a avesani "
            "-a hayashis --license ccby.40 --json"
        ).stdout
    )
    pub = created["_id"]
    assert created["project"] == O3D_PROJECT and created["license"] == "ccby.40"
    assert created["user_id"] == "1" and created["authors"] == ["2", "1"]
    filters = (
        "--datatype_tag acpc_aligned --subject 0001 --subject 0002 --subject 0003 "
        "--tag '!not-a-tag'"
    )
    dry = json.loads(sh(f"bl pub release {pub} --name 1 {filters} --dry-run --json").stdout)
    assert dry["dry_run"] is True and dry["count"] == 6 and dry["subjects"] == 3
    plain = sh(f"bl pub release {pub} --name 1 {filters}").stdout
    assert plain.startswith("Released 6 data objects (")
    assert "  neuro/anat/t1w: 3 data objects" in plain and "  neuro/anat/t2w: 3 data" in plain
    pubs = json.loads(sh(f"bl pub query -i {pub} --json").stdout)
    (release,) = pubs[0]["releases"]
    rid = release["_id"]
    assert (release["name"], release["count"]) == ("1", 6)
    assert f"({rid})" in plain

    # the document's loop, verbatim but for the release id
    block = fenced_blocks()[5][1]
    assert RELEASE_1 in block and "--subject 0001" in block
    listed = json.loads(sh(f"bl data query --limit 200 --pub {rid} --subject 0001 --json").stdout)
    assert sorted(d["datatype_tags"][0] for d in listed) == ["acpc_aligned"] * 2
    sh(block.replace(RELEASE_1, rid))
    token = sh.token  # type: ignore[attr-defined]
    for d in listed:
        assert assert_bytes_match(server, token, d["_id"], sh.work / d["_id"]) >= 1  # type: ignore[attr-defined]
    all_ids = {d["_id"] for d in json.loads(sh(f"bl data query --pub {rid} --json").stdout)}
    assert len(all_ids) == 6

    # a release never changes: the name again is exit 9, nothing matching is exit 3
    again = sh(f"bl pub release {pub} --name 1 --subject 0004", check=False)
    assert again.returncode == 9
    assert "already has a release named '1'" in again.stderr
    none = sh(f"bl pub release {pub} --name 2 --subject nobody", check=False)
    assert none.returncode == 3 and "Nothing to release" in none.stderr
    assert {d["_id"] for d in json.loads(sh(f"bl data query --pub {rid} --json").stdout)} == all_ids


def test_whole_release_download_bytes(server: LiveServer, login) -> None:  # type: ignore[no-untyped-def]
    sh = login("hayashis")
    pub = json.loads(sh("bl pub create -p O3D -n 'T2w only' --json").stdout)["_id"]
    rid = json.loads(
        sh(f"bl pub release {pub} --name 1 -d neuro/anat/t2w -b 0004 -b 0005 --json").stdout
    )["release"]["_id"]
    sh(f"bl pub download {rid} -d out --layout id")
    ids = [d["_id"] for d in json.loads(sh(f"bl data query --pub {rid} --json").stdout)]
    assert len(ids) == 2
    for dsid in ids:
        assert_bytes_match(server, sh.token, dsid, sh.work / "out" / dsid)  # type: ignore[attr-defined]


def test_a_private_projects_release_is_readable_only_for_what_it_holds(
    server: LiveServer, login
) -> None:  # type: ignore[no-untyped-def]
    admin = login("avesani")
    outsider = login("demo")  # no role in "Private demo"
    every = json.loads(admin(f"bl data query -p {PRIVATE_PROJECT} --json").stdout)
    by_subject = {d["meta"]["subject"]: d["_id"] for d in every}
    assert sorted(by_subject) == ["s01", "s02", "s03"]
    # the outsider cannot publish it
    refused = outsider(f"bl pub create -p {PRIVATE_PROJECT} -n mine", check=False)
    assert refused.returncode == 3  # cannot even see the project
    pub = json.loads(admin(f"bl pub create -p {PRIVATE_PROJECT} -n Private --json").stdout)["_id"]
    rid = json.loads(admin(f"bl pub release {pub} --name 1 -b s01 -b s02 --json").stdout)[
        "release"
    ]["_id"]
    # anonymous: the release's listing holds exactly the released objects; no download
    listing = get_json(server, f"/api/warehouse/pub/datasets/{rid}")
    assert {d["_id"] for d in listing["datasets"]} == {by_subject["s01"], by_subject["s02"]}
    assert status_of(server, f"/api/warehouse/dataset/manifest/{by_subject['s01']}") == 401
    # a user outside the project: the document's loop works on the release ...
    block = fenced_blocks()[5][1].replace(RELEASE_1, rid).replace("--subject 0001", "--subject s01")
    outsider(block)
    token = outsider.token  # type: ignore[attr-defined]
    assert assert_bytes_match(server, token, by_subject["s01"], outsider.work / by_subject["s01"])  # type: ignore[attr-defined]
    # ... and nothing else of the project is readable
    denied = outsider(f"bl data download {by_subject['s03']}", check=False)
    assert denied.returncode in (3, 4), denied.stderr
    assert status_of(server, f"/api/warehouse/dataset/manifest/{by_subject['s03']}", token) == 403
    seen = json.loads(
        outsider(f"bl data query -p {PRIVATE_PROJECT} --json", check=False).stdout or "[]"
    )
    assert {d["_id"] for d in seen} <= {by_subject["s01"], by_subject["s02"]}


def test_concurrent_releases_of_one_name_make_one_release(server: LiveServer, login) -> None:  # type: ignore[no-untyped-def]
    """16 requests at once for 4 names: exactly one release per name, the others 409, no 500;
    each release holds exactly its subject's objects."""
    import threading

    sh = login("hayashis")
    token = sh.token  # type: ignore[attr-defined]
    pub = json.loads(sh("bl pub create -p O3D -n concurrent --json").stdout)["_id"]
    answers: list[tuple[int, Any]] = []

    def post(i: int) -> None:
        body = {"name": f"r{i % 4}", "sets": [{"subjects": [f"{i % 4 + 10:04d}"]}]}
        request = urllib.request.Request(
            f"{server.url}/api/warehouse/pub/release/{pub}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answers.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, json.loads(exc.read())))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [200] * 4 + [409] * 12
    made = [doc for status, doc in answers if status == 200]
    assert sorted(d["release"]["name"] for d in made) == ["r0", "r1", "r2", "r3"]
    for d in made:
        rid = d["release"]["_id"]
        listed = get_json(server, f"/api/warehouse/pub/datasets/{rid}?limit=0")
        assert listed["count"] == d["count"] > 0
        assert {x["meta"]["subject"] for x in listed["datasets"]} == {
            d["release"]["sets"][0]["subjects"][0]
        }
