"""`bl serve --demo --store s3://…` on a real radosgw, driven by the real `bl`: uploads land in
the bucket, a download is redirected to presigned URLs (the server sends no byte of the file),
resumes there after a kill, and a URL that expires mid-file is replaced by a fresh one.

The server's S3 endpoint is a small TCP relay in front of radosgw (`Relay`): presigned URLs
point at it (SigV4 signs the host, and the relay passes the bytes through unchanged), so a test
can cut an answer of the store mid-body and see every request the client sends there."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brainlife.server.demo.world import TP_PROJECT
from tests.bulk._cli import bl_cmd, summary
from tests.conftest import LiveServer, start_server, stop_server
from tests.s3 import radosgw

s3_env = radosgw.s3_env  # the fixture
BIG = 48 * 1024 * 1024


class Relay:
    """127.0.0.1:port -> radosgw, one request per connection (it adds `Connection: close`).
    `cut_after(n, stall)`: the next presigned GET's answer stops after `n` body bytes, is held
    `stall` seconds, then the connection is closed. `corrupt_next(k)`: the next `k` presigned
    GETs' answers each arrive with one body byte changed. `ignore_range_next()`: the next
    presigned GET reaches the store without its `Range` header (a store that ignores it)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []  # "GET <path?query> range=<Range>" of presigned GETs
        self.answers: list[int] = []  # their statuses
        self._cut: tuple[int, float] | None = None
        self._corrupt = 0
        self._no_range = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int, stall: float) -> None:
        self._cut = (n, stall)

    def corrupt_next(self, k: int = 1) -> None:
        self._corrupt = k

    def ignore_range_next(self) -> None:
        self._no_range = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream))
        state: dict[str, object] = {"cut": None}

        def upstream_to_client() -> None:
            sent = 0
            head_done = False
            try:
                while data := up.recv(65536):
                    cut = state["cut"]
                    if not head_done and b"\r\n\r\n" in data:
                        head_done = True
                        status = int(data.split(b" ", 2)[1])
                        if state.get("presigned"):
                            self.answers.append(status)
                        body_at = data.index(b"\r\n\r\n") + 4
                        sent -= body_at
                    at = -sent if sent < 0 else 0  # where the body starts in `data`
                    if head_done and state.get("corrupt") and len(data) > at:
                        state["corrupt"] = False
                        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                    if isinstance(cut, tuple):
                        n, stall = cut
                        room = n - sent
                        if room < len(data):
                            client.sendall(data[: max(room, 0)])
                            time.sleep(stall)
                            break
                    client.sendall(data)
                    sent += len(data)
            except OSError:
                pass
            finally:
                for s in (client, up):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()

        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    up.close()
                    client.close()
                    return
                head += data
            line = head.split(b"\r\n", 1)[0].decode()
            if line.startswith("GET ") and "X-Amz-Signature" in line:
                rng = re.search(rb"(?i)\r\nrange: *([^\r]*)", head)
                with self._lock:
                    self.requests.append(
                        f"{line.split()[1]} range={rng.group(1).decode() if rng else ''}"
                    )
                    if self._cut is not None:
                        state["cut"], self._cut = self._cut, None
                    if self._no_range and rng:
                        self._no_range = False
                        head = re.sub(rb"(?i)\r\nrange: *[^\r]*", b"", head, count=1)
                    if self._corrupt:
                        self._corrupt -= 1
                        state["corrupt"] = True
                state["presigned"] = True
            # one request per connection, so that each one is seen here
            up.sendall(head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            threading.Thread(target=upstream_to_client, daemon=True).start()
            while data := client.recv(65536):
                up.sendall(data)
        except OSError:
            pass


@dataclass
class World:
    server: LiveServer
    bucket: str
    relay: Relay
    env: dict[str, str]


def server_bytes_written(pid: int) -> int:
    """What the server process wrote to files and sockets so far (`/proc/PID/io`)."""
    io = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"wchar: (\d+)", io).group(1))  # type: ignore[union-attr]


