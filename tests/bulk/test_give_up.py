"""The client always ends (issue #8): a server killed for good stops a bulk download after
``--give-up-after`` seconds without an answer (exit 5, partial files kept, what is left named, the
wait told on stderr); a ``Retry-After`` longer than a minute ends the command with the server's
wait in the message, a shorter one is waited for and shown. The real `bl` runs in a subprocess
(against a real `bl serve`, or a small real HTTP server), so a command that would hang fails on
the subprocess timeout instead of hanging the suite."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bulk._cli import bl_cmd, cli_env
from tests.conftest import LiveServer, start_server, stop_server
from tests.fake_server import FakeServer, valid_jwt

BIG = 160 * 1024 * 1024


@dataclass
class Doomed:
    server: LiveServer
    token: str
    big: str
    small: list[str]


@dataclass
class DoomedArchive:
    data_dir: Path
    token: str
    big: str
    small: list[str]


@pytest.fixture(scope="module")
def doomed_archive(tmp_path_factory: pytest.TempPathFactory) -> DoomedArchive:
    """One big object and three small ones, ingested once per module (each test serves a copy:
    it kills its server)."""
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import make_dataset, make_project, token

    data_dir = tmp_path_factory.mktemp("doomed") / "data"
    archive = open_archive(Settings(data_dir=data_dir))
    project = make_project(archive)
    big = make_dataset(archive, project, [("big.bin", os.urandom(BIG))])
    small = [make_dataset(archive, project, [("own.txt", str(i).encode())]) for i in range(3)]
    tok = token(archive, ttl_ms=24 * 3600_000)
    archive.engine.dispose()
    return DoomedArchive(data_dir, tok, big, small)


@pytest.fixture
def doomed(doomed_archive: DoomedArchive, tmp_path: Path) -> Iterator[Doomed]:
    """A real `bl serve` over a private copy of `doomed_archive`; the test kills it."""
    data_dir = tmp_path / "srv" / "data"
    shutil.copytree(doomed_archive.data_dir, data_dir)
    srv = start_server(data_dir)
    yield Doomed(srv, doomed_archive.token, doomed_archive.big, doomed_archive.small)
    if srv.process.poll() is None:
        stop_server(srv)


def _grows(path: Path, at_least: int, proc: subprocess.Popen[str]) -> None:
    import time

    deadline = time.monotonic() + 60
    while not (path.exists() and path.stat().st_size >= at_least):
        assert proc.poll() is None, "the download ended before the server could be killed"
        assert time.monotonic() < deadline, f"{path} did not grow"
        time.sleep(0.001)


def _kill_server_mid_download(
    doomed: Doomed, args: list[str], env: dict[str, str], part: Path
) -> tuple[int, str, str]:
    """Run `bl` until `part` holds a quarter of the big file, kill the server for good (nothing
    listens on the port any more), and wait for `bl` to end: (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _grows(part, BIG // 4, proc)
        doomed.server.process.kill()
        doomed.server.process.wait()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stdout, stderr


def test_server_killed_for_good_ends_the_run_with_exit_5(doomed: Doomed, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = [doomed.big, *doomed.small]
    args = bl_cmd("data", "download", *[a for i in ids for a in ("-i", i)], "-d", str(out))
    args += ["--jobs", "1", "--give-up-after", "5"]
    env = cli_env(doomed.server.url, doomed.token, tmp_path / "home")
    part = out / doomed.big / "big.bin.bl-part"
    returncode, _, stderr = _kill_server_mid_download(doomed, args, env, part)
    assert returncode == 5, stderr
    # every partial byte is kept for the next run, nothing looks complete
    assert 0 < part.stat().st_size < BIG
    assert not (out / doomed.big / "big.bin").exists()
    assert (out / "bl-lock.json").is_file()
    # the wait was told (no terminal: lines on stderr), then the end names what is left
    assert "Waiting: server unreachable since" in stderr
    assert "gives up in" in stderr
    error = next(line for line in stderr.splitlines() if line.startswith("Error:"))
    assert "has been unavailable since" in error and "--give-up-after" in error
    assert "4 of 4 data objects not downloaded" in error
    assert all(i in error for i in ids)
    assert "Traceback" not in stderr
    # no new file started after the server went away: the small objects were never tried
    for oid in doomed.small:
        assert not [p for p in (out / oid).rglob("*") if p.is_file()]


def test_give_up_after_reaches_the_client_in_json_events(doomed: Doomed, tmp_path: Path) -> None:
    """With --json the waits are events on stdout (for pipelines), the error is on stderr."""
    out = tmp_path / "out"
    args = bl_cmd("data", "download", "-i", doomed.big, "-i", doomed.small[0], "-d", str(out))
    args += ["--jobs", "2", "--json", "--give-up-after", "3"]
    env = cli_env(doomed.server.url, doomed.token, tmp_path / "home")
    part = out / doomed.big / "big.bin.bl-part"
    returncode, stdout, stderr = _kill_server_mid_download(doomed, args, env, part)
    assert returncode == 5, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    waits = [e for e in events if e["event"] == "waiting"]
    assert waits and waits[0]["reason"] in ("server unreachable", "connection lost")
    assert all(w["gives_up_in"] <= 3 for w in waits)
    assert doomed.big in stderr
    assert part.stat().st_size > 0


# -- Retry-After ----------------------------------------------------------------------------------
DS = "5a050ad5d76a2a002737e572"
BODY = os.urandom(1 << 16)
SHA = hashlib.sha256(BODY).hexdigest()


def _serve(fake: FakeServer, file_answers: Iterator[tuple[int, dict[str, str], bytes]]) -> None:
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
    whole = (200, {"Content-Length": str(len(BODY))}, BODY)
    fake.route(
        "GET", f"/api/warehouse/dataset/file/{DS}/f.bin", lambda req: next(file_answers, whole)
    )


def _busy(retry_after: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Retry-After": retry_after, "Content-Type": "application/json"}
    return 503, headers, b'{"message":"maintenance"}'


def _bl(fake: FakeServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(fake.url, valid_jwt(), tmp_path / "home")
    return subprocess.run(bl_cmd(*args), env=env, capture_output=True, text=True, timeout=120)


def test_retry_after_of_an_hour_ends_the_bulk_download(fake: FakeServer, tmp_path: Path) -> None:
    _serve(fake, iter([_busy("3600")] * 100))
    r = _bl(fake, tmp_path, "data", "download", "-i", DS, "-d", str(tmp_path / "out"), "-J", "1")
    assert r.returncode == 5, r.stderr
    assert "Retry-After: 3600" in r.stderr and "1h00m" in r.stderr and "maintenance" in r.stderr
    assert DS in r.stderr  # what is left is named
    assert len(fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")) == 1  # no hour-long sleep


def test_retry_after_of_an_hour_ends_a_query(fake: FakeServer, tmp_path: Path) -> None:
    fake.route("GET", "/api/warehouse/datatype", lambda req: _busy("3600"))
    r = _bl(fake, tmp_path, "datatype", "query")
    assert r.returncode == 5, r.stderr
    assert "Retry-After: 3600" in r.stderr and "Traceback" not in r.stderr
    assert len(fake.requests) == 1


def test_short_retry_after_is_waited_for_and_shown(fake: FakeServer, tmp_path: Path) -> None:
    _serve(fake, iter([_busy("2")]))
    out = tmp_path / "out"
    r = _bl(fake, tmp_path, "data", "download", "-i", DS, "-d", str(out), "--give-up-after", "30")
    assert r.returncode == 0, r.stderr
    assert "Waiting: server busy (HTTP 503) since" in r.stderr
    assert "retrying in 2s" in r.stderr
    assert (out / "f.bin").read_bytes() == BODY  # one id: the single-object command
    assert len(fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")) == 2


def test_server_busy_for_good_gives_up_after_the_option(fake: FakeServer, tmp_path: Path) -> None:
    """Short Retry-Afters forever: the run-wide clock ends it (not 6 attempts x 4 requests)."""
    _serve(fake, iter([_busy("1")] * 1000))
    out = tmp_path / "out"
    r = _bl(fake, tmp_path, "data", "download", "-i", DS, "-d", str(out), "--give-up-after", "3")
    assert r.returncode == 5, r.stderr
    assert "server busy (HTTP 503)" in r.stderr and "has been unavailable since" in r.stderr
    # one request per Retry-After second, give or take: bounded by the clock
    assert 2 <= len(fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")) <= 6


def test_client_give_up_after_stops_the_engine_and_names_what_is_left(
    fake: FakeServer, tmp_path: Path
) -> None:
    from brainlife.client import Client, GaveUp

    _serve(fake, iter([(502, {"Content-Type": "text/plain"}, b"bad gateway")] * 10_000))
    events: list[str] = []
    with Client(fake.url, token=valid_jwt(), backoff=0.01, give_up_after=2) as c:
        plan = c.plan_download(root=tmp_path / "out", ids=[DS])
        with pytest.raises(GaveUp, match=r"server busy \(HTTP 502\)") as info:
            c.download(plan, on_event=lambda e: events.append(e.kind))
    assert info.value.left == [DS]
    assert "1 of 1 data objects not downloaded: " + DS in str(info.value)
    assert "waiting" in events
    # the clock, not attempts x retries, bounded the requests: backoff doubles from 0.01 s
    assert len(fake.calls(f"/api/warehouse/dataset/file/{DS}/f.bin")) < 20


def test_tar_only_object_gives_up_and_keeps_its_partial_folder(
    fake: FakeServer, tmp_path: Path
) -> None:
    """brainlife.io's way (no manifests, one tar): cut off, then 503 for good."""
    import io
    import tarfile

    from brainlife.client import Client, GaveUp
    from brainlife.client.transfer.names import journal_path

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("a.bin", "b.bin"):
            info = tarfile.TarInfo(name)
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    blob = buf.getvalue()

    def cut() -> Iterator[bytes]:
        yield blob[: len(blob) * 3 // 4]  # a.bin complete, b.bin half way

    answers = iter([(200, {"Content-Length": str(len(blob)), "ETag": '"v1"'}, cut())])

    def tar_route(req):  # type: ignore[no-untyped-def]
        return next(answers, None) or _busy("1")

    fake.json("GET", "/api/warehouse/dataset", {"datasets": [{"_id": DS, "status": "stored"}]})
    fake.route("GET", f"/api/warehouse/dataset/download/{DS}", tar_route)
    with (
        Client(fake.url, token=valid_jwt(), backoff=0.01, give_up_after=2) as c,
        pytest.raises(GaveUp, match=r"server busy \(HTTP 503\)"),
    ):
        c.download_dataset(DS, tmp_path / "out")
    partial = tmp_path / "out.bl-partial"
    assert (partial / "a.bin").stat().st_size == 1 << 20 and journal_path(partial).is_file()
    assert not (tmp_path / "out").exists()
    assert 2 <= len(fake.calls(f"/api/warehouse/dataset/download/{DS}")) <= 5


def test_single_object_command_gives_up_and_keeps_the_part(doomed: Doomed, tmp_path: Path) -> None:
    """`bl data download ID DIR` (the one-object path, not the engine) ends the same way."""
    out = tmp_path / "out"
    args = bl_cmd("data", "download", doomed.big, str(out), "--give-up-after", "3")
    env = cli_env(doomed.server.url, doomed.token, tmp_path / "home")
    part = tmp_path / "out.bl-partial" / "big.bin.bl-part"
    returncode, _, stderr = _kill_server_mid_download(doomed, args, env, part)
    assert returncode == 5, stderr
    assert 0 < part.stat().st_size < BIG and not out.exists()
    assert "Waiting: server unreachable since" in stderr
    assert "gave up after 3s" in stderr and "partial files are kept" in stderr
