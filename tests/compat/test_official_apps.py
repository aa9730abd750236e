"""The official CLI's `bl app query/run/wait` and `bl resource query`, unmodified, against
`bl serve --tls` over the demo world; our `bl` prints the same for the same flags.

`bl app run` cannot succeed on an archive that runs no apps: the server refuses its first write
(`POST /amaretti/instance`) with a 403 whose message the official CLI prints (inside its
`StatusCodeError: 403 - {"message": …}` line) before it exits 1, at once. Nothing is created.
"""

# The official CLI's fixtures (installed CLI, TLS server, logged-in runner) are imported from
# test_official_cli, so pytest sees them here; the test arguments then shadow the names.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brainlife.server.demo.apps import (
    APP_AFQ,
    APP_FREESURFER,
    APP_STAGE,
    APP_TRACKING,
    RESOURCE_PUBLIC,
    RESOURCE_TASKS,
)
from brainlife.server.services.apps import RUN_REFUSED
from tests.compat.test_official_cli import official_bl, run, tls_server  # noqa: F401
from tests.conftest import LiveServer

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"
T1_EXAMPLE = "5a050ad5d76a2a002737e572"
FINISHED_FS_TASK = "5c49e4537c0d8a003351f00f"  # FreeSurfer, finished, nothing to archive
FINISHED_PROFILES_TASK = "5c49ec4b7c0d8a003351f043"  # archived one tract-profile object
FAILED_TASK = "5c49eae37c0d8a003351f033"


