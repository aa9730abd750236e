"""A task's folder saved as .tar.gz (no -x) and a task's single file resume: a real SIGKILL half
way through `bl task download TASK PATH` against `bl serve` (byte-stable .tar.gz with an ETag and
Range), then the same command finishes with the missing bytes only; a server without an ETag
(brainlife.io) gets the whole file again; error pages never become an archive."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brainlife.client import Client, ProtocolError
from tests.bulk._cli import bl_cmd, cli_env, kill_when
from tests.conftest import LiveServer, start_server, stop_server
from tests.fake_server import FakeServer, Req, valid_jwt

BIG = 48 * 1024 * 1024


@dataclass
class TaskWorld:
    server: LiveServer
    token: str
    task: str
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def task_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskWorld]:
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import make_task, token

    data_dir = tmp_path_factory.mktemp("task-archive") / "data"
    archive = open_archive(Settings(data_dir=data_dir))
    files = {
        "out/big.bin": os.urandom(BIG),  # random bytes: gzip cannot shrink them
        "out/sub/b.txt": b"b" * 1000,
        "out/a.txt": b"a\n",
    }
    task, _ = make_task(archive, files=files)
    tok = token(archive, ttl_ms=24 * 3600_000)
    archive.engine.dispose()
    srv = start_server(data_dir)
    yield TaskWorld(srv, tok, task, files)
    stop_server(srv)


def whole(world: TaskWorld, path: str) -> tuple[bytes, Any]:
    req = urllib.request.Request(
        f"{world.server.url}/api/amaretti/task/download/{world.task}/{path}",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    with urllib.request.urlopen(req) as resp:
        return resp.read(), resp.headers


def test_folder_archive_kill_9_then_resume(task_world: TaskWorld, tmp_path: Path) -> None:
    env = cli_env(task_world.server.url, task_world.token, tmp_path / "home")
    dest = tmp_path / "dl"
    args = bl_cmd("task", "download", task_world.task, "out", "-d", str(dest))
    key = hashlib.sha256(f"{task_world.task}/out".encode()).hexdigest()[:16]
    part = dest / f".bl-task-{key}.bl-part"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kept = kill_when(part, BIG // 2, proc)
    assert kept > 0
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".bl-task-")] == []
    r = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    body, headers = whole(task_world, "out")
    name = Path(result["path"]).name
    assert name.endswith(".tar.gz") and name in headers["Content-Disposition"]
    assert (dest / name).read_bytes() == body  # byte for byte what one whole download gives
    assert result["bytes_resumed"] == kept
    assert result["bytes_transferred"] == len(body) - kept  # nothing sent twice
    assert sorted(p.name for p in dest.iterdir()) == [name]  # no part, no sidecar, no stage
    with tarfile.open(dest / name) as tar:
        assert tar.extractfile("big.bin").read() == task_world.files["out/big.bin"]  # type: ignore[union-attr]


def test_single_file_with_output_resumes(task_world: TaskWorld, tmp_path: Path) -> None:
    env = cli_env(task_world.server.url, task_world.token, tmp_path / "home")
    out = tmp_path / "big.bin"
    args = bl_cmd("task", "download", task_world.task, "out/big.bin", "-o", str(out))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kept = kill_when(out.with_name("big.bin.bl-part"), BIG // 3, proc)
    assert not out.exists()
    r = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert out.read_bytes() == task_world.files["out/big.bin"]
    assert result["bytes_resumed"] == kept
    assert result["bytes_transferred"] == BIG - kept
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["big.bin"]


def test_changed_folder_is_fetched_whole(task_world: TaskWorld, tmp_path: Path) -> None:
    """A part whose ETag no longer matches (the folder changed) is not appended to."""
    key = hashlib.sha256(f"{task_world.task}/out/sub".encode()).hexdigest()[:16]
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / f".bl-task-{key}.bl-part").write_bytes(b"\x1f\x8bstale bytes of another archive")
    (dest / f".bl-task-{key}.bl-part.json").write_text(
        json.dumps({"size": None, "sha256": None, "etag": '"not-the-current-one"'})
    )
    with Client(task_world.server.url, token=task_world.token) as c:
        res = c.download_task_path(task_world.task, "out/sub", directory=dest)
    body, _ = whole(task_world, "out/sub")
    assert res.path.read_bytes() == body
    assert res.resumed == 0


# -- brainlife.io-like servers --------------------------------------------------------------
TASK = "5c0e8f0000000000000000aa"


def tgz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = os.urandom(200_000)
        info = tarfile.TarInfo("x.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_without_etag_a_part_is_fetched_again_whole(fake: FakeServer, tmp_path: Path) -> None:
    body = tgz_bytes()
    seen: list[Req] = []

    def route(req: Req):  # type: ignore[no-untyped-def]
        seen.append(req)
        return 200, {"Content-Type": "application/x-tgz"}, iter([body])  # chunked, no ETag

    fake.route("GET", f"/api/amaretti/task/download/{TASK}/out", route)
    out = tmp_path / "out.tar.gz"
    (tmp_path / "out.tar.gz.bl-part").write_bytes(body[:1000])
    (tmp_path / "out.tar.gz.bl-part.json").write_text(
        json.dumps({"size": None, "sha256": None, "etag": ""})
    )
    c = Client(fake.url, token=valid_jwt(), backoff=0.01, retries=1)
    res = c.download_task_path(TASK, "out", output=out)
    assert out.read_bytes() == body
    assert "range" not in seen[-1].headers  # nothing pins the old bytes: not continued
    assert res.resumed == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["out.tar.gz"]


def test_error_page_is_never_saved_as_the_archive(fake: FakeServer, tmp_path: Path) -> None:
    fake.route(
        "GET",
        f"/api/amaretti/task/download/{TASK}/out",
        lambda req: (
            200,
            {
                "Content-Type": "text/html",
                "Content-Disposition": "attachment; filename=a.b.out.tar.gz",
            },
            b"<html>proxy error</html>",
        ),
    )
    c = Client(fake.url, token=valid_jwt(), backoff=0.01, retries=1)
    with pytest.raises(ProtocolError, match="HTML page"):
        c.download_task_path(TASK, "out", directory=tmp_path)
    assert [p for p in tmp_path.iterdir() if p.name != "home"] == []


def test_bulk_archives_are_recorded_and_kept_while_unchanged(
    task_world: TaskWorld, tmp_path: Path
) -> None:
    """`bl task download --path P …` without -x: every archive lands in bl-lock.json; a rerun
    asks with If-None-Match and keeps what the server says is unchanged; a changed folder or a
    tampered archive is fetched again; `bl data verify` checks the archives."""
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import MEMBER_GID, make_task

    archive = open_archive(Settings(data_dir=Path(task_world.server.data_dir)))
    service = "brainlife/app-archive-test"
    tid, folder = make_task(archive, files={"res/x.txt": b"x" * 5000, "res/y.txt": b"y"})
    with archive.session() as s:
        from brainlife.server.models import Task

        row = s.get(Task, tid)
        assert row is not None
        row.service = service
        s.commit()
    archive.engine.dispose()
    env = cli_env(task_world.server.url, task_world.token, tmp_path / "home")
    dest = tmp_path / "dl"
    args = bl_cmd(
        "task", "download", "--path", "res", "--group", str(MEMBER_GID), "--service", service,
        "--name-by", "id", "-d", str(dest), "--json",
    )  # fmt: skip

    def run() -> dict[str, Any]:
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        (only,) = json.loads(r.stdout)
        return only  # type: ignore[no-any-return]

    first = run()
    archive_file = dest / f"{tid}.tar.gz"
    assert first["method"] == "file" and archive_file.read_bytes() == whole_of(task_world, tid)
    lock = json.loads((dest / "bl-lock.json").read_text())
    (rec,) = lock["objects"]
    assert (rec["id"], rec["kind"], rec["status"], rec["task_path"]) == (
        tid, "task-archive", "complete", "res",
    )  # fmt: skip
    assert rec["etag"] and rec["files"][0]["path"] == archive_file.name
    v = subprocess.run(bl_cmd("data", "verify", str(dest)), env=env, capture_output=True)
    assert v.returncode == 0, v.stdout

    mtime = archive_file.stat().st_mtime_ns
    second = run()
    assert (second["method"], second["bytes_transferred"]) == ("present", 0)
    assert archive_file.stat().st_mtime_ns == mtime  # not rewritten

    (folder / "res" / "y.txt").write_bytes(b"changed on the server")
    third = run()
    assert third["method"] == "file" and third["bytes_transferred"] > 0
    assert archive_file.read_bytes() == whole_of(task_world, tid)

    with open(archive_file, "ab") as fh:  # damaged locally: no longer as recorded
        fh.write(b"!")
    v = subprocess.run(bl_cmd("data", "verify", str(dest)), env=env, capture_output=True, text=True)
    assert v.returncode == 7 and "corrupt" in v.stdout
    fourth = run()
    assert fourth["method"] == "file"
    assert archive_file.read_bytes() == whole_of(task_world, tid)


def whole_of(world: TaskWorld, task_id: str) -> bytes:
    req = urllib.request.Request(
        f"{world.server.url}/api/amaretti/task/download/{task_id}/res",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    with urllib.request.urlopen(req) as resp:
        return resp.read()  # type: ignore[no-any-return]
