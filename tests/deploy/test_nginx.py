"""The deployment of docs/deploy.md, for real: PostgreSQL, two `bl serve` replicas sharing a data
folder and a signing key, and Debian's nginx running the repository's deploy/nginx/bl-archive.conf
with TLS. Through nginx: our `bl login`, `bl data query`, `bl data download` (bytes checked),
`bl data upload` and the official CLI's login; Range passed through; the replicas see the
client's scheme and host (download scripts name nginx's URL); then one replica is killed
(SIGKILL) while our client downloads several objects through nginx and restarted: every download
completes with the right bytes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.official import install_official_cli
from tests.conftest import LiveServer, stop_server
from tests.deploy.conftest import copy_replica_data
from tests.deploy.stack import (
    O3D,
    Nginx,
    add_objects,
    restart_replica,
    sha256_file,
    start_nginx,
    start_replica,
    stop_nginx,
)

#: the demo's T1-weighted object of subject 0001 (docs/cli.md's example)
T1 = "5a050ad5d76a2a002737e572"


@dataclass
class Stack:
    nginx: Nginx
    replicas: list[LiveServer]
    url: str  # the database
    key_file: Path
    objects: dict[str, str]  # id -> sha256 of its t1.nii.gz (4 MiB each)


@pytest.fixture(scope="module")
def stack(
    pg_demo_dir: Path, pg_admin: str, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("nginx-stack")
    data_dir = root / "data"
    url = copy_replica_data(pg_demo_dir, data_dir, pg_admin)
    objects = add_objects(data_dir, url, count=6, size=4 << 20, seed="nginx-test")
    replicas = [start_replica(data_dir, url, key_file) for _ in range(2)]
    nginx = start_nginx(root / "nginx", [r.hostport for r in replicas])
    stack = Stack(nginx, replicas, url, key_file, objects)
    try:
        yield stack
    finally:
        stop_nginx(nginx)
        for replica in stack.replicas:
            if replica.process.poll() is None:
                stop_server(replica)


def bl(stack: Stack, home: Path, *args: str, stdin: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), BLHOST=stack.nginx.url, BL_CA_BUNDLE=str(stack.nginx.cert))
    return subprocess.run(
        [sys.executable, "-m", "brainlife", *args],
        env=env,
        cwd=home,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_our_cli_through_nginx(stack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = bl(stack, home, "login", "--username", "hayashis", "--password-stdin", stdin="hayashis\n")
    assert res.returncode == 0, res.stderr
    res = bl(stack, home, "data", "query", "-p", O3D, "-q", "replica load", "--json")
    assert res.returncode == 0, res.stderr
    assert {d["_id"] for d in json.loads(res.stdout)} == set(stack.objects)
    res = bl(stack, home, "data", "query", "-b", "0001", "-d", "neuro/anat/t1w", "--json")
    assert res.returncode == 0, res.stderr
    assert T1 in {d["_id"] for d in json.loads(res.stdout)}
    [(big, digest)] = list(stack.objects.items())[:1]
    res = bl(stack, home, "data", "download", big, "got")
    assert res.returncode == 0, res.stderr
    assert sha256_file(home / "got" / "t1.nii.gz") == digest
    # an upload through nginx: streamed to a replica, stored, and read back through nginx
    payload = os.urandom(3 << 20)
    (home / "new.nii.gz").write_bytes(payload)
    res = bl(
        stack,
        home,
        "data",
        "upload",
        "-p",
        O3D,
        "-d",
        "neuro/anat/t1w",
        "-s",
        "nginx01",
        "--t1",
        "new.nii.gz",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    new = json.loads(res.stdout)
    assert new["status"] == "stored"
    res = bl(stack, home, "data", "download", new["_id"], "back")
    assert res.returncode == 0, res.stderr
    assert (home / "back" / "t1.nii.gz").read_bytes() == payload


def test_the_official_cli_logs_in_through_nginx(stack: Stack, tmp_path: Path) -> None:
    official = install_official_cli()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "BLHOST": stack.nginx.hostport,
        "NODE_EXTRA_CA_CERTS": str(stack.nginx.cert),
    }
    res = subprocess.run(
        [str(official), "login", "--username", "hayashis", "--password", "hayashis"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Successfully logged in" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(
        [str(official), "data", "query", "--subject", "0001", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert T1 in res.stdout, res.stdout + res.stderr


def _token(stack: Stack) -> str:
    res = requests.post(
        f"{stack.nginx.url}/api/auth/local/auth",
        json={"username": "hayashis", "password": "hayashis"},
        verify=str(stack.nginx.cert),
        timeout=60,
    )
    assert res.status_code == 200, res.text
    return str(res.json()["jwt"])


def test_ranges_scheme_and_host_pass_through(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {_token(stack)}"}
    [(oid, _digest)] = list(stack.objects.items())[1:2]
    whole = requests.get(
        f"{stack.nginx.url}/api/warehouse/dataset/file/{oid}/t1.nii.gz",
        headers=headers,
        verify=str(stack.nginx.cert),
        timeout=60,
    )
    assert whole.status_code == 200 and len(whole.content) == 4 << 20
    part = requests.get(
        f"{stack.nginx.url}/api/warehouse/dataset/file/{oid}/t1.nii.gz",
        headers={**headers, "Range": "bytes=1000000-1000099"},
        verify=str(stack.nginx.cert),
        timeout=60,
    )
    assert part.status_code == 206
    assert part.content == whole.content[1000000:1000100]
    script = requests.post(
        f"{stack.nginx.url}/api/warehouse/dataset/downscript",
        json={"find": {"_id": T1}, "limit": 1},
        headers=headers,
        verify=str(stack.nginx.cert),
        timeout=60,
    )
    assert script.status_code == 200, script.text
    assert re.search(rf"host='?https://127\.0\.0\.1:{stack.nginx.port}'?\n", script.text)
    plain = requests.get(
        f"http://127.0.0.1:{stack.nginx.http_port}/api/auth/me", allow_redirects=False, timeout=30
    )
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://")


def test_a_replica_killed_mid_download_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    """Our client's bulk download of every object through nginx while replica 1 is killed with
    SIGKILL once bytes flow, then restarted: every file completes with its sha256."""
    home = tmp_path / "home"
    res = bl(stack, home, "login", "--username", "hayashis", "--password-stdin", stdin="hayashis\n")
    assert res.returncode == 0, res.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.update(HOME=str(home), BLHOST=stack.nginx.url, BL_CA_BUNDLE=str(stack.nginx.cert))
    ids = [a for oid in stack.objects for a in ("-i", oid)]
    client = subprocess.Popen(
        [sys.executable, "-m", "brainlife", "data", "download", *ids, "-d", "all", "--json"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = stack.replicas[0]
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(client.communicate(timeout=600)[0]))
    reader.start()
    deadline = time.monotonic() + 120
    while not any(f.stat().st_size for f in (home / "all").rglob("*") if f.is_file()):
        assert client.poll() is None or reader.is_alive(), "the download ended before the kill"
        assert time.monotonic() < deadline, "no byte arrived"
        time.sleep(0.005)
    victim.process.kill()
    victim.process.wait()
    stack.replicas[0] = restart_replica(victim, stack.url, stack.key_file)
    reader.join(timeout=600)
    assert client.returncode == 0, out
    for oid, digest in stack.objects.items():
        [path] = list((home / "all").rglob(f"*{oid}*/t1.nii.gz"))
        assert sha256_file(path) == digest
