"""Hostile requests at the HTTP layer: oversized URLs, heads and bodies, malformed JSON bodies and
headers. Each gets a JSON error naming what was wrong (never a 500, never uvicorn's plain text),
and an oversized body is refused before it is read.

The size limits are tested on a real socket (`live_server`): the request line and headers are
parsed by uvicorn's protocol before the app sees anything.
"""

from __future__ import annotations

import json
import socket

import pytest

from brainlife.server.limits import MAX_HEADER_BYTES, MAX_JSON_DEPTH, MAX_REQUEST_LINE_BYTES
from brainlife.server.services.auth import create_user
from brainlife.server.settings import Settings
from brainlife.wire import routes
from tests.conftest import make_token

LOGIN = "/api/auth/local/auth"
MANIFESTS = routes.DATASET_MANIFESTS.full
MAX_BODY = Settings.max_body_bytes
MAX_URL = Settings.max_url_bytes


def exchange(port: int, head: bytes, body_chunks: list[bytes] | None = None) -> tuple[int, dict]:
    """Send `head` (and then `body_chunks`, as long as the server reads) on a fresh connection;
    the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for chunk in body_chunks or []:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: what we want
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = data.partition(b"\r\n")
    head_part, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(
        line.decode("latin-1").lower().split(": ", 1) for line in head_part.split(b"\r\n") if line
    )
    assert headers.get("content-type") == "application/json", data[:300]
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest_body = body.partition(b"\r\n")
        body = rest_body[: int(size, 16)]
    return int(status_line.split()[1]), json.loads(body)


def get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()


# --- sizes, on a real socket -------------------------------------------------------------------


def test_a_declared_500_mb_body_is_refused_unread(live_server):
    head = (
        f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {500 * 1024 * 1024}\r\n\r\n"
    ).encode()
    # the server answers after the head alone: no body byte needs to be sent
    status, body = exchange(live_server.port, head)
    assert status == 413
    assert str(MAX_BODY) in body["message"]


def test_a_chunked_body_is_refused_once_it_passes_the_limit(live_server):
    head = (
        f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    # 64 MiB offered; the server stops reading after ~256 KiB and answers
    status, body = exchange(live_server.port, head, [chunk] * 1024)
    assert status == 413
    assert str(MAX_BODY) in body["message"]


def test_a_url_over_the_limit_is_a_json_414(live_server):
    status, body = exchange(live_server.port, get("/api/warehouse/project?find=" + "a" * MAX_URL))
    assert status == 414
    assert str(MAX_URL) in body["message"]


def test_a_url_too_long_for_the_parser_is_a_json_414_too(live_server):
    long = "/api/warehouse/project?find=" + "a" * (MAX_REQUEST_LINE_BYTES * 4)
    status, body = exchange(live_server.port, get(long))
    assert status == 414
    assert "URL is too long" in body["message"]


def test_headers_too_large_are_a_json_431(live_server):
    status, body = exchange(
        live_server.port, get("/api/warehouse/health", f"X-Big: {'b' * MAX_HEADER_BYTES * 4}\r\n")
    )
    assert status == 431
    assert str(MAX_HEADER_BYTES) in body["message"]


def test_unparseable_http_is_a_json_400(live_server):
    status, body = exchange(live_server.port, b"GET /\x00 HTTP/1.1\r\n\r\n")
    assert status == 400
    assert "message" in body


def test_the_server_still_answers_after_the_hostile_requests(live_server):
    status, body = exchange(live_server.port, get("/api/warehouse/health", "Connection: close\r\n"))
    assert status == 200 and body["status"] == "ok"


# --- bodies (in-process: the app's own parsing) ------------------------------------------------


@pytest.fixture
def alice(archive):
    with archive.session() as session:
        create_user(session, username="alice", password="s3cret", email="alice@example.org")
        session.commit()


def post_raw(http, path: str, raw: bytes, **headers: str):
    return http.post(path, content=raw, headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"username": "\ud800", "password": "x"}',
        rb'{"username": "alice", "password": "\udfff"}',
        rb'{"\ud800": 1, "username": "alice", "password": "x"}',
    ],
)
def test_lone_surrogates_in_the_login_body_are_400(http, alice, raw):
    r = post_raw(http, LOGIN, raw)
    assert r.status_code == 400
    assert "surrogate" in r.json()["message"]


def test_a_surrogate_pair_is_a_valid_username(http, archive, alice):
    r = post_raw(http, LOGIN, rb'{"username": "\ud83d\ude00", "password": "x"}')
    assert r.status_code == 401  # an unknown user, not a malformed body


def test_lone_surrogates_in_the_manifests_body_are_400(http, archive, alice):
    token = make_token(archive, "alice")
    r = post_raw(http, MANIFESTS, rb'{"ids": ["\ud800"]}', Authorization=f"Bearer {token}")
    assert r.status_code == 400
    assert "surrogate" in r.json()["message"]


@pytest.mark.parametrize("path", [LOGIN, MANIFESTS, "/api/auth/refresh"])
def test_json_nested_1000_deep_is_400_naming_the_limit(http, archive, alice, path):
    token = make_token(archive, "alice")
    raw = b'{"ids": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = post_raw(http, path, raw, Authorization=f"Bearer {token}")
    assert r.status_code == 400
    assert f"at most {MAX_JSON_DEPTH} levels" in r.json()["message"]


def test_brackets_inside_strings_do_not_count_as_nesting(http, archive, alice):
    password = "[" * 500 + '\\"{' * 100
    r = post_raw(http, LOGIN, json.dumps({"username": "alice", "password": password}).encode())
    assert r.status_code == 401


def test_an_unterminated_string_is_a_plain_400(http, alice):
    r = post_raw(http, LOGIN, b'{"username": "' + b'\\"[' * 50_000)
    assert r.status_code == 400
    assert "valid JSON" in r.json()["message"]


def test_a_body_over_the_limit_is_413_in_process_too(http, alice):
    r = post_raw(http, LOGIN, b" " * (MAX_BODY + 1))
    assert r.status_code == 413


def test_the_body_limit_is_a_setting(tmp_path):
    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app

    app = create_app(Settings(data_dir=tmp_path / "d", max_body_bytes=100, max_url_bytes=100))
    with TestClient(app) as client:
        assert post_raw(client, LOGIN, b"{" + b" " * 200 + b"}").status_code == 413
        assert client.get("/api/warehouse/project?find=" + "a" * 100).status_code == 414
        # within both limits: the route answers
        assert post_raw(client, LOGIN, b'{"username": "x", "password": "y"}').status_code == 401


# --- headers -----------------------------------------------------------------------------------


def test_a_range_with_thousands_of_digits_is_400(live_server):
    import requests

    login = requests.post(
        live_server.url + LOGIN, json={"username": "demo", "password": "demo"}, timeout=30
    )
    token = login.json()["jwt"]
    listing = requests.get(
        live_server.url + "/api/warehouse/dataset",
        params={"limit": 1, "find": json.dumps({"status": "stored"})},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    dataset_id = listing.json()["datasets"][0]["_id"]
    for header in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000):
        r = requests.get(
            f"{live_server.url}/api/warehouse/dataset/download/{dataset_id}",
            headers={"Authorization": f"Bearer {token}", "Range": header},
            timeout=30,
        )
        assert r.status_code == 400, header[:20]
        assert "Range" in r.json()["message"]
