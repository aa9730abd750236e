"""The official CLI (npm brainlife@1.8.2), unmodified, against `bl serve --tls` over the demo world.

Only BLHOST and NODE_EXTRA_CA_CERTS are set, as a researcher would. The npm package is installed
once into a cache folder (BL_TEST_CACHE, default ~/.cache/bl-test) by the fixture below.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.compat.official import install_official_cli
from tests.conftest import LiveServer

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"


@pytest.fixture(scope="module")
def official_bl() -> Path:
    return install_official_cli()


@pytest.fixture(scope="module")
def tls_server(tls_live_server: LiveServer) -> LiveServer:
    """The session's read-only TLS server: this module and the ones importing its fixtures
    (bids, apps) only read the demo world (an app run is refused, one wrong password is far from
    a lockout and the next login clears it). test_every_command writes and starts its own."""
    return tls_live_server


@pytest.fixture(scope="module")
def run(official_bl: Path, tls_server: LiveServer, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BLHOST": tls_server.hostport,
        "NODE_EXTRA_CA_CERTS": str(tls_server.cert),
    }

    def _run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(official_bl), *args],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    _run.home = home  # type: ignore[attr-defined]
    _run.work = work  # type: ignore[attr-defined]
    res = _run("login", "--username", "hayashis", "--password", "hayashis")
    assert "Successfully logged in for 6 days" in res.stdout, res.stdout + res.stderr
    return _run


def test_login_writes_the_shared_token_file(run, tls_server: LiveServer):
    jwt_file = run.home / ".config" / tls_server.hostport / ".jwt"
    assert jwt_file.exists()
    assert oct(jwt_file.stat().st_mode & 0o777) == "0o600"
    assert jwt_file.read_text().count(".") == 2


def test_wrong_password_shows_the_server_message(official_bl, tls_server, tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "BLHOST": tls_server.hostport,
        "NODE_EXTRA_CA_CERTS": str(tls_server.cert),
    }
    res = subprocess.run(
        [str(official_bl), "login", "--username", "demo", "--password", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Incorrect user/password" in res.stdout + res.stderr


def test_project_query_prints_the_documents_block(run):
    res = run("project", "query", "-q", "o3d")
    assert res.returncode == 0, res.stderr
    expected = (
        "Id: 5a022fc99c0d250055709e9c\n"
        "Name: O3D\n"
        "Admins: hayashis, avesani, frakkopesto\n"
        "Members: hayashis, avesani, frakkopesto\n"
        "Guests: \n"
        "Access: Access: public\n"
        "Description: O3D (Open Diffusion Data and Derivative) is a reference repository for "
        "precision connectome mapping, white matter tracts analysis and algorithmic development."
        "\n\n(Returned 1 result)"
    )
    assert expected in res.stdout


def test_data_query_plain(run):
    res = run("data", "query", "-p", O3D)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    block = out[out.index("Id: 5bb5713a12512a003f32e9b6") :]
    for line in [
        "Project: O3D",
        "Admins: hayashis, avesani, frakkopesto",
        "Subject: 0008",
        "Datatype: neuro/wmc<dt_stream, afq>",
        "Description: AFQ with no Life (dt_stream) run1",
        "Storage: wrangler",
        "Status: stored",
        "Tags: dt_stream, pre_life, run1",
    ]:
        assert line in block.split("\n\n")[0], line
    assert "2708 total datasets, showing first 100." in out


def test_data_query_json_is_the_server_array(run):
    res = run("data", "query", "-p", O3D, "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 100
    assert all(r["project"] == O3D for r in rows)
    assert "5bb5713a12512a003f32e9b6" in {r["_id"] for r in rows}


def test_data_download_extracts_the_object(run, tls_server):
    res = run("data", "download", "5a050ad5d76a2a002737e572")
    assert res.returncode == 0, res.stdout + res.stderr
    target = run.work / "5a050ad5d76a2a002737e572"
    assert sorted(p.name for p in target.iterdir()) == ["t1.nii.gz"]
    import ssl
    import urllib.request

    token = (run.home / ".config" / tls_server.hostport / ".jwt").read_text()
    ctx = ssl.create_default_context(cafile=str(tls_server.cert))
    req = urllib.request.Request(
        f"{tls_server.url}/api/warehouse/dataset/manifest/5a050ad5d76a2a002737e572",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, context=ctx) as resp:
        manifest = json.load(resp)
    (entry,) = manifest["files"]
    data = (target / "t1.nii.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_pub_query(run):
    res = run("pub", "query", "-q", "o3d")
    assert res.returncode == 0, res.stderr
    assert "Release IDs: 1 (5bab993aa918ae0027024192), 2 (5c0ff604391ed50032b634d1)" in res.stdout
    res = run("pub", "query", "-q", "o3d", "--json")
    releases = json.loads(res.stdout)[0]["releases"]
    assert [(r["_id"], r["name"], r["removed"]) for r in releases] == [
        ("5bab993aa918ae0027024192", "1", False),
        ("5bb2437c19fdb40027307f7b", "", True),
        ("5c0ff604391ed50032b634d1", "2", False),
    ]


def test_data_query_by_release_and_subject(run):
    res = run(
        "data",
        "query",
        "--limit",
        "200",
        "--pub",
        "5bab993aa918ae0027024192",
        "--subject",
        "0001",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows and all(r["meta"]["subject"] == "0001" for r in rows)
    assert all("5bab993aa918ae0027024192" in r["publications"] for r in rows)


def test_datatype_query(run):
    res = run("datatype", "query", "-q", "t1w")
    assert res.returncode == 0, res.stderr
    assert "Name: neuro/anat/t1w" in res.stdout
