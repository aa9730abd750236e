"""The official `bl bids download`, unmodified, end to end against `bl serve --tls`: it posts
its find to `/dataset/downscript` and runs the script it gets (curl + tar per object) in
`--output`, which ends up holding brainlife's layout with the objects' bytes."""

# The official CLI's fixtures are imported from test_official_cli (see test_official_apps).
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.request

import pytest

from tests.compat.test_official_cli import official_bl, run, tls_server  # noqa: F401
from tests.conftest import LiveServer

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"
T1 = "5a050ad5d76a2a002737e572"
T1_FOLDER = f"proj-{O3D}/sub-0001/dt-neuro-anat-t1w.tag-acpc_aligned.id-{T1}"


def _manifest(tls_server: LiveServer, token: str, dataset_id: str) -> dict:
    ctx = ssl.create_default_context(cafile=str(tls_server.cert))
    req = urllib.request.Request(
        f"{tls_server.url}/api/warehouse/dataset/manifest/{dataset_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, context=ctx) as resp:
        return dict(json.load(resp))


def test_bids_download_of_a_project_subject_and_datatypes(run, tls_server):
    out = run.work / "bids-project"
    out.mkdir()
    res = run(
        "bids", "download", "--project", O3D, "--subject", "0001",
        "--datatype", "neuro/anat/t1w", "--datatype", "neuro/dwi", "--output", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"(1/2) {T1_FOLDER}" in res.stdout
    description = json.loads((out / f"proj-{O3D}/bids/dataset_description.json").read_text())
    assert description["Name"] == "O3D" and description["BIDSVersion"]
    assert "O3D (Open Diffusion Data" in (out / f"proj-{O3D}/README").read_text()
    folders = sorted(p.name for p in (out / f"proj-{O3D}/sub-0001").iterdir())
    assert folders == [
        f"dt-neuro-anat-t1w.tag-acpc_aligned.id-{T1}",
        "dt-neuro-dwi.tag-single_shell.tag-normalized.id-5a050b11d76a2a002737e57b",
    ]
    info = json.loads((out / T1_FOLDER / "_info.json").read_text())
    assert info["_id"] == T1 and info["meta"]["subject"] == "0001"
    token = (run.home / ".config" / tls_server.hostport / ".jwt").read_text()
    for entry in _manifest(tls_server, token, T1)["files"]:
        data = (out / T1_FOLDER / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    dwi = out / f"proj-{O3D}/sub-0001" / folders[1]
    assert sorted(p.name for p in dwi.iterdir()) == [
        "_info.json", "dwi.bvals", "dwi.bvecs", "dwi.nii.gz",
    ]  # fmt: skip


def test_bids_download_by_id(run):
    out = run.work / "bids-id"
    out.mkdir()
    res = run("bids", "download", "--id", T1, "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in (out / T1_FOLDER).iterdir()) == ["_info.json", "t1.nii.gz"]


def test_bids_download_without_a_selection_is_refused_by_the_cli(run):
    res = run("bids", "download")
    assert res.returncode == 1
    assert "please specify either project or pub id, or data object id" in res.stderr
