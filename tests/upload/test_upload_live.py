"""`bl data upload` and `Client.upload` against a real `bl serve`: one object end to end, files
refused before a byte moves, a client killed half way and resumed, a server killed and restarted
mid-upload, a file that changes while it is sent."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from brainlife.client import Client, SourceChanged
from brainlife.server.demo.world import GUEST_PROJECT, TP_PROJECT
from brainlife.wire import routes
from tests.bulk._cli import bl_cmd, cli_env
from tests.conftest import LiveServer, kill_and_restart


def _data(n: int, seed: bytes = b"") -> bytes:
    block = hashlib.sha256(seed).digest() * 32768  # 1 MiB of varied bytes
    return (block * (n // len(block) + 1))[:n]


def _staged(server: LiveServer) -> list[Path]:
    return sorted((server.data_dir / "uploads").glob("*/*"))


def _wait_until_released(paths: list[Path], timeout: float = 60.0) -> None:
    """Until no request of the server holds a staged file's lock (`uploads._lock_staged`).
    Staged files are looked for under the data directory; where the archive stages them
    elsewhere (the PostgreSQL + S3 pass) there is nothing to wait for here."""
    import fcntl

    deadline = time.monotonic() + timeout
    for path in paths:
        with path.open("rb") as held:
            while True:
                try:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    assert time.monotonic() < deadline, f"{path} is still locked"
                    time.sleep(0.05)
                else:
                    fcntl.flock(held, fcntl.LOCK_UN)
                    break


def _any_locked(paths: list[Path]) -> bool:
    """Whether a request of the server holds one of the staged files' lock right now."""
    import fcntl

    for path in paths:
        with path.open("rb") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(held, fcntl.LOCK_UN)
    return False


def _query(bl, dataset_id: str) -> dict:  # type: ignore[no-untyped-def]
    r = bl("data", "query", "-i", dataset_id, "-j")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 1
    return rows[0]  # type: ignore[no-any-return]


def test_upload_one_object_json(bl, tmp_path: Path, server: LiveServer) -> None:
    t1 = tmp_path / "anat.nii.gz"
    t1.write_bytes(_data(3 * 1024 * 1024 + 17, b"t1"))
    r = bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "0042", "-e", "2",
        "-r", "1", "-t", "mine", "--datatype_tag", "defaced", "-n", "my T1",
        "-m", '{"age": 31}', "--t1", str(t1), "-j",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert r.output.startswith("{\n    ")  # as the official CLI prints it
    assert doc["status"] == "stored" and doc["project"] == TP_PROJECT
    assert doc["meta"] == {"age": 31, "subject": "0042", "session": "2", "run": "1"}
    assert doc["tags"] == ["mine", "run-1"] and doc["datatype_tags"] == ["defaced"]
    assert doc["desc"] == "my T1"
    assert _query(bl, doc["_id"])["meta"]["subject"] == "0042"
    out = tmp_path / "down"
    r = bl("data", "download", doc["_id"], str(out))
    assert r.exit_code == 0, r.output
    assert (out / "t1.nii.gz").read_bytes() == t1.read_bytes()
    # the same content again: nothing is sent, the object is new
    r = bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "0043", "--t1", str(t1)
    )
    assert r.exit_code == 0, r.output
    assert "sent 0 B" in r.output and "already in the archive" in r.output
    assert not _staged(server)


def test_folder_with_the_datatype_names(bl, tmp_path: Path) -> None:
    folder = tmp_path / "dwi"
    folder.mkdir()
    for name in ("dwi.nii.gz", "dwi.bvecs", "dwi.bvals"):
        (folder / name).write_bytes(name.encode() * 100)
    r = bl("data", "upload", "-p", TP_PROJECT, "-d", "neuro/dwi", "-s", "7", str(folder), "-j")
    assert r.exit_code == 0, r.output
    r = bl("data", "query", "-i", json.loads(r.output)["_id"], "-j")
    assert json.loads(r.output)[0]["size"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "neuro/anat/t1w", "--t2", "F"], "Unknown file id --t2"),
        (["-d", "neuro/dwi", "--dwi", "F"], "needs --bvecs"),
        (["-d", "neuro/anat/t1w", "--t1", "DIR"], "must be a file"),
        (["-d", "neuro/tractprofile", "--profiles", "F"], "must be a folder"),
        (["-d", "neuro/anat/t1w", "--t1", "MISSING"], "no such file"),
    ],
)
def test_wrong_files_refused_before_a_byte(
    bl, tmp_path: Path, server: LiveServer, args: list[str], message: str
) -> None:
    f = tmp_path / "f.nii.gz"
    f.write_bytes(b"x" * 1000)
    (tmp_path / "dir").mkdir()
    paths = {"F": str(f), "DIR": str(tmp_path / "dir"), "MISSING": str(tmp_path / "nope")}
    r = bl("data", "upload", "-p", TP_PROJECT, "-s", "1", *[paths.get(a, a) for a in args])
    assert r.exit_code == 10, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 6  # one line, then the datatype's files
    assert not _staged(server)


