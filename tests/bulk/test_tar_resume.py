"""Data objects that arrive as one tar (servers without our manifest route, like brainlife.io) are
resumable where the server allows Range: `bl serve --no-extensions` (brainlife.io's routes only,
our tar route keeps Range and ETag) with a real SIGKILL inside a member; cut-off answers, a
changed archive, servers without Range or ETag and gzip archives against a small fake server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brainlife.client import Client, ProtocolError, ServerUnavailable
from brainlife.client.transfer.names import journal_path
from brainlife.client.transfer.tars import _Journal
from tests.bulk._cli import bl_cmd, cli_env, kill_when, summary
from tests.conftest import LiveServer, kill_and_restart, start_server, stop_server
from tests.fake_server import FakeServer, Req, valid_jwt

BIG = 160 * 1024 * 1024


@dataclass
class TarWorld:
    server: LiveServer
    token: str
    big: str
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def tar_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarWorld]:
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import make_dataset, make_project, token

    data_dir = tmp_path_factory.mktemp("tar-resume") / "data"
    archive = open_archive(Settings(data_dir=data_dir))
    files = {
        "a.txt": b"first member\n" * 10,
        "big.bin": os.urandom(BIG),
        "sub/c.txt": b"after the big one\n",
    }
    big = make_dataset(archive, make_project(archive), list(files.items()))
    tok = token(archive, ttl_ms=24 * 3600_000)
    archive.engine.dispose()
    srv = start_server(data_dir, extra=["--no-extensions"])
    world = TarWorld(srv, tok, big, files)
    yield world
    stop_server(world.server)  # the restart test replaces the server: stop the current one


def test_the_server_without_extensions_has_no_manifest(tar_world: TarWorld) -> None:
    from brainlife.client.transfer.single import Downloader

    client = Client(tar_world.server.url, token=tar_world.token)
    assert Downloader(client.http, client.token()).manifest(tar_world.big) is None


def test_kill_9_inside_a_member_then_resume(tar_world: TarWorld, tmp_path: Path) -> None:
    env = cli_env(tar_world.server.url, tar_world.token, tmp_path / "home")
    out = tmp_path / "out"
    args = bl_cmd("data", "download", "-i", tar_world.big, "-d", str(out), "--jobs", "1")
    partial = out / (tar_world.big + ".bl-partial")
    member = partial / "big.bin"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE)
    kept = kill_when(member, BIG // 2, proc)
    assert 0 < kept < BIG
    assert not (out / tar_world.big).exists()  # nothing looks complete
    journal = _Journal.load(journal_path(partial))
    assert journal is not None and journal.resumable
    assert journal.current is not None and journal.current["rel"] == "big.bin"
    assert list(journal.files) == ["a.txt"]

    dry = subprocess.run(
        [*args, "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    plan = next(e for e in map(json.loads, dry.stdout.splitlines()) if e["event"] == "plan")
    assert plan["bytes_partial"] >= kept  # the plan counts what the rerun will keep
    assert plan["bytes_to_fetch"] <= plan["bytes"] - kept

    again = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    s = summary(again.stdout)
    resumed = s["bytes_resumed"]
    assert resumed >= kept  # the bytes of big.bin on disk, plus the headers and a.txt before
    total = resumed + s["bytes_transferred"]
    assert total >= BIG
    assert s["bytes_transferred"] <= total - kept  # nothing on disk was sent again
    for rel, data in tar_world.files.items():
        assert (out / tar_world.big / rel).read_bytes() == data, rel
    assert not partial.exists() and not journal_path(partial).exists()
    v = subprocess.run(bl_cmd("data", "verify", str(out)), env=env, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_server_killed_and_restarted_mid_tar(tar_world: TarWorld, tmp_path: Path) -> None:
    """The server dies half way through the tar; the same run waits, asks for the rest with
    Range inside the member once it is back on the same port, and finishes."""
    env = cli_env(tar_world.server.url, tar_world.token, tmp_path / "home")
    out = tmp_path / "out"
    args = bl_cmd("data", "download", "-i", tar_world.big, "-d", str(out), "--jobs", "1")
    member = out / (tar_world.big + ".bl-partial") / "big.bin"
    proc = subprocess.Popen([*args, "--json"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (member.exists() and member.stat().st_size >= BIG // 4):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        tar_world.server = kill_and_restart(tar_world.server, ["--no-extensions"])
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    s = summary(stdout)
    assert s["downloaded"] == 1
    assert s["bytes_transferred"] < BIG * 1.05  # continued with Range, not started again
    for rel, data in tar_world.files.items():
        assert (out / tar_world.big / rel).read_bytes() == data, rel


def test_single_object_path_resumes_too(tar_world: TarWorld, tmp_path: Path) -> None:
    """`bl data download ID` (no --jobs: the official CLI's one-object path) continues an
    interrupted folder as well; here the interruption is a journal left mid-member by hand."""
    # rebuild an interrupted state: a.txt complete, big.bin half written
    blob = tar_bytes(tar_world.files)
    offsets = member_offsets(blob)
    dest = tmp_path / "second"
    partial = dest.with_name(dest.name + ".bl-partial")
    partial.mkdir()
    (partial / "a.txt").write_bytes(tar_world.files["a.txt"])
    half = BIG // 2
    (partial / "big.bin").write_bytes(tar_world.files["big.bin"][:half])
    etag = server_etag(tar_world)
    write_journal(partial, etag, len(blob), offsets, done=["a.txt"], current="big.bin")
    env = cli_env(tar_world.server.url, tar_world.token, tmp_path / "home")
    res = subprocess.run(
        bl_cmd("data", "download", tar_world.big, "-d", str(dest)),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    for rel, data in tar_world.files.items():
        assert (dest / rel).read_bytes() == data, rel
    assert not partial.exists() and not journal_path(partial).exists()


# -- a small fake server: cut-offs, changed archives, no Range ---------------------------------
DSID = "5a050ad5d76a2a002737e572"
FILES = {
    "t1.nii.gz": os.urandom(300_000),
    "sub/info.json": b'{"a": 1}',
    "sub/z.bin": os.urandom(400_000),
}


def tar_bytes(files: dict[str, bytes], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_500_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member_offsets(blob: bytes) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) in a plain tar."""
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {m.name: (m.offset_data, m.size) for m in tar.getmembers()}


def write_journal(
    partial: Path,
    etag: str,
    length: int,
    offsets: dict[str, tuple[int, int]],
    *,
    done: list[str],
    current: str | None,
) -> None:
    lines = [{"v": 1, "etag": etag, "length": length, "compression": "tar"}]
    for name in done:
        data, size = offsets[name]
        lines.append({"start": name, "size": size, "data": data, "mode": 0o644, "mtime": 1e9})
        lines.append({"end": name, "next": data + -(-size // 512) * 512, "file": True})
    if current:
        data, size = offsets[current]
        lines.append({"start": current, "size": size, "data": data, "mode": 0o644, "mtime": 1e9})
    journal_path(partial).write_text("".join(json.dumps(x) + "\n" for x in lines))


def server_etag(world: TarWorld) -> str:
    import urllib.request

    req = urllib.request.Request(
        f"{world.server.url}/api/warehouse/dataset/download/{world.big}",
        method="HEAD",
        headers={"Authorization": f"Bearer {world.token}"},
    )
    with urllib.request.urlopen(req) as resp:
        return str(resp.headers["ETag"])


class TarRoute:
    """/dataset/download/DSID with Range and If-Range; `cut_at` cuts the next answer's body
    after that many bytes (the connection is closed, as when a network drops)."""

    def __init__(self, blob: bytes, etag: str | None = '"v1"', ranges: bool = True) -> None:
        self.blob, self.etag, self.ranges = blob, etag, ranges
        self.cut_at: list[int] = []

    def __call__(self, req: Req) -> tuple[int, dict[str, str], bytes | Iterator[bytes]]:
        headers = {"Content-Type": "application/x-tar"}
        if self.etag:
            headers["ETag"] = self.etag
        start = 0
        rng = req.headers.get("range", "")
        if self.ranges and rng.startswith("bytes=") and req.headers.get("if-range") == self.etag:
            start = int(rng[6:].split("-")[0])
        body = self.blob[start:]
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(self.blob) - 1}/{len(self.blob)}"
        headers["Content-Length"] = str(len(body))
        if self.cut_at:
            n = self.cut_at.pop(0)

            def cut() -> Iterator[bytes]:
                yield body[:n]

            return status, headers, cut()
        return status, headers, body


def serve(fake: FakeServer, route: TarRoute) -> None:
    fake.json("GET", "/api/warehouse/dataset", {"datasets": [{"_id": DSID, "status": "stored"}]})
    fake.route("GET", f"/api/warehouse/dataset/download/{DSID}", route)


def client(fake: FakeServer) -> Client:
    return Client(fake.url, token=valid_jwt(), backoff=0.01, retries=1)


def downloads(fake: FakeServer) -> list[Req]:
    return fake.calls(f"/api/warehouse/dataset/download/{DSID}")


def assert_tree(dest: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
    assert not dest.with_name(dest.name + ".bl-partial").exists()
    assert not journal_path(dest.with_name(dest.name + ".bl-partial")).exists()


@pytest.mark.parametrize("where", ["inside the first member", "inside the third member"])
def test_cut_off_answer_continues_with_range(fake: FakeServer, tmp_path: Path, where: str) -> None:
    blob = tar_bytes(FILES)
    offsets = member_offsets(blob)
    name = "t1.nii.gz" if where.endswith("first member") else "sub/z.bin"
    cut = offsets[name][0] + offsets[name][1] // 2
    route = TarRoute(blob)
    route.cut_at = [cut]
    serve(fake, route)
    seen: list[tuple[int, int | None]] = []
    result = client(fake).download_dataset(
        DSID, tmp_path / "out", progress=lambda d, t: seen.append((d, t))
    )
    assert_tree(tmp_path / "out", FILES)
    calls = downloads(fake)
    assert len(calls) == 2
    assert "range" not in calls[0].headers
    start = int(calls[1].headers["range"][6:].split("-")[0])
    assert offsets[name][0] < start <= cut  # inside the member, not before it
    assert calls[1].headers["if-range"] == '"v1"'
    assert cut - start < 1 << 20  # at most the chunk in flight is sent again
    assert result.transferred == cut + len(blob) - start
    assert result.resumed == start
    assert seen[-1] == (len(blob), len(blob))


def test_journal_ending_at_the_last_header_finishes(fake: FakeServer, tmp_path: Path) -> None:
    blob = tar_bytes(FILES)
    offsets = member_offsets(blob)
    dest = tmp_path / "out"
    partial = dest.with_name("out.bl-partial")
    for rel, data in FILES.items():
        (partial / rel).parent.mkdir(parents=True, exist_ok=True)
        (partial / rel).write_bytes(data)
    write_journal(partial, '"v1"', len(blob), offsets, done=list(FILES), current=None)
    serve(fake, TarRoute(blob))
    result = client(fake).download_dataset(DSID, dest)
    assert_tree(dest, FILES)
    assert result.resumed > sum(len(d) for d in FILES.values())
    assert result.transferred == len(blob) - result.resumed  # only the end-of-archive blocks
    assert sorted(result.files) == sorted(FILES)


def test_changed_archive_is_fetched_whole_into_a_clean_folder(
    fake: FakeServer, tmp_path: Path
) -> None:
    old = {"old-only.txt": b"x" * 2000, **FILES}
    blob = tar_bytes(old)
    route = TarRoute(blob)
    route.cut_at = [member_offsets(blob)["t1.nii.gz"][0] + 1000]
    serve(fake, route)
    c = Client(fake.url, token=valid_jwt(), backoff=0.01, retries=1)
    with pytest.raises(ServerUnavailable):
        _fail_once(c, tmp_path / "out")
    partial = tmp_path / "out.bl-partial"
    assert (partial / "old-only.txt").exists() and journal_path(partial).exists()
    new = tar_bytes(FILES)
    route.blob, route.etag = new, '"v2"'
    client(fake).download_dataset(DSID, tmp_path / "out")
    assert_tree(tmp_path / "out", FILES)
    assert not (tmp_path / "out" / "old-only.txt").exists()  # nothing of the old archive
    last = downloads(fake)[-1]
    assert last.headers["if-range"] == '"v1"'  # asked to continue, got the whole new one


def _fail_once(c: Client, dest: Path) -> None:
    """One attempt only: the cut-off answer fails the download (the folder is kept)."""
    from brainlife.client import RetryPolicy
    from brainlife.client.transfer.names import partial_path
    from brainlife.client.transfer.tars import fetch_tar

    fetch_tar(
        c.http,
        c.token(),
        f"/api/warehouse/dataset/download/{DSID}",
        partial_path(dest),
        policy=RetryPolicy(attempts=1),
    )


@pytest.mark.parametrize("kind", ["no etag", "no range", "gzip"])
def test_without_range_an_interrupted_archive_starts_over(
    fake: FakeServer, tmp_path: Path, kind: str
) -> None:
    """brainlife.io sends no ETag and ignores Range; old archives are gzip: nothing is kept."""
    blob = tar_bytes(FILES, gz=kind == "gzip")
    route = TarRoute(blob, etag=None if kind == "no etag" else '"v1"', ranges=kind != "no range")
    route.cut_at = [len(blob) // 2]
    serve(fake, route)
    c = client(fake)
    with pytest.raises(ServerUnavailable):
        _fail_once(c, tmp_path / "out")
    partial = tmp_path / "out.bl-partial"
    if kind == "no range":  # an ETag was given: kept (the server may well honour Range later)
        assert journal_path(partial).exists()
    else:
        assert not partial.exists() and not journal_path(partial).exists()
    c.download_dataset(DSID, tmp_path / "out")
    assert_tree(tmp_path / "out", FILES)
    assert "range" not in downloads(fake)[-1].headers or kind == "no range"


def test_error_page_in_place_of_the_rest_discards_the_folder(
    fake: FakeServer, tmp_path: Path
) -> None:
    blob = tar_bytes(FILES)
    route = TarRoute(blob)
    route.cut_at = [member_offsets(blob)["t1.nii.gz"][0] + 5000]
    serve(fake, route)
    with pytest.raises(ServerUnavailable):
        _fail_once(client(fake), tmp_path / "out")
    fake.route(
        "GET",
        f"/api/warehouse/dataset/download/{DSID}",
        lambda req: (200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"),
    )
    with pytest.raises(ProtocolError, match="HTML page"):
        client(fake).download_dataset(DSID, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == []


def test_a_journal_cut_mid_line_keeps_what_came_before(tmp_path: Path) -> None:
    partial = tmp_path / "x.bl-partial"
    partial.mkdir()
    path = journal_path(partial)
    path.write_text(
        json.dumps({"v": 1, "etag": '"e"', "length": 5000, "compression": "tar"})
        + "\n"
        + json.dumps({"start": "a", "size": 10, "data": 512, "mode": 420, "mtime": 1.0})
        + "\n"
        + json.dumps({"end": "a", "next": 1024, "file": True})
        + "\n"
        + '{"start": "b", "si'
    )
    journal = _Journal.load(path)
    assert journal is not None
    assert journal.resumable and journal.next == 1024 and journal.current is None
    assert list(journal.files) == ["a"]
    assert journal.resume_point(partial) == 1024
    assert _Journal.load(tmp_path / "missing.json") is None
    path.write_text("not json\n")
    assert _Journal.load(path) is None


def test_resume_point_never_trusts_more_than_the_member_size(tmp_path: Path) -> None:
    partial = tmp_path / "p"
    partial.mkdir()
    (partial / "m").write_bytes(b"y" * 50)  # longer than the member: cut back to its size
    journal = _Journal(journal_path(partial), etag='"e"', compression="tar")
    journal.current = {"rel": "m", "size": 20, "data": 1536, "mode": 420, "mtime": 1.0}
    assert journal.resume_point(partial) == 1536 + 20
    (partial / "m").unlink()
    assert journal.resume_point(partial) == 1536


def test_bulk_tar_counts_a_continued_answer_once(fake: FakeServer, tmp_path: Path) -> None:
    """The bulk engine counts a tar's bytes with the same meter as the single path: after an
    answer cut off and continued with Range, the last ``progress`` event says the archive's
    length done (not the bytes before the cut counted twice)."""
    blob = tar_bytes(FILES)
    offsets = member_offsets(blob)
    route = TarRoute(blob)
    route.cut_at = [offsets["sub/z.bin"][0] + offsets["sub/z.bin"][1] // 2]
    serve(fake, route)
    events: list[dict[str, object]] = []
    with client(fake) as c:
        plan = c.plan_download(root=tmp_path / "out", ids=[DSID])
        result = c.download(plan, on_event=lambda e: events.append(e.to_json()))
    assert result.ok and len(downloads(fake)) == 2
    done = [e["bytes_done"] for e in events if e["event"] == "progress"]
    assert done[-1] == len(blob)
    assert max(done) == len(blob)  # never more than the archive
    assert result.bytes_transferred + result.bytes_resumed - len(blob) < 1 << 20
