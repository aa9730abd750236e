"""The official CLI's uploads (npm brainlife@1.8.2, unmodified) against `bl serve --tls` over a
copy of the demo world: `bl data upload` (plain and `-j`), `bl bids upload` (and its rerun), the
refusals a user sees (a project they may not write, an unknown datatype), and a server killed
while it finalizes an upload (the restarted server finishes the job)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.official import install_official_cli
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"
GUEST = "5c3f8b9a7d4b2c0031a6e219"


@pytest.fixture(scope="module")
def official_bl() -> Path:
    return install_official_cli()


@pytest.fixture(scope="module")
def tls_server(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("upload") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    server = start_server(data_dir, tls=True)
    yield server
    stop_server(server)


def _env(server: LiveServer, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BLHOST": server.hostport,
        "NODE_EXTRA_CA_CERTS": str(server.cert),
    }


def _runner(official_bl: Path, server: LiveServer, home: Path, work: Path, user: str) -> Any:
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(official_bl), *args],
            env=_env(server, home),
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    res = run("login", "--username", user, "--password", user)
    assert "Successfully logged in" in res.stdout, res.stdout + res.stderr
    run.home = home  # type: ignore[attr-defined]
    run.work = work  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def run(official_bl: Path, tls_server: LiveServer, tmp_path_factory: pytest.TempPathFactory):
    home, work = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("work")
    return _runner(official_bl, tls_server, home, work, "hayashis")


def _datasets(server: LiveServer, home: Path, find: dict[str, Any]) -> list[dict[str, Any]]:
    token = (home / ".config" / server.hostport / ".jwt").read_text()
    res = requests.get(
        f"{server.url}/api/warehouse/dataset",
        params={"find": json.dumps(find)},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(server.cert),
        timeout=30,
    )
    assert res.status_code == 200, res.text
    return list(res.json()["datasets"])


def test_data_upload_stores_the_object_and_it_downloads_the_same(run) -> None:
    t1 = run.work / "t1.nii.gz"
    t1.write_bytes(os.urandom(300_000))
    res = run("data", "upload", "-p", O3D, "-d", "neuro/anat/t1w", "-s", "0001", "--t1", str(t1))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert (
        "uploading data.." in lines and "data successfully uploaded. finalizing upload.." in lines
    )
    last = lines[-1]
    assert last.startswith("successfully uploaded. data object id: "), res.stdout
    dataset_id = last.rsplit(" ", 1)[1]
    res = run("data", "download", dataset_id)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (run.work / dataset_id / "t1.nii.gz").read_bytes() == t1.read_bytes()


def test_data_upload_json_prints_the_stored_object(run, tls_server: LiveServer) -> None:
    t1 = run.work / "t1j.nii.gz"
    t1.write_bytes(b"J" * 5000)
    sidecar = run.work / "sidecar.json"
    sidecar.write_text(json.dumps({"EchoTime": 0.0031, "subject": "ignored"}))
    res = run(
        "data",
        "upload",
        "-p",
        O3D,
        "-d",
        "neuro/anat/t1w",
        "-s",
        "0042",
        "-e",
        "2",
        "-r",
        "1",
        "-t",
        "mine",
        "--datatype_tag",
        "defaced",
        "-n",
        "from the CLI",
        "-m",
        str(sidecar),
        "-j",
        "--t1",
        str(t1),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "stored" and doc["project"] == O3D
    assert doc["meta"] == {"EchoTime": 0.0031, "subject": "0042", "session": "2", "run": "1"}
    assert doc["tags"] == ["mine", "run-1"] and doc["datatype_tags"] == ["defaced"]
    assert doc["desc"] == "from the CLI" and doc["user_id"] == "1"
    [listed] = _datasets(tls_server, run.home, {"prov.task_id": doc["prov"]["task_id"]})
    assert listed["_id"] == doc["_id"] and listed["size"] == doc["size"]


def test_bids_upload_registers_each_object_once(run, tls_server: LiveServer) -> None:
    bids = run.work / "bids"
    (bids / "sub-01" / "anat").mkdir(parents=True)
    (bids / "sub-02" / "anat").mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.6.0"}')
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-02\t41\n")
    (bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz").write_bytes(b"one" * 1000)
    (bids / "sub-01" / "anat" / "sub-01_T1w.json").write_text('{"EchoTime": 0.003}')
    (bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz").write_bytes(b"two" * 1000)
    res = run("bids", "upload", "-p", O3D, "-t", "bidsrun", str(bids))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("Registered data object:") == 2, res.stdout
    again = run("bids", "upload", "-p", O3D, str(bids))
    assert again.stdout.count("already uploaded.. skipping") == 2, again.stdout + again.stderr
    rows = _datasets(tls_server, run.home, {"project": O3D, "tags": "bidsrun"})
    by_subject = {r["meta"]["subject"]: r for r in rows}
    assert sorted(by_subject) == ["01", "02"]
    assert all(r["status"] == "stored" for r in rows)
    assert by_subject["01"]["meta"]["EchoTime"] == 0.003
    assert by_subject["01"]["desc"] == "sub-01_T1w.nii.gz"
    res = run("data", "download", by_subject["02"]["_id"])
    assert (run.work / by_subject["02"]["_id"] / "t1.nii.gz").read_bytes() == b"two" * 1000


def test_a_project_the_user_may_not_write_is_refused(official_bl, tls_server, tmp_path) -> None:
    home, work = tmp_path / "bl-home", tmp_path / "bl-work"
    home.mkdir(), work.mkdir()
    demo = _runner(official_bl, tls_server, home, work, "demo")  # a guest of GUEST
    (work / "t1.nii.gz").write_bytes(b"x" * 100)
    for project in (O3D, GUEST):
        res = demo(
            "data", "upload", "-p", project, "-d", "neuro/anat/t1w", "-s", "9", "--t1", "t1.nii.gz"
        )
        assert res.returncode != 0
        assert "not member of the group you have specified" in res.stderr, res.stderr
        assert _datasets(tls_server, home, {"project": project, "meta.subject": "9"}) == []


def test_an_unknown_datatype_is_named(run) -> None:
    (run.work / "t1.nii.gz").write_bytes(b"x")
    res = run("data", "upload", "-p", O3D, "-d", "neuro/nope", "-s", "1", "--t1", "t1.nii.gz")
    assert res.returncode != 0
    assert "no matching datatype:neuro/nope" in res.stderr


def test_a_missing_required_file_is_the_clis_message(run, tls_server: LiveServer) -> None:
    """The official CLI checks required files itself; the server refuses a finalize lacking
    them too (tested in-process); here: an unknown file id is the CLI's own message."""
    res = run("data", "upload", "-p", O3D, "-d", "neuro/anat/t1w", "-s", "1", "--t2", "x")
    assert res.returncode == 1 and "Unknown parameter --t2" in res.stderr


