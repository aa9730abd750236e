"""`bl serve --demo` on PostgreSQL + S3, both real (scripts/pg-start, radosgw): the user
document's download path (`bl login`, `bl data query`, `bl data download`) works, every byte
comes from the bucket and every row from PostgreSQL, none from the data folder."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import urllib.request
from pathlib import Path

from brainlife.server.demo.world import O3D_PROJECT, T1_EXAMPLE
from tests import pgdb
from tests.bulk._cli import bl_cmd
from tests.conftest import start_server, stop_server
from tests.s3 import radosgw

s3_env = radosgw.s3_env  # the fixture


def test_the_documents_download_path_on_postgresql_and_s3(
    pg_admin: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    bucket = f"bl-test-{secrets.token_hex(6)}"
    data_dir = tmp_path / "data"
    database = pgdb.database_url(data_dir, pg_admin)
    srv = start_server(
        data_dir,
        extra=["--demo", "--database-url", database, "--store", f"s3://{bucket}"],
        env=s3_env,
        start_timeout=600,
    )
    try:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BL", "AWS_"))}
        env.update(HOME=str(home), BLHOST=srv.url)
        run = lambda *args, **kw: subprocess.run(  # noqa: E731
            bl_cmd(*args), env=env, capture_output=True, text=True, timeout=300, **kw
        )
        login = run("login", "--username", "demo", "--password-stdin", input="demo\n")
        assert login.returncode == 0, login.stderr
        query = run("data", "query", "-p", O3D_PROJECT, "--json")
        assert query.returncode == 0, query.stderr
        rows = json.loads(query.stdout)
        assert T1_EXAMPLE in {r["_id"] for r in rows} and len(rows) > 10
        out = tmp_path / "out"
        down = run("data", "download", "-i", T1_EXAMPLE, "-d", str(out))
        assert down.returncode == 0, down.stderr
        got = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert "t1.nii.gz" in got
        token = next(home.glob(".config/*/.jwt")).read_text().strip()
        req = urllib.request.Request(
            f"{srv.url}/api/warehouse/dataset/manifest/{T1_EXAMPLE}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            manifest = json.load(resp)
        want = {f["path"]: f["sha256"] for f in manifest["files"]}
        assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()} == want
        blobs = set(radosgw.keys(s3_env, bucket))
        assert all(f"blobs/{sha}" in blobs for sha in want.values())
        # nothing of the archive in the data folder: no SQLite file, no local store, no tasks
        assert not (data_dir / "archive.sqlite3").exists()
        assert not [p for p in (data_dir / "store").rglob("*") if p.is_file()]
        assert not [p for p in (data_dir / "tasks").rglob("*") if p.is_file()]
    finally:
        stop_server(srv)
        radosgw.remove_bucket(s3_env, bucket)
        pgdb.drop_under(tmp_path)