def s3_world(s3_env: dict[str, str], root: Path, size: int, tag: str) -> Iterator[World]:
    """`bl serve --demo --store s3://<a new bucket>` reaching radosgw through a Relay, `bl`
    signed in as demo, and one uploaded object of `size` random bytes tagged `tag` (subject
    s3sub); the server is stopped when the generator is closed. The module fixtures of this
    file and test_s3_pieces."""
    bucket = f"bl-test-{secrets.token_hex(6)}"
    relay = Relay(int(s3_env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1]))
    srv = start_server(
        root / "data",
        extra=["--demo", "--store", f"s3://{bucket}", "--s3-endpoint", relay.url,
               "--presign-seconds", "2"],
        env=s3_env,
        start_timeout=600,  # a --demo build into the bucket, through the relay, on a loaded machine
    )  # fmt: skip
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BL", "AWS_"))}
    env.update(HOME=str(home), BLHOST=srv.url)
    login = subprocess.run(
        bl_cmd("login", "--username", "demo", "--password-stdin"),
        input="demo\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    big = root / "upload"
    big.mkdir()
    (big / "t1.nii.gz").write_bytes(os.urandom(size))
    up = subprocess.run(
        bl_cmd("data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "s3sub",
               "-t", tag, "-j", str(big)),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    yield World(srv, bucket, relay, env)
    stop_server(srv)


@pytest.fixture(scope="module")
def world(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from s3_world(s3_env, tmp_path_factory.mktemp("s3serve"), BIG, "s3big")


def big_id(world: World) -> str:
    return tagged_id(world, "s3big")


def tagged_id(world: World, tag: str) -> str:
    """The id of the one object tagged `tag` (the one `s3_world` uploaded), as `bl` finds it."""
    r = subprocess.run(
        bl_cmd("data", "query", "-p", TP_PROJECT, "--tag", tag, "-j"),
        env=world.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 1
    return str(rows[0]["_id"])


def test_demo_and_upload_bytes_are_in_the_bucket(world: World, s3_env) -> None:
    keys = radosgw.keys(s3_env, world.bucket)
    data = (Path(world.env["HOME"]).parent / "upload" / "t1.nii.gz").read_bytes()
    assert f"blobs/{hashlib.sha256(data).hexdigest()}" in keys  # the upload
    assert len(keys) > 5  # and the demo's files
    assert all(k.startswith("blobs/") for k in keys)  # no temporary object left
    assert not (world.server.data_dir / "store").exists() or not any(
        p.is_file() for p in (world.server.data_dir / "store").rglob("*")
    )  # nothing kept on the server's disk


def test_download_comes_from_the_bucket_not_the_server(world: World, tmp_path: Path) -> None:
    oid = big_id(world)
    before_requests = len(world.relay.requests)
    written = server_bytes_written(world.server.process.pid)
    r = subprocess.run(
        [*bl_cmd("data", "download", "-i", oid, "-d", str(tmp_path / "out"), "--jobs", "1"),
         "--json"],
        env=world.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = (tmp_path / "out" / oid / "t1.nii.gz").read_bytes()
    sent = (Path(world.env["HOME"]).parent / "upload" / "t1.nii.gz").read_bytes()
    assert got == sent
    assert server_bytes_written(world.server.process.pid) - written < BIG // 20
    assert len(world.relay.requests) > before_requests  # fetched through presigned URLs
    assert summary(r.stdout)["bytes_transferred"] >= BIG


def test_killed_download_resumes_with_range_on_a_presigned_url(
    world: World, tmp_path: Path
) -> None:
    oid = big_id(world)
    out = tmp_path / "out"
    args = [*bl_cmd("data", "download", "-i", oid, "-d", str(out), "--jobs", "1"), "--json"]
    world.relay.cut_after(BIG // 3, stall=30.0)  # holds the body there until the kill
    proc = subprocess.Popen(args, env=world.env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (parts := [p for p in out.rglob("*.bl-part") if p.stat().st_size >= BIG // 4]):
        assert proc.poll() is None, "the download ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    kept = parts[0].stat().st_size
    assert BIG // 4 <= kept <= BIG // 3
    n = len(world.relay.requests)
    again = subprocess.run(args, env=world.env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert world.relay.requests[n:] and world.relay.requests[n].endswith(f"range=bytes={kept}-")
    s = summary(again.stdout)
    assert s["bytes_transferred"] <= BIG - kept
    sent = (Path(world.env["HOME"]).parent / "upload" / "t1.nii.gz").read_bytes()
    assert (out / oid / "t1.nii.gz").read_bytes() == sent


def test_a_url_expiring_mid_file_is_replaced(world: World, tmp_path: Path) -> None:
    oid = big_id(world)
    n = len(world.relay.requests)
    world.relay.cut_after(BIG // 4, stall=3.0)  # the 2 s URL expires while the body stalls
    r = subprocess.run(
        [*bl_cmd("data", "download", "-i", oid, "-d", str(tmp_path / "out"), "--jobs", "1"),
         "--json"],
        env=world.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen = world.relay.requests[n:]
    statuses = world.relay.answers[-len(seen) :]
    assert len(seen) >= 3, (seen, statuses, world.relay.answers)
    first, retried, fresh = seen[0], seen[1], seen[-1]
    assert first.endswith("range=")
    assert retried.endswith(f"range=bytes={BIG // 4}-") and statuses[1] in (400, 403)
    assert fresh.endswith(f"range=bytes={BIG // 4}-") and statuses[-1] == 206
    sig = lambda req: re.search(r"X-Amz-Signature=(\w+)", req).group(1)  # type: ignore[union-attr]  # noqa: E731
    assert sig(fresh) != sig(first)  # a new URL, asked of our server
    sent = (Path(world.env["HOME"]).parent / "upload" / "t1.nii.gz").read_bytes()
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent


def _task_ids(world: World) -> list[str]:
    r = subprocess.run(
        bl_cmd("task", "query", "--service", "brainlife/app-freesurfer", "--status", "finished",
               "-j"),
        env=world.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [t["_id"] for t in json.loads(r.stdout)]


def test_task_outputs_live_in_the_bucket_and_download_from_it(
    world: World, s3_env, tmp_path: Path
) -> None:
    """The demo's task folders went to the bucket; `bl task download` gets a folder's .tar.gz
    (made by the server from ranged reads), a folder extracted file by file and a single file
    (both through presigned URLs), every byte a blob of the bucket."""
    tasks_dir = world.server.data_dir / "tasks"
    assert not [p for p in tasks_dir.rglob("*") if p.is_file()]  # nothing on the server's disk
    blobs = set(radosgw.keys(s3_env, world.bucket))
    tids = _task_ids(world)
    assert tids
    tid = tids[0]
    run = lambda *args: subprocess.run(  # noqa: E731
        bl_cmd("task", "download", *args), env=world.env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    r = run(tid, "freesurfer/output/stats", "-d", str(tmp_path / "tgz"))
    assert r.returncode == 0, r.stderr
    (tgz,) = (tmp_path / "tgz").iterdir()
    with tarfile.open(tgz) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert "aseg.stats" in members
    for data in members.values():
        assert f"blobs/{hashlib.sha256(data).hexdigest()}" in blobs
    n = len(world.relay.requests)
    r = run(tid, "freesurfer/output/stats", "-x", "-d", str(tmp_path / "x"))
    assert r.returncode == 0, r.stderr
    got = {
        str(p.relative_to(tmp_path / "x")): p.read_bytes()
        for p in (tmp_path / "x").rglob("*")
        if p.is_file()
    }
    assert {k.rsplit("/", 1)[-1]: v for k, v in got.items()} == members
    r = run(tid, "freesurfer/output/stats/aseg.stats", "-d", str(tmp_path / "one"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "one" / "aseg.stats").read_bytes() == members["aseg.stats"]
    assert len(world.relay.requests) > n  # the files came through presigned URLs