def test_a_server_killed_mid_finalize_finishes_the_job_on_restart(
    official_bl: Path, demo_archive_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    server = start_server(data_dir, tls=True, env={"BL_TEST_FINALIZE_PAUSE": "120"})
    home, work = tmp_path / "bl-home", tmp_path / "bl-work"
    home.mkdir(), work.mkdir()
    try:
        run = _runner(official_bl, server, home, work, "hayashis")
        (work / "t1.nii.gz").write_bytes(b"K" * 200_000)
        cli = subprocess.Popen(
            [
                str(official_bl),
                "data",
                "upload",
                "-p",
                O3D,
                "-d",
                "neuro/anat/t1w",
                "-s",
                "77",
                "--t1",
                "t1.nii.gz",
            ],
            env=_env(server, home),
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        db = sqlite3.connect(f"file:{data_dir / 'archive.sqlite3'}?mode=ro", uri=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = db.execute("select state, dataset_id from finalize_jobs").fetchone()
            if row and row[0] == "running":
                break
            time.sleep(0.2)
        assert row and row[0] == "running", row
        dataset_id = row[1]
        server.process.kill()  # kill -9 while the job runs
        server.process.wait()
        cli.kill()
        cli.wait()
        status = db.execute("select status from datasets where id = ?", (dataset_id,)).fetchone()
        assert status == ("storing",)  # never half-registered as stored
        db.close()
        server = start_server(data_dir, tls=True, port=server.port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [doc] = _datasets(server, home, {"_id": dataset_id})
            if doc["status"] != "storing":
                break
            time.sleep(0.3)
        assert doc["status"] == "stored", doc
        res = run("data", "download", dataset_id)
        assert res.returncode == 0, res.stdout + res.stderr
        assert (work / dataset_id / "t1.nii.gz").read_bytes() == b"K" * 200_000
    finally:
        stop_server(server)


def test_data_update_and_delete_of_the_official_cli(run, tls_server: LiveServer) -> None:
    t1 = run.work / "t1u.nii.gz"
    t1.write_bytes(b"U" * 1000)
    res = run(
        "data",
        "upload",
        "-p",
        O3D,
        "-d",
        "neuro/anat/t1w",
        "-s",
        "0100",
        "-r",
        "1",
        "-j",
        "--t1",
        str(t1),
    )
    dataset_id = json.loads(res.stdout)["_id"]
    sidecar = run.work / "more.json"
    sidecar.write_text('{"Quality": "good"}')
    res = run(
        "data",
        "update",
        "--id",
        dataset_id,
        "--desc",
        "curated",
        "--add_tag",
        "qc",
        "--remove_tag",
        "run-1",
        "--session",
        "3",
        "--run",
        "",
        "-m",
        str(sidecar),
    )
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
    # it prints nothing, but its process ends only once the PUT has been answered
    [doc] = _datasets(tls_server, run.home, {"_id": dataset_id})
    assert doc["desc"] == "curated" and doc["tags"] == ["qc"]
    assert doc["meta"] == {"subject": "0100", "session": "3", "Quality": "good"}
    res = run("data", "delete", dataset_id)
    assert res.returncode == 0 and "successfully removed dataset" in res.stdout
    res = run("data", "delete", dataset_id, "-j")
    assert "removed: 0" in res.stdout and "status: 'ok'" in res.stdout
    assert _datasets(tls_server, run.home, {"_id": dataset_id, "removed": False}) == []
    res = run("data", "download", dataset_id)
    assert res.returncode == 1 and "failed to download" in res.stdout + res.stderr
