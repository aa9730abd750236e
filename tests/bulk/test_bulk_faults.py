"""Resume and retry for real: `bl data download` killed with SIGKILL half way, the server killed and
restarted on the same port mid-download, a task folder resumed from its manifest; injected 503/429
and cut-off bodies against a small fake server."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brainlife.client import Client
from tests.conftest import LiveServer, kill_and_restart, start_server, stop_server
from tests.fake_server import FakeServer, valid_jwt

BIG = 160 * 1024 * 1024


@dataclass
class World:
    server: LiveServer
    token: str
    big: str
    small: list[str]
    task: str
    big_sha: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import make_dataset, make_project, make_task, token

    data_dir = tmp_path_factory.mktemp("faults") / "data"
    archive = open_archive(Settings(data_dir=data_dir))
    blob = os.urandom(BIG)
    project = make_project(archive)
    big = make_dataset(archive, project, [("big.bin", blob)])
    shared = b"same bytes in every object\n" * 100
    small = [
        make_dataset(archive, project, [("shared.txt", shared), ("own.txt", str(i).encode())])
        for i in range(3)
    ]
    task, _ = make_task(
        archive, files={"out/a.bin": os.urandom(3 << 20), "out/sub/b.txt": b"b" * 1000}
    )
    tok = token(archive, ttl_ms=24 * 3600_000)
    archive.engine.dispose()
    srv = start_server(data_dir)
    world = World(srv, tok, big, small, task, hashlib.sha256(blob).hexdigest())
    yield world
    stop_server(world.server)  # the restart test replaces the server: stop the current one


def bl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "brainlife", *args]


def env_for(world: World, home: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "BLHOST": url or world.server.url, "BL_TOKEN": world.token}


def summary(stdout: str) -> dict:  # type: ignore[type-arg]
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return next(e for e in rows if e["event"] == "summary")


def wait_for_part(part: Path, at_least: int, proc: subprocess.Popen[bytes], limit: float) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            size = part.stat().st_size
        except OSError:
            size = 0
        if size >= at_least:
            return size
        if proc.poll() is not None:
            raise AssertionError(
                f"the download ended first: {proc.stdout.read() if proc.stdout else ''!r}"
            )
        time.sleep(0.001)
    raise AssertionError("the partial file did not grow")


def test_kill_9_half_way_then_resume(world: World, tmp_path: Path) -> None:
    env = env_for(world, tmp_path / "home")
    out = tmp_path / "out"
    args = bl_cmd("data", "download", "-i", world.big, "-i", world.small[0], "-d", str(out))
    part = out / world.big / "big.bin.bl-part"
    proc = subprocess.Popen([*args, "--jobs", "1"], env=env, stdout=subprocess.PIPE)
    wait_for_part(part, BIG // 2, proc, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = part.stat().st_size
    assert 0 < kept < BIG
    assert (out / "bl-lock.json").exists()
    again = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    s = summary(again.stdout)
    assert s["bytes_resumed"] == kept
    resent = s["bytes_transferred"] - (BIG - kept)  # (plus the small object's few bytes)
    assert resent < 0.05 * BIG
    assert not part.exists()
    assert hashlib.sha256((out / world.big / "big.bin").read_bytes()).hexdigest() == world.big_sha
    v = subprocess.run(bl_cmd("data", "verify", str(out)), env=env, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout


def test_server_killed_and_restarted_mid_download(world: World, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = env_for(world, tmp_path / "home")
    args = bl_cmd("data", "download", "-i", world.big, "-d", str(out), "--json", "--jobs", "2")
    part = out / world.big / "big.bin.bl-part"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for_part(part, BIG // 4, proc, 60)
        world.server = kill_and_restart(world.server)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    s = summary(stdout)
    assert s["downloaded"] == 1
    assert s["bytes_transferred"] < BIG * 1.05  # resumed with Range, not started again
    assert hashlib.sha256((out / world.big / "big.bin").read_bytes()).hexdigest() == world.big_sha


def test_task_download_extract_resumes_and_verifies(world: World, tmp_path: Path) -> None:
    env = env_for(world, tmp_path / "home")
    dest = tmp_path / "t" / "out"
    part = dest / "a.bin.bl-part"
    part.parent.mkdir(parents=True)
    with Client(world.server.url, token=world.token) as c:
        manifest = c.http.request_json(
            "GET", f"/api/amaretti/task/manifest/{world.task}", params={"p": "out"}, token=c.token()
        )
    a = next(f for f in manifest["files"] if f["path"] == "a.bin")
    # a partial file of the right content, as a killed run leaves it
    real = Path(world.server.data_dir) / "tasks" / world.task / "out" / "a.bin"
    part.write_bytes(real.read_bytes()[: a["size"] // 2])
    (dest / "a.bin.bl-part.json").write_text(
        json.dumps({"size": a["size"], "sha256": a["sha256"], "etag": ""})
    )
    r = subprocess.run(
        bl_cmd("task", "download", world.task, "out", "-x", "-d", str(dest), "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    s = summary(r.stdout)
    assert s["bytes_resumed"] == a["size"] // 2
    assert (dest / "a.bin").read_bytes() == real.read_bytes()
    assert (dest / "sub" / "b.txt").read_bytes() == b"b" * 1000
    v = subprocess.run(bl_cmd("data", "verify", str(dest.parent)), env=env, capture_output=True)
    assert v.returncode == 0


# -- injected faults ----------------------------------------------------------------------------
DS = "5a050ad5d76a2a002737e572"
BODY = os.urandom(3 << 20)
SHA = hashlib.sha256(BODY).hexdigest()


def serve(fake: FakeServer, file_handler) -> None:  # type: ignore[no-untyped-def]
    fake.json(
        "GET",
        "/api/warehouse/dataset",
        {"datasets": [{"_id": DS, "status": "stored", "meta": {"subject": "1"}}], "count": 1},
    )
    fake.json("GET", "/api/warehouse/datatype", {"datatypes": []})
    fake.json(
        "GET",
        f"/api/warehouse/dataset/manifest/{DS}",
        {"_id": DS, "tar_size": 0, "files": [{"path": "f.bin", "size": len(BODY), "sha256": SHA}]},
    )
    fake.route("GET", f"/api/warehouse/dataset/file/{DS}/f.bin", file_handler)


def ranged(req, etag: str = f'"{SHA}"'):  # type: ignore[no-untyped-def]
    rng = req.headers.get("range")
    if rng and req.headers.get("if-range", etag) == etag:
        start = int(rng.split("=")[1].split("-")[0])
        return (
            206,
            {
                "Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}",
                "Content-Length": str(len(BODY) - start),
                "ETag": etag,
            },
            BODY[start:],
        )
    return 200, {"Content-Length": str(len(BODY)), "ETag": etag}, BODY


def download(fake: FakeServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    with Client(fake.url, token=valid_jwt(), backoff=0.01) as c:
        plan = c.plan_download(root=tmp_path / "out", ids=[DS])
        return c.download(plan, backoff=0.01)


def test_retries_503_and_429_with_retry_after(fake: FakeServer, tmp_path: Path) -> None:
    answers = iter(
        [
            (503, {"Retry-After": "0", "Content-Type": "application/json"}, b'{"message":"busy"}'),
            (429, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"message":"slow"}'),
        ]
    )
    times: list[float] = []

    def handler(req):  # type: ignore[no-untyped-def]
        times.append(time.monotonic())
        return next(answers, None) or ranged(req)

    serve(fake, handler)
    result = download(fake, tmp_path)
    assert result.ok and len(times) == 3
    assert times[2] - times[1] >= 0.9  # Retry-After: 1 honoured
    assert (tmp_path / "out" / DS / "f.bin").read_bytes() == BODY


def test_cut_off_body_resumes_with_range_and_if_range(fake: FakeServer, tmp_path: Path) -> None:
    def handler(req):  # type: ignore[no-untyped-def]
        if len(fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")) == 1:
            half = len(BODY) // 2

            def cut() -> Iterator[bytes]:
                yield BODY[:half]

            return 200, {"Content-Length": str(len(BODY)), "ETag": f'"{SHA}"'}, cut()
        return ranged(req)

    serve(fake, handler)
    result = download(fake, tmp_path)
    assert result.ok
    calls = fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")
    # resumed where the bytes on disk stopped (a read cut mid-chunk keeps what was written)
    start = int(calls[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(BODY) // 2
    assert calls[1].headers["if-range"] == f'"{SHA}"'
    assert result.bytes_transferred == len(BODY)
    assert (tmp_path / "out" / DS / "f.bin").read_bytes() == BODY


def test_changed_file_is_fetched_whole_not_appended(fake: FakeServer, tmp_path: Path) -> None:
    target = tmp_path / "out" / DS / "f.bin"
    target.parent.mkdir(parents=True)
    Path(str(target) + ".bl-part").write_bytes(b"x" * 1000)  # bytes of some other version
    Path(str(target) + ".bl-part.json").write_text(
        json.dumps({"size": len(BODY), "sha256": SHA, "etag": '"old"'})
    )
    serve(fake, lambda req: ranged(req))
    result = download(fake, tmp_path)
    assert result.ok and target.read_bytes() == BODY
    assert result.bytes_transferred == len(BODY)  # If-Range "old" != ETag: the whole body


def test_parallel_requests_share_a_bounded_pool(fake: FakeServer, tmp_path: Path) -> None:
    seen: set[int] = set()
    lock = threading.Lock()

    def handler(req):  # type: ignore[no-untyped-def]
        with lock:
            seen.add(threading.get_ident())
        return ranged(req)

    serve(fake, handler)
    assert download(fake, tmp_path).ok and seen


def test_single_object_command_resumes_after_kill_9(world: World, tmp_path: Path) -> None:
    """`bl data download ID --directory DIR` (the document's form, not the bulk engine): killed
    half way, the same command continues the file from its part, nothing sent twice."""
    env = env_for(world, tmp_path / "home")
    out = tmp_path / "out"
    args = bl_cmd("data", "download", world.big, "--directory", str(out))
    part = tmp_path / "out.bl-partial" / "big.bin.bl-part"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_part(part, BIG // 2, proc, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = part.stat().st_size
    assert not out.exists()  # nothing looks complete
    r = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["method"] == "manifest"
    assert result["bytes_resumed"] == kept
    assert result["bytes_transferred"] == BIG - kept
    assert hashlib.sha256((out / "big.bin").read_bytes()).hexdigest() == world.big_sha
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["out"]