@pytest.fixture(scope="module")
def ours(run, tls_server: LiveServer):
    """Our `bl`, with the same home (so the same token file) as the official one."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(run.home),
        "BLHOST": tls_server.url,
        "BL_CA_BUNDLE": str(tls_server.cert),
    }

    def _ours(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "brainlife", *args],
            env=env,
            cwd=run.work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return _ours


def _ids(stdout: str) -> list[str]:
    return [line[4:] for line in stdout.splitlines() if line.startswith("Id: ")]


def test_app_query_plain_prints_each_app(run):
    res = run("app", "query")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    block = res.stdout[res.stdout.index(f"Id: {APP_FREESURFER}") :].split("\n\n")[0]
    assert block == (
        f"Id: {APP_FREESURFER}\n"
        "DOI: 10.25663/bl.app.0\n"
        "Name: FreeSurfer\n"
        "Service: brainlife/app-freesurfer\n"
        "Type: (t1: neuro/anat/t1w<acpc_aligned>) -> (output: neuro/freesurfer)\n"
        "Description: Runs FreeSurfer recon-all on a T1 weighted image: cortical "
        "reconstruction, volumetric segmentation and surface parcellation.\n"
        "Config:\n"
        "    hippocampal: (type: boolean)\n"
        "    debug: (type: boolean)\n"
        "    notalairach: (type: boolean)\n"
        "    hipposubfields: (type: boolean)\n"
        "    version: (type: string) (default: 6.0.0)"
    )
    assert res.stdout.rstrip().endswith("(Returned 5 results)")  # removed and private left out


def test_app_query_by_input_and_output_datatype(run):
    res = run("app", "query", "--input-datatype", "neuro/dwi", "-j")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [a["name"] for a in rows] == [
        "Ensemble Tracking", "Tract Analysis Profiles", "White Matter Segmentation (AFQ)",
    ]  # fmt: skip
    res = run("app", "query", "--input-datatype", "neuro/dwi", "--output-datatype", "neuro/wmc")
    assert _ids(res.stdout) == [APP_AFQ]
    assert "Type: (track: neuro/track/tck, dwi: neuro/dwi) -> (output: neuro/wmc<afq>)" in (
        res.stdout
    )
    assert "(Returned 1 result)" in res.stdout


def test_app_query_text_and_doi(run):
    assert _ids(run("app", "query", "-q", "tracking").stdout) == [APP_TRACKING]
    assert _ids(run("app", "query", "-d", "10.25663/bl.app.0").stdout) == [APP_FREESURFER]


def test_official_negation_of_a_datatype_finds_nothing_and_ours_works(run, ours):
    official = run("app", "query", "--input-datatype", "!neuro/dwi")
    assert "no matching datatype:!neuro/dwi" in official.stdout + official.stderr
    assert "Id: " not in official.stdout
    res = ours("app", "query", "--input-datatype", "!neuro/dwi")
    assert res.returncode == 0, res.stderr
    assert _ids(res.stdout) == [APP_FREESURFER, APP_STAGE]


@pytest.mark.parametrize(
    "args",
    [
        ("app", "query"),
        ("app", "query", "-j"),
        ("app", "query", "--input-datatype", "neuro/anat/t1w"),
        ("app", "query", "--output-datatype", "neuro/track/tck", "-j"),
        ("app", "query", "-q", "profiles", "-l", "1"),
        ("resource", "query"),
        ("resource", "query", "-j"),
        ("resource", "query", "-v", "brainlife/app-freesurfer"),
        ("resource", "query", "-q", "carbonate", "-j"),
    ],
)
def test_ours_prints_what_the_official_prints(run, ours, args):
    official = run(*args)
    mine = ours(*args)
    assert official.returncode == 0 and mine.returncode == 0, official.stderr + mine.stderr
    assert official.stdout.strip(), official.stderr
    assert mine.stdout == official.stdout


def test_resource_query(run):
    res = run("resource", "query")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        f"Id: {RESOURCE_PUBLIC}\nName: Carbonate (shared)\nType: ssh\n"
        "ssh: brlife@carbonate.example.invalid\n\n"
        f"Id: {RESOURCE_TASKS}\nName: Jetstream2 (shared)\nType: ssh\n"
        "ssh: brainlife@js2-brainlife.example.invalid\n\n"
    )
    rows = json.loads(run("resource", "query", "-v", "brainlife/app-stage", "-j").stdout)
    assert [r["_id"] for r in rows] == [RESOURCE_TASKS]


def _instances(tls_server: LiveServer, home: Path) -> list[dict]:
    import ssl
    import urllib.request

    token = (home / ".config" / tls_server.hostport / ".jwt").read_text()
    ctx = ssl.create_default_context(cafile=str(tls_server.cert))
    req = urllib.request.Request(
        f"{tls_server.url}/api/amaretti/instance?limit=0",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, context=ctx) as resp:
        return list(json.load(resp)["instances"])


def test_official_app_run_is_refused_with_the_servers_message(run, tls_server):
    before = _instances(tls_server, run.home)
    res = run("app", "run", "--id", APP_FREESURFER, "--project", O3D, "--input", f"t1:{T1_EXAMPLE}")
    assert res.returncode == 1
    assert "StatusCodeError: 403" in res.stderr
    assert RUN_REFUSED in res.stderr
    assert _instances(tls_server, run.home) == before


def test_our_app_run_is_refused_with_the_servers_message(ours, run, tls_server):
    before = _instances(tls_server, run.home)
    res = ours(
        "app", "run", "--id", "FreeSurfer", "--project", "O3D", "--input", f"t1:{T1_EXAMPLE}"
    )
    assert res.returncode == 4  # permission
    assert res.stderr.strip() == f"Error: Access denied: {RUN_REFUSED}"
    bad = ours("app", "run", "--id", "FreeSurfer", "--project", "O3D", "--input", "dwi:x")
    assert bad.returncode == 2 and "the app has no input 'dwi'" in bad.stderr
    assert _instances(tls_server, run.home) == before


@pytest.mark.parametrize("task", [FINISHED_FS_TASK, FINISHED_PROFILES_TASK])
def test_app_wait_on_a_finished_task(run, ours, task):
    official = run("app", "wait", task)
    assert official.returncode == 0, official.stderr
    assert official.stdout == "(done waiting)\n"
    mine = ours("app", "wait", "-i", task)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout == "(done waiting)\n"


def test_our_app_wait_reports_a_failed_task_and_gives_up_on_a_running_one(ours):
    res = ours("app", "wait", FAILED_TASK)
    assert res.returncode == 1
    assert "failed: recon-all exited with errors" in res.stderr
    res = ours("app", "wait", "--timeout", "0", "5c49eb977c0d8a003351f03b")
    assert res.returncode == 5 and "(it is running)" in res.stderr
