"""Schema-driven fuzzing (schemathesis) of every operation in /api/openapi.json against a real
`bl serve` on a socket, anonymously and with a demo login's token: no answer may be a 5xx.

Bounded: a fixed seed, no stateful phase; per run ~650 coverage cases (every parameter's
boundaries and wrong types, every operation) and 10 random examples per operation (~220 cases;
25 took twice the time of the whole coverage phase and found nothing it misses). The server
is this module's own (fuzzed logins lock addresses out; other tests share `live_server`) and
answers wrong passwords without the 1 s delay (`BL_TEST_FAILED_LOGIN_DELAY`): each fuzzed login
that gets as far as a wrong password would otherwise wait it out (most get a 400 before; the
time of this test is schemathesis generating its cases). A failure prints
schemathesis's report: each failing request as a curl command, and the server log's error id
line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from brainlife.server.serve import FAILED_LOGIN_DELAY_ENV
from tests.conftest import LiveServer, start_server, stop_server

MAX_EXAMPLES = 10
SEED = 1


@pytest.fixture(scope="module")
def fuzzed_server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    # wrong passwords answered at once: the fuzzer sends dozens, 1 s each otherwise
    server = start_server(data_dir, env={FAILED_LOGIN_DELAY_ENV: "0"})
    yield server
    stop_server(server)


@pytest.mark.parametrize("who", ["anonymous", "demo"])
def test_no_operation_answers_a_server_error(fuzzed_server: LiveServer, tmp_path, who):
    headers = []
    if who == "demo":
        login = requests.post(
            fuzzed_server.url + "/api/auth/local/auth",
            json={"username": "demo", "password": "demo"},
            timeout=30,
        )
        headers = ["-H", f"Authorization: Bearer {login.json()['jwt']}"]
    st = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(st),
            "run",
            fuzzed_server.url + "/api/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--report-dir",
            str(tmp_path),
            "--no-color",
            *headers,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    log = (fuzzed_server.data_dir.parent / f"server-{fuzzed_server.port}.log").read_text()
    errors = "\n".join(line for line in log.splitlines() if line.startswith("error id"))
    assert result.returncode == 0, result.stdout[-6000:] + "\n--- server errors:\n" + errors
    assert "Selected: 38/38" in result.stdout  # every operation was fuzzed
    assert f"({FAILED_LOGIN_DELAY_ENV}, meant for test servers)" in log