def test_guest_project_refused(bl, tmp_path: Path) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(b"x" * 1000)
    r = bl("data", "upload", "-p", GUEST_PROJECT, "-d", "neuro/anat/t1w", "-s", "1", "--t1", str(f))
    assert r.exit_code == 4, r.output
    assert "only its admins and members" in r.output


def _upload_proc(url: str, token: str, home: Path, f: Path, subject: str):  # type: ignore[no-untyped-def]
    args = ["data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", subject]
    return subprocess.Popen(
        bl_cmd(*args, "--t1", str(f)),
        env=cli_env(url, token, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_staged(server: LiveServer, at_least: int, proc, limit: float = 60) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        staged = _staged(server)
        if staged and staged[0].stat().st_size >= at_least:
            return staged[0].stat().st_size
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    raise AssertionError("the upload did not start")


def test_client_killed_half_way_resumes(token: str, home: Path, tmp_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    size = 160 * 1024 * 1024
    f = tmp_path / "big.nii.gz"
    f.write_bytes(_data(size, b"kill-client"))
    proc = _upload_proc(server.url, token, home, f, "kill")
    _wait_staged(server, size // 2, proc)
    proc.kill()
    proc.wait()
    held = _staged(server)[0].stat().st_size
    assert 0 < held < size
    r = subprocess.run(
        bl_cmd("data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "kill", "--t1",
               str(f), "-j"),
        env=cli_env(server.url, token, home), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    with Client(server.url, token=token) as c:
        manifest = c.http.request_json(
            "GET", f"/api/warehouse/dataset/manifest/{doc['_id']}", token=token
        )
    assert manifest["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    # resumed from what the server held: bytes sent again (the rerun's total) ≈ size - held
    r2 = subprocess.run(
        bl_cmd("data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "kill2", "--t1",
               str(f)),
        env=cli_env(server.url, token, home), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "already in the archive" in r2.stdout  # a second object of the same bytes: none sent
    assert not _staged(server)


def test_library_resume_counts_bytes(token: str, tmp_path: Path, server: LiveServer) -> None:
    """Half the bytes on the server from an earlier, interrupted run: the rerun sends the rest
    only (the counts `bl data upload` prints)."""
    import threading

    size = 8 * 1024 * 1024
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(_data(size, b"library"))
    with Client(server.url, token=token) as c:
        plan = c.plan_upload(
            project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject="lib"
        )
        cancel = threading.Event()

        def stop_half_way(done: int, _total: int | None) -> None:
            # past half way, and only while the server's request for these bytes runs (it
            # holds the staged file's lock): a request still queued in a busy server would
            # take the lock after the wait below, write what the socket held, and turn the
            # rerun's first PUT into a 409 whose bytes are sent again (counted in `sent`)
            if done >= size // 2 and _any_locked(_staged(server)):
                cancel.set()

        with pytest.raises(Exception, match="Interrupted"):
            c.upload(plan, progress=stop_half_way, cancel=cancel)
        assert c.upload_state(plan).exists()
        # the server may still be writing what the cut request carried: the rerun starts once
        # that request has released the file's lock
        _wait_until_released(_staged(server))
        plan2 = c.plan_upload(
            project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject="lib"
        )
        result = c.upload(plan2)
    # the rerun sends only what the server did not hold (the first run stopped at half way,
    # a megabyte or so in flight)
    assert result.resumed + result.sent == size
    assert result.resumed >= size // 2 - 2 * 1024 * 1024
    assert result.dataset["status"] == "stored"
    assert not c.upload_state(plan).exists()


class _GatedRelay:
    """A TCP relay from 127.0.0.1:<port> to the server's port, real sockets both ways: it passes
    at most `limit` bytes from clients to the server (all connections together), then holds the
    rest until `open()`. However fast the machine, a client sending through it cannot get more
    than `limit` bytes to the server while it is closed. A connection that either end drops (the
    server killed) is dropped at both ends; while the server is down, a new connection is
    accepted and closed at once. `later`: the bytes passed on connections made after `mark()`."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit: int | None = limit
        self.forwarded = 0  # bytes handed to the server, all connections
        self.later = 0
        self._marked = False
        self._cond = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def mark(self) -> None:
        with self._cond:
            self._marked = True

    def open(self) -> None:
        with self._cond:
            self.limit = None
            self._cond.notify_all()

    def close(self) -> None:
        self._listener.close()
        self.open()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _pass(
        self, view: memoryview, server: socket.socket, dropped: threading.Event, later: bool
    ) -> bool:
        """`view` to the server within the limit, waiting while it is reached; False once the
        connection is gone."""
        while view:
            with self._cond:
                while self.limit is not None and self.forwarded >= self.limit:
                    if dropped.is_set():
                        return False
                    self._cond.wait()
                if dropped.is_set():
                    return False
                n = len(view) if self.limit is None else min(len(view), self.limit - self.forwarded)
                self.forwarded += n
                self.later += n if later else 0
            try:
                server.sendall(view[:n])
            except OSError:
                return False
            view = view[n:]
        return True

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.port))
        except OSError:
            client.close()
            return
        later = self._marked
        dropped = threading.Event()

        def drop() -> None:
            dropped.set()
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._cond:
                self._cond.notify_all()

        def answers() -> None:
            with contextlib.suppress(OSError):
                while data := server.recv(1 << 18):
                    client.sendall(data)
            drop()

        back = threading.Thread(target=answers, daemon=True)
        back.start()
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 18):
                if not self._pass(memoryview(data), server, dropped, later):
                    break
        drop()
        back.join()
        client.close()
        server.close()


def _wait_for(condition: Callable[[], bool], proc, what: str, limit: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _upload_session(c: Client, home: Path, token: str) -> dict:  # type: ignore[type-arg]
    """The session of the one upload the CLI with `home` is running (its id from the client's
    state file), as the server's API says it stands."""
    (state,) = home.glob(".config/*/uploads/*.json")
    upload_id = json.loads(state.read_text())["upload_id"]
    return c.http.request_json("GET", routes.UPLOAD.at(upload_id), token=token)  # type: ignore[no-any-return]


def test_server_killed_and_restarted_mid_upload(
    token: str, home: Path, tmp_path: Path, server
) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the server while `bl data upload` sends a file, once the server holds part of it
    and cannot hold all of it: the client reaches the server through a relay that passes half
    the file's bytes and holds the rest (so the kill never races the upload's speed), and the
    server's API says what it holds. Restarted, the server keeps that part and shows no object;
    the client resumes from it and the object appears once, complete."""
    size = 160 * 1024 * 1024
    f = tmp_path / "restart.nii.gz"
    f.write_bytes(_data(size, b"restart"))
    relay = _GatedRelay(server.port, limit=size // 2)
    try:
        proc = _upload_proc(relay.url, token, home, f, "restart")
        _wait_for(lambda: relay.forwarded >= size // 2, proc, "the upload did not start")
        # the relay holds back the second half; the server has written a quarter at least
        with Client(server.url, token=token) as c:
            _wait_for(
                lambda: _upload_session(c, home, token)["files"][0]["received"] >= size // 4,
                proc,
                "the server did not write what it received",
            )
        # connections made from now on reach the restarted server (the client opens none
        # while its PUT is held)
        relay.mark()
        new = kill_and_restart(server)
        server.process = new.process
        with Client(server.url, token=token) as c:
            doc = _upload_session(c, home, token)
            held = doc["files"][0]["received"]
            assert doc["status"] == "open" and doc["files"][0]["state"] == "partial"
            assert size // 4 <= held < size // 2  # what the killed server wrote, no more
            # nothing half-written looks complete
            assert not c.query_datasets(project=TP_PROJECT, subject="restart").datasets
        relay.open()
        out, err = proc.communicate(timeout=120)
    finally:
        relay.close()
    assert proc.returncode == 0, err
    assert b"successfully uploaded" in out
    # resumed from what the server held: after the restart the client sent the rest of the
    # file once (and its requests' headers), not the whole file again
    assert size - held <= relay.later < size - held + 64 * 1024
    with Client(server.url, token=token) as c:
        rows = c.query_datasets(project=TP_PROJECT, subject="restart").datasets
        assert len(rows) == 1 and rows[0]["status"] == "stored"
        manifest = c.http.request_json(
            "GET", f"/api/warehouse/dataset/manifest/{rows[0]['_id']}", token=token
        )
    with f.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    assert [(m["size"], m["sha256"]) for m in manifest["files"]] == [(size, digest)]
    assert not _staged(server)


def test_file_changed_while_sent(token: str, tmp_path: Path, server: LiveServer) -> None:
    size = 4 * 1024 * 1024
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(_data(size, b"change"))
    with Client(server.url, token=token) as c:
        plan = c.plan_upload(
            project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject="chg"
        )

        def rewrite(done: int, _total: int | None) -> None:
            if 0 < done < size:  # after the first megabyte: same size, new bytes and mtime
                f.write_bytes(_data(size, b"other"))

        with pytest.raises(SourceChanged, match="changed while it was being uploaded"):
            c.upload(plan, progress=rewrite)
        # the same size and modification time, other bytes: the server's sha256 catches it
        f.write_bytes(_data(size, b"change"))
        st = f.stat()
        plan = c.plan_upload(
            project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject="chg2"
        )
        with f.open("r+b") as fh:
            fh.seek(size - 10)
            fh.write(b"0123456789")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(SourceChanged, match="other bytes than were hashed"):
            c.upload(plan)
        assert not c.query_datasets(project=TP_PROJECT, subject="chg2").datasets
