"""`bl admin migrate`: the demo archive (SQLite, local store, task folders) into a real
PostgreSQL and a real radosgw bucket, killed with SIGKILL mid-copy and run again: it goes on,
ends verified, with the source's row counts and every blob once; the migrated archive serves.
A target holding another archive, or unreachable, is refused with a message."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select

from brainlife.server.archive import open_archive
from brainlife.server.db import Base, make_engine
from brainlife.server.models import Dataset, DatasetFile, TaskOutputFile
from brainlife.server.settings import Settings
from tests import pgdb
from tests.bulk._cli import bl_cmd
from tests.s3 import radosgw

s3_env, bucket = radosgw.s3_env, radosgw.bucket  # the fixtures


def blob_keys(env: dict[str, str], bucket: str) -> list[str]:
    try:
        return radosgw.keys(env, bucket)
    except Exception:  # the bucket is not made yet
        return []


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables
                if t.name not in ("archive_migrations", "task_output_files")
            }
    finally:
        engine.dispose()


def test_a_killed_migration_resumes_and_ends_verified(
    demo_archive_dir: Path, pg_admin: str, s3_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "data"
    shutil.copytree(demo_archive_dir, src)
    target = pgdb.database_url(tmp_path / "target", pg_admin)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.update(s3_env)
    cmd = bl_cmd("admin", "--data-dir", str(src), "migrate", "--to-database", target,
                 "--to-store", f"s3://{bucket}", "--json")  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(blob_keys(s3_env, bucket)) < 40:  # the rows are in, the blobs under way
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(radosgw.keys(s3_env, bucket))
    # The run again is also the test of a rerun over a finished copy: its rows were all in
    # (the kill came during the blobs) and are inserted again without a duplicate (the counts
    # below), and the blobs already there are skipped (fewer copied than named). A third run
    # over the finished migration took the same paths again, a third of this test's time
    # (every blob asked for and read back once more).
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert 0 < report["blobs_copied"] < report["blobs"]  # went on where it stopped
    source = counts(Settings(data_dir=src).db_url)
    assert counts(target) == source and source["datasets"] > 1000
    keys = radosgw.keys(s3_env, bucket)
    assert len(keys) >= partial and report["verified_blobs"] == len(keys) - 1  # + the claim
    # the migrated archive serves from PostgreSQL + the bucket, task outputs included
    for k, v in s3_env.items():
        os.environ[k] = v
    try:
        arch = open_archive(Settings(data_dir=src, database_url=target, store_url=f"s3://{bucket}"))
        with arch.session() as s:
            assert s.scalar(select(func.count()).select_from(Dataset)) == source["datasets"]
            task_id = s.scalars(select(TaskOutputFile.task_id)).first()
        assert task_id is not None
        assert arch.task_files.stat(task_id, "").is_dir
        arch.engine.dispose()
    finally:
        for k in s3_env:
            os.environ.pop(k, None)


def test_targets_that_are_not_this_archives_are_refused(
    demo_archive_dir: Path, pg_admin: str, s3_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.update(s3_env)
    other = tmp_path / "other"
    open_archive(Settings(data_dir=other)).engine.dispose()  # another (empty) archive
    target = pgdb.database_url(tmp_path / "target", pg_admin)
    first = subprocess.run(
        bl_cmd("admin", "--data-dir", str(other), "migrate", "--to-database", target),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    # a copy: opening the shared demo would make its -wal file appear and vanish under
    # another worker's copy of it
    demo = tmp_path / "demo"
    shutil.copytree(demo_archive_dir, demo)
    run = lambda *args: subprocess.run(  # noqa: E731
        bl_cmd("admin", "--data-dir", str(demo), "migrate", *args),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    r = run("--to-database", target)
    assert r.returncode == 1
    assert "not empty and is not a previous migration of this archive" in r.stderr
    assert "Traceback" not in r.stderr
    radosgw.s3_client(s3_env).create_bucket(Bucket=bucket)
    radosgw.s3_client(s3_env).put_object(Bucket=bucket, Key="blobs/x", Body=b"someone's")
    r = run("--to-store", f"s3://{bucket}")
    assert r.returncode == 1 and "store" in r.stderr and "not empty" in r.stderr
    r = run("--to-database", "postgresql+psycopg://postgres:postgres@127.0.0.1:1/none")
    assert r.returncode == 1 and "Cannot use the target database" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("--to-database", "sqlite:////tmp/x.sqlite3")
    assert r.returncode == 1 and "PostgreSQL URL" in r.stderr
    r = run()
    assert r.returncode == 1 and "Name a target" in r.stderr


def test_blobs_alone_in_parallel_a_missing_one_stops_the_run_and_a_changed_one_fails_it(
    demo_archive_dir: Path, s3_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    """`--to-store` alone (the rows stay in SQLite), with several copiers: a blob a row names
    but the local store lacks stops the run with its name; once it is back, the run goes on and
    ends verified; a blob changed in the bucket afterwards fails the next run's read-back."""
    from brainlife.server.store import LocalStore

    src = tmp_path / "data"
    shutil.copytree(demo_archive_dir, src)
    settings = Settings(data_dir=src)
    local = LocalStore(settings.store_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.update(s3_env)
    cmd = bl_cmd("admin", "--data-dir", str(src), "migrate", "--to-store", f"s3://{bucket}",
                 "--jobs", "4", "--json")  # fmt: skip
    engine = make_engine(settings.db_url)
    with engine.connect() as conn:
        shas = sorted(set(conn.scalars(select(DatasetFile.sha256))))
    engine.dispose()
    gone = shas[len(shas) // 2]
    blob = local.local_path(gone)
    assert blob is not None
    aside = tmp_path / "aside"
    blob.rename(aside)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"The source store lacks blob {gone} that a row names." in r.stderr
    assert gone not in {k.rsplit("/", 1)[-1] for k in blob_keys(s3_env, bucket)}
    aside.rename(blob)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    keys = {k.rsplit("/", 1)[-1] for k in radosgw.keys(s3_env, bucket)}
    assert set(shas) <= keys and report["verified_blobs"] >= len(shas)
    client = radosgw.s3_client(s3_env)
    changed = shas[0]
    client.put_object(Bucket=bucket, Key=f"blobs/{changed}", Body=b"not what it was")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"Verification failed: blob {changed} reads back as another digest." in r.stderr
