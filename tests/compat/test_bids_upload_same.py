"""The official `bl bids upload` (npm brainlife@1.8.2) and ours land the same objects (issue #10):
one small BIDS tree (anat with sessions and runs, dwi, func bold, a sidecar) uploaded by each CLI
into its own project of one `bl serve --tls`, then the two projects' objects compared field by
field: datatype, subject/session/run, tags, datatype tags, meta from the sidecar, and every
file's name and sha256 (from the archive's manifest)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.official import install_official_cli
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"  # hayashis administers both
TP = "5b0dad8041711001e958b519"


@pytest.fixture(scope="module")
def tls_server(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("same") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    server = start_server(data_dir, tls=True)
    yield server
    stop_server(server)


def _tree(root: Path) -> None:
    def w(rel: str, data: bytes) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    w("dataset_description.json", b'{"Name": "same", "BIDSVersion": "1.6.0"}')
    w("participants.tsv", b"participant_id\tage\nsub-01\t30\nsub-02\t41\n")
    a = "sub-01/ses-1/anat/sub-01_ses-1_run-2_T1w"
    w(f"{a}.nii.gz", b"t1" * 700)
    w(f"{a}.json", b'{"EchoTime": 0.003, "Manufacturer": "X"}')
    d = "sub-01/ses-1/dwi/sub-01_ses-1_dwi"
    w(f"{d}.nii.gz", b"dwi" * 500)
    w(f"{d}.bvec", b"0 1\n0 0\n1 0\n")
    w(f"{d}.bval", b"0 1000\n")
    w(f"{d}.json", b'{"PhaseEncodingDirection": "j-"}')
    w("sub-02/anat/sub-02_T2w.nii.gz", b"t2" * 600)
    w("sub-02/func/sub-02_task-rest_bold.nii.gz", b"bold" * 400)
    w("sub-02/func/sub-02_task-rest_bold.json", b'{"RepetitionTime": 2.0}')


def _env(server: LiveServer, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BLHOST": server.hostport,
        "NODE_EXTRA_CA_CERTS": str(server.cert),
    }


def _run(cmd: list[str], env: dict[str, str]) -> str:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _objects(server: LiveServer, token: str, project: str) -> dict[tuple, dict[str, Any]]:
    res = requests.get(
        f"{server.url}/api/warehouse/dataset",
        params={
            "find": json.dumps({"project": project, "tags": "same", "removed": False}),
            "populate": "datatype",
            "limit": 100,
        },
        headers={"Authorization": f"Bearer {token}"},
        verify=str(server.cert),
        timeout=30,
    )
    assert res.status_code == 200, res.text
    db = sqlite3.connect(f"file:{server.data_dir / 'archive.sqlite3'}?mode=ro", uri=True)
    out: dict[tuple, dict[str, Any]] = {}
    try:
        for d in res.json()["datasets"]:
            assert d["status"] == "stored", d
            dt = d["datatype"]["name"] if isinstance(d["datatype"], dict) else d["datatype"]
            meta = d["meta"]
            key = (dt, meta.get("subject"), meta.get("session"), meta.get("run"))
            files = dict(
                db.execute(
                    "select path, sha256 from dataset_files where dataset_id = ?", (d["_id"],)
                ).fetchall()
            )
            assert key not in out, f"two objects for {key}"
            out[key] = {
                "tags": sorted(d["tags"]),
                "datatype_tags": sorted(d["datatype_tags"]),
                "meta": {k: v for k, v in meta.items()},
                "files": files,
            }
    finally:
        db.close()
    return out


def test_the_official_bids_upload_and_ours_land_the_same_objects(
    tls_server: LiveServer, tmp_path: Path
) -> None:
    bids = tmp_path / "bids"
    _tree(bids)
    official = install_official_cli()
    theirs, ours = _env(tls_server, tmp_path / "h1"), _env(tls_server, tmp_path / "h2")
    login = ["login", "--username", "hayashis", "--password", "hayashis"]
    _run([str(official), *login], theirs)
    _run([sys.executable, "-m", "brainlife", *login], ours)
    _run([str(official), "bids", "upload", "-p", O3D, "-t", "same", str(bids)], theirs)
    _run(
        [sys.executable, "-m", "brainlife", "bids", "upload", "-p", TP, "-t", "same", str(bids)],
        ours,
    )

    token = (tmp_path / "h2" / ".config" / tls_server.hostport / ".jwt").read_text().strip()
    got_theirs = _objects(tls_server, token, O3D)
    got_ours = _objects(tls_server, token, TP)
    assert len(got_theirs) == 4, sorted(got_theirs)
    assert sorted(got_ours) == sorted(got_theirs)
    for key, want in got_theirs.items():
        assert got_ours[key] == want, key
