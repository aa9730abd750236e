"""Replicas on one PostgreSQL database, as real `bl serve` processes: the signing key shared by
a key file or the environment (a token one replica issued is accepted by the other, a token
revoked on one is refused by both), an unusable key stopping a replica at start with a message,
the upload finalize jobs claimed in the database (never run by two replicas at once, taken over
when the replica running one is killed), and `--workers` on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jwt
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from brainlife.server.models import Dataset, DatasetFile, FinalizeJob
from brainlife.server.serve import FINALIZE_PAUSE_ENV, FINALIZE_POLL_ENV
from tests.conftest import LiveServer, start_server, stop_server
from tests.server.test_official_upload import by_task, finalize, noop_task, tgz, upload

T1_BYTES = b"\x1f\x8b replica upload " * 4096


def login(server: LiveServer, user: str = "hayashis") -> str:
    res = httpx.post(f"{server.url}/api/auth/local/auth", json={"username": user, "password": user})
    assert res.status_code == 200, res.text
    return str(res.json()["jwt"])


def me(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def replica(data_dir: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
    return start_server(data_dir, extra=["--database-url", url, *extra], env=env)


def job_row(url: str, dataset_id: str) -> tuple[str, int, str, int]:
    """(job state, attempts, object status, files recorded) as the database has them."""
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            job = s.scalar(select(FinalizeJob).where(FinalizeJob.dataset_id == dataset_id))
            ds = s.get(Dataset, dataset_id)
            assert job is not None and ds is not None
            files = s.scalar(
                select(func.count())
                .select_from(DatasetFile)
                .where(DatasetFile.dataset_id == dataset_id)
            )
            return job.state, job.attempts, ds.status, int(files or 0)
    finally:
        engine.dispose()


def test_a_token_of_one_replica_is_accepted_by_the_other_and_a_revoked_one_by_neither(
    replica_data: tuple[Path, str], key_file: Path, tmp_path: Path
) -> None:
    data_a, url = replica_data
    data_b = tmp_path / "b"  # a data folder of its own: the key comes from the environment
    a = replica(data_a, url, "--key-file", str(key_file))
    b = replica(data_b, url, env={"BL_SIGNING_KEY": key_file.read_text()})
    try:
        token = login(a)
        assert me(b, token).status_code == 200
        assert me(a, login(b)).status_code == 200
        # the given key is never written into the data folder
        assert not (data_b / "keys").exists()
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        res = httpx.delete(
            f"{b.url}/api/auth/token/{jti}", headers={"Authorization": f"Bearer {token}"}
        )
        assert res.status_code == 200, res.text
        for server in (a, b):
            refused = me(server, token)
            assert refused.status_code == 401
            assert "revoked" in refused.json()["message"]
    finally:
        stop_server(a)
        stop_server(b)


def test_a_replica_with_its_own_key_refuses_the_others_tokens(
    replica_data: tuple[Path, str], key_file: Path
) -> None:
    data_a, url = replica_data
    a = replica(data_a, url, "--key-file", str(key_file))
    own = replica(data_a, url)  # the data folder's own key pair: a misconfigured replica
    try:
        refused = me(own, login(a))
        assert refused.status_code == 401
        assert "not valid for this server" in refused.json()["message"]
    finally:
        stop_server(a)
        stop_server(own)


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "brainlife", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the signing key file"),
        (b"not a key\n", "holds no PEM private key"),
        ("ec", "must be an RSA key of at least 2048 bits"),
        ("encrypted", "is encrypted"),
    ],
)
def test_an_unusable_key_file_stops_the_replica_before_it_opens_anything(
    tmp_path: Path, content: Any, message: str
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from brainlife.server.serve import ServeOptions, run

    path = tmp_path / "key.pem"
    if content == "ec":
        content = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    elif content == "encrypted":
        content = rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    if content is not None:
        path.write_bytes(content)
    data = tmp_path / "data"
    with pytest.raises(SystemExit, match=message):
        run(ServeOptions(data_dir=data, port=0, key_file=path))
    assert not (data / "archive.sqlite3").exists() and not (data / "keys").exists()


def test_bl_serve_says_what_is_wrong_with_the_key_in_one_line(
    tmp_path: Path, key_file: Path
) -> None:
    res = _serve(tmp_path / "data", "--key-file", str(tmp_path / "missing.pem"), "--port", "0")
    assert res.returncode != 0
    assert "Error: cannot read the signing key file" in res.stderr
    assert "Traceback" not in res.stderr
    res = _serve(  # the key file in the environment and the PEM too: which one?
        tmp_path / "data",
        "--port",
        "0",
        env={"BL_SIGNING_KEY": key_file.read_text(), "BL_SIGNING_KEY_FILE": str(key_file)},
    )
    assert res.returncode != 0 and "give the signing key one way" in res.stderr
    assert "Traceback" not in res.stderr


def _shared_folder(data_a: Path, data_b: Path) -> None:
    """B's task outputs, staged uploads and store are A's (one volume mounted on two hosts);
    its lock folder is its own, as a lock file on another host would be."""
    data_b.mkdir()
    for name in ("tasks", "uploads", "store"):
        (data_a / name).mkdir(exist_ok=True)
        (data_b / name).symlink_to(data_a / name)


def test_a_finalize_job_runs_once_across_replicas_and_survives_its_replica_killed(
    replica_data: tuple[Path, str], key_file: Path, tmp_path: Path
) -> None:
    data_a, url = replica_data
    data_b = tmp_path / "b"
    _shared_folder(data_a, data_b)
    # A holds each job a long while once it has claimed it: B must find it claimed
    a = replica(data_a, url, "--key-file", str(key_file), env={FINALIZE_PAUSE_ENV: "40"})
    b = None
    try:
        headers = {"Authorization": f"Bearer {login(a)}"}
        with httpx.Client(base_url=a.url, timeout=60) as http:
            task = noop_task(http, headers)  # type: ignore[arg-type]
            res = upload(http, headers, task, tgz({"t1.nii.gz": T1_BYTES}))  # type: ignore[arg-type]
            assert res.status_code == 200, res.text
            res = finalize(http, headers, task)  # type: ignore[arg-type]
            assert res.status_code == 200, res.text
            [ds] = by_task(http, headers, task)  # type: ignore[arg-type]
        dataset_id = ds["_id"]
        assert job_row(url, dataset_id)[:3] == ("running", 1, "storing")
        # B's runner passes at start and then every 0.2 s (5 s on a served archive)
        b = replica(data_b, url, "--key-file", str(key_file), env={FINALIZE_POLL_ENV: "0.2"})
        time.sleep(1.5)  # B's runner has seen the job several times
        assert job_row(url, dataset_id)[:3] == ("running", 1, "storing")  # not run twice
        a.process.kill()  # mid-job: the claim goes with A's connection
        a.process.wait()
        deadline = time.monotonic() + 90
        while job_row(url, dataset_id)[0] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job_row(url, dataset_id) == ("done", 2, "stored", 1)
        res = httpx.get(
            f"{b.url}/api/warehouse/dataset/file/{dataset_id}/t1.nii.gz", headers=headers
        )
        assert res.status_code == 200
        assert hashlib.sha256(res.content).digest() == hashlib.sha256(T1_BYTES).digest()
    finally:
        if a.process.poll() is None:
            stop_server(a)
        if b is not None:
            stop_server(b)


def test_workers_on_postgresql_share_the_key_and_store_an_upload_once(
    replica_data: tuple[Path, str], key_file: Path
) -> None:
    data_dir, url = replica_data
    server = replica(
        data_dir,
        url,
        "--workers",
        "2",
        "--key-file",
        str(key_file),
        "--forwarded-allow-ips",
        "127.0.0.1",
    )
    try:
        tokens = [login(server) for _ in range(6)]  # spread over both workers
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        for token in tokens:
            assert me(server, token).status_code == 200
        for _ in range(6):  # every worker believes the proxy named on the command line
            res = httpx.get(
                f"{server.url}/signin/",
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "archive.example.org"},
            )
            assert res.headers["location"] == "https://archive.example.org/signin"
        with httpx.Client(base_url=server.url, timeout=60) as http:
            task = noop_task(http, headers)  # type: ignore[arg-type]
            res = upload(http, headers, task, tgz({"t1.nii.gz": T1_BYTES}))  # type: ignore[arg-type]
            assert res.status_code == 200, res.text
            assert finalize(http, headers, task).status_code == 200  # type: ignore[arg-type]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                [ds] = by_task(http, headers, task)  # type: ignore[arg-type]
                if ds["status"] != "storing":
                    break
                time.sleep(0.3)
        assert job_row(url, ds["_id"]) == ("done", 1, "stored", 1)
        assert not (data_dir / "jobs").exists() or not list((data_dir / "jobs").iterdir())
    finally:
        stop_server(server)
