"""Upload bodies read from the socket in a worker thread (`server.socketbody`, offered by
`httpproto.BoundedHttpToolsProtocol`): exactly the declared bytes are taken, in order, in
bounded batches; a peer that goes away or falls silent keeps what it sent; a full disk stops
the read; and against a real `bl serve`, a large `PUT` (curl's `Expect: 100-continue`
included) takes that path and is verified, stored and finalized, a tampered one refused."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brainlife.client import Client
from brainlife.server import socketbody
from brainlife.server.demo.world import TP_PROJECT
from brainlife.wire import routes
from tests.conftest import LiveServer

MIB = 1024 * 1024


def _data(n: int, seed: bytes) -> bytes:
    block = hashlib.sha256(seed).digest() * 32768
    return (block * (n // len(block) + 1))[:n]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(peer, loop's socket): the second non-blocking, as the event loop holds it."""
    peer, ours = socket.socketpair()
    ours.setblocking(False)
    yield peer, ours
    peer.close()
    ours.close()


class Collect:
    def __init__(self, fail_at: int | None = None) -> None:
        self.pieces: list[bytes] = []
        self.fail_at = fail_at

    def __call__(self, view: memoryview) -> None:
        if self.fail_at is not None and len(self.pieces) == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.pieces.append(bytes(view))

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)


def _send(peer: socket.socket, data: bytes, *, close: bool = False) -> threading.Thread:
    def run() -> None:
        try:
            peer.sendall(data)
            if close:
                peer.shutdown(socket.SHUT_WR)
        except OSError:  # the test is over and closed the pair (a read that stopped early)
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _read(ours: socket.socket, length: int, sink: Collect, idle: float = 30.0) -> int:
    return socketbody.read_socket(ours.fileno(), length, sink, threading.Event(), idle)


def test_exactly_the_body_is_taken_in_bounded_batches(pair) -> None:  # type: ignore[no-untyped-def]
    peer, ours = pair
    body = _data(3 * MIB + 12345, b"exact")
    sender = _send(peer, body + b"GET /next HTTP/1.1\r\n")
    sink = Collect()
    assert _read(ours, len(body), sink) == len(body)
    sender.join()
    assert sink.data == body
    assert max(len(p) for p in sink.pieces) <= socketbody.BATCH  # memory: two batches at most
    # the bytes after the body stay in the socket, which stays non-blocking and open
    assert fcntl.fcntl(ours.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
    ours.setblocking(True)
    ours.settimeout(5)
    assert ours.recv(100) == b"GET /next HTTP/1.1\r\n"


def test_a_peer_gone_mid_body_keeps_what_it_sent(pair) -> None:  # type: ignore[no-untyped-def]
    peer, ours = pair
    half = _data(MIB + MIB // 2, b"gone")
    sender = _send(peer, half, close=True)
    sink = Collect()
    assert _read(ours, 4 * MIB, sink) == len(half)
    sender.join()
    assert sink.data == half


def test_a_silent_peer_is_left_with_what_it_sent(pair) -> None:  # type: ignore[no-untyped-def]
    peer, ours = pair
    _send(peer, b"x" * 1000).join()  # then nothing, the connection open
    sink = Collect()
    assert _read(ours, MIB, sink, idle=0.2) == 1000
    assert sink.data == b"x" * 1000


def test_a_full_disk_stops_the_read_and_is_raised(pair) -> None:  # type: ignore[no-untyped-def]
    peer, ours = pair
    body = _data(4 * MIB, b"full")
    _send(peer, body)
    sink = Collect(fail_at=1)
    with pytest.raises(OSError) as err:
        _read(ours, len(body), sink)
    assert err.value.errno == errno.ENOSPC
    assert sink.data == body[: socketbody.BATCH]  # nothing handed on after the failure


def test_a_stopped_read_ends(pair) -> None:  # type: ignore[no-untyped-def]
    peer, ours = pair
    _send(peer, b"y" * 10).join()
    stop = threading.Event()
    stop.set()
    sink = Collect()
    got = socketbody.read_socket(ours.fileno(), MIB, sink, stop, 30.0)
    assert got == len(sink.data) <= 10


# --- against a real `bl serve` ----------------------------------------------------------------


def _session(server: LiveServer, token: str, f: Path, subject: str) -> tuple[Client, str]:
    c = Client(server.url, token=token)
    plan = c.plan_upload(
        project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject=subject
    )
    doc = c.http.request_json("POST", routes.UPLOADS.url(), json_body=plan.request(), token=token)
    return c, doc["_id"]


def _put(
    server: LiveServer, token: str, upload_id: str, body: bytes, size: int
) -> tuple[int, dict, dict]:
    """A curl-like `PUT` (`Expect: 100-continue`, the body once the server says go on) on a
    raw socket; (status, headers, JSON answer)."""
    host, port = server.url.split("://", 1)[1].split(":")
    path = routes.UPLOAD_FILE.at(upload_id, "0")
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
        f"Content-Range: bytes 0-{len(body) - 1}/{size}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after the answer
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    head_part, _, answer = rest.partition(b"\r\n\r\n")
    headers = dict(
        line.decode("latin-1").lower().split(": ", 1) for line in head_part.split(b"\r\n") if line
    )
    return int(status_line.split()[1]), headers, json.loads(answer)


def test_a_large_put_is_read_from_the_socket_verified_and_finalized(
    token: str, home: Path, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(_data(6 * MIB + 7, b"live"))
    c, upload_id = _session(server, token, f, "socketbody")
    with c:
        status, headers, doc = _put(server, token, upload_id, f.read_bytes(), f.stat().st_size)
        assert status == 200, doc
        # taken from the socket: the parser never saw the body, so the connection ends here
        assert headers["connection"] == "close"
        assert doc["files"][0]["state"] == "stored"
        dataset = c.http.request_json("POST", routes.UPLOAD_FINALIZE.at(upload_id), token=token)
        manifest = c.http.request_json(
            "GET", f"/api/warehouse/dataset/manifest/{dataset['_id']}", token=token
        )
    assert manifest["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert manifest["files"][0]["size"] == f.stat().st_size


def test_a_tampered_large_put_is_refused_and_dropped(
    token: str, home: Path, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(_data(3 * MIB, b"tamper"))
    c, upload_id = _session(server, token, f, "socketbody-tampered")
    other = bytearray(f.read_bytes())
    other[MIB] ^= 0xFF
    with c:
        status, headers, doc = _put(server, token, upload_id, bytes(other), len(other))
        assert status == 400 and "sha256" in doc["message"]
        assert headers["connection"] == "close"
        state = c.http.request_json("GET", routes.UPLOAD.at(upload_id), token=token)
    assert state["files"][0]["received"] == 0 and state["files"][0]["state"] == "partial"
