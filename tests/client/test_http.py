"""Requests, error mapping and retries against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import time

import pytest

from brainlife.client import (
    ApiError,
    AuthError,
    BrainlifeError,
    Client,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)
from tests.fake_server import FakeServer, Req, valid_jwt


def client(fake: FakeServer, **kw: object) -> Client:
    return Client(fake.url, token=valid_jwt(), backoff=0.01, **kw)  # type: ignore[arg-type]


def test_query_params_are_json_and_bearer_sent(fake: FakeServer) -> None:
    fake.json("GET", "/api/warehouse/pub", {"pubs": [{"_id": "p"}], "count": 1})
    assert client(fake).pubs(query="o3d") == [{"_id": "p"}]
    (req,) = fake.requests
    assert req.json_param("find") == {
        "removed": False,
        "$and": [
            {
                "$or": [
                    {"name": {"$regex": "o3d", "$options": "ig"}},
                    {"desc": {"$regex": "o3d", "$options": "ig"}},
                ]
            }
        ],
    }
    assert req.json_param("sort") == {"name": 1}
    assert (req.query["skip"], req.query["limit"]) == ("0", "100")
    assert req.token is not None


@pytest.mark.parametrize(
    ("status", "body", "exc", "match"),
    [
        (401, {"message": "jwt expired"}, AuthError, "expired.*bl login"),
        (500, {"message": "UnauthorizedError: jwt expired"}, AuthError, "bl login"),
        (500, {"message": "UnauthorizedError: invalid signature"}, AuthError, "bl login"),
        (403, {"err": "you don't have access"}, PermissionDenied, "you don't have access"),
        (404, {"message": "no such project"}, NotFound, "no such project"),
        (500, {"message": "boom"}, ApiError, "HTTP 500: boom"),
        (400, {"message": "bad find"}, ApiError, "bad find"),
    ],
)
def test_error_statuses_map_to_exceptions(
    fake: FakeServer, status: int, body: dict[str, str], exc: type[Exception], match: str
) -> None:
    fake.json("GET", "/api/warehouse/project", body, status=status)
    with pytest.raises(exc, match=match):
        client(fake).projects()


def test_a_rejected_token_says_to_log_in_once(fake: FakeServer) -> None:
    said = "Your token is not valid for this server. Please log in again (run 'bl login')."
    fake.json("GET", "/api/warehouse/project", {"message": said}, status=401)
    with pytest.raises(AuthError) as info:
        client(fake).projects()
    assert str(info.value).count("bl login") == 1, str(info.value)
    assert "not valid for this server" in str(info.value)


@pytest.mark.parametrize(("method", "status"), [("GET", 404), ("POST", 501), ("GET", 405)])
def test_an_html_error_page_for_an_api_route_asks_whether_blhost_is_right(
    fake: FakeServer, method: str, status: int
) -> None:
    """A web server that is not brainlife's (`python3 -m http.server`, a proxy's own page)
    answers every API route with an HTML error page: the error names the route and BLHOST, not
    just 'Not found: an HTML page'."""
    page = b"<html><head><title>Error response</title></head><body>nope</body></html>"
    fake.route(
        method, "/api/auth/local/auth", lambda r: (status, {"Content-Type": "text/html"}, page)
    )
    fake.route(
        method, "/api/warehouse/project", lambda r: (status, {"Content-Type": "text/html"}, page)
    )
    c = client(fake)
    with pytest.raises(BrainlifeError) as info:
        if method == "POST":
            c.login("demo", "demo")
        else:
            c.projects()
    message = str(info.value)
    assert "/api/" in message and fake.url in message and "BLHOST" in message, message
    if status == 404:
        assert isinstance(info.value, NotFound)  # still exit 3: brainlife.io's own 404s stay


def test_a_json_404_says_what_the_server_said(fake: FakeServer) -> None:
    fake.json("GET", "/api/warehouse/project", {"message": "no such project"}, status=404)
    with pytest.raises(NotFound) as info:
        client(fake).projects()
    assert str(info.value) == "Not found: no such project"


def test_a_404_that_is_a_sentence_is_said_as_it_is(fake: FakeServer) -> None:
    """Our server's 404s are whole sentences ("Nothing to release: …"): no "Not found: " before
    them (it read "Not found: Nothing to release: …")."""
    said = "Nothing to release: no stored data object of the project matches. Try --dry-run."
    fake.json("GET", "/api/warehouse/project", {"message": said}, status=404)
    with pytest.raises(NotFound) as info:
        client(fake).projects()
    assert str(info.value) == said


def test_malformed_json_is_called_so(fake: FakeServer) -> None:
    fake.route(
        "GET",
        "/api/warehouse/datatype",
        lambda r: (200, {"Content-Type": "application/json"}, b'{"datatypes": [1, 2'),
    )
    with pytest.raises(ProtocolError) as info:
        client(fake).datatypes()
    assert "application/json instead of JSON" not in str(info.value)
    assert "malformed JSON" in str(info.value)


def test_html_instead_of_json_is_a_protocol_error(fake: FakeServer) -> None:
    fake.route(
        "GET",
        "/api/warehouse/datatype",
        lambda r: (200, {"Content-Type": "text/html"}, b"<html><body>hi</body></html>"),
    )
    with pytest.raises(ProtocolError, match="HTML page instead of JSON"):
        client(fake).datatypes()


def test_retries_honour_retry_after(fake: FakeServer) -> None:
    answers = iter(
        [
            (503, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"message":"busy"}'),
            (200, {"Content-Type": "application/json"}, json.dumps({"datatypes": []}).encode()),
        ]
    )
    fake.route("GET", "/api/warehouse/datatype", lambda r: next(answers))
    start = time.monotonic()
    assert client(fake).datatypes() == []
    assert time.monotonic() - start >= 0.9
    assert len(fake.requests) == 2


def test_gives_up_on_persistent_503(fake: FakeServer) -> None:
    fake.json("GET", "/api/warehouse/datatype", {"message": "down"}, status=503)
    with pytest.raises(ServerUnavailable, match="unavailable"):
        client(fake, retries=2).datatypes()
    assert len(fake.requests) == 3


def test_post_is_not_retried_on_status(fake: FakeServer) -> None:
    fake.json("POST", "/api/auth/refresh", {"message": "busy"}, status=503)
    with pytest.raises(ServerUnavailable):
        client(fake).refresh()
    assert len(fake.requests) == 1


def test_server_down_is_server_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Client(f"http://127.0.0.1:{port}", token=valid_jwt(), retries=1, backoff=0.01)
    with pytest.raises(ServerUnavailable, match=r"Cannot connect.*BLHOST"):
        c.datatypes()


def test_expired_token_is_caught_before_sending(fake: FakeServer) -> None:
    from tests.fake_server import make_jwt

    c = Client(fake.url, token=make_jwt(exp=time.time() - 1))
    with pytest.raises(AuthError, match="expired"):
        c.find_datasets({})
    assert fake.requests == []


def test_login_writes_token_and_maps_failure(fake: FakeServer) -> None:
    jwt = valid_jwt()

    def login(req: Req) -> tuple[int, dict[str, str], bytes]:
        body = json.loads(req.body)
        if body["password"] != "pw":
            return (
                401,
                {"Content-Type": "application/json"},
                b'{"message":"Incorrect user/password"}',
            )
        assert body == {"username": "alice", "password": "pw", "ttl": 604800000}
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"message": "Login Success", "jwt": jwt, "sub": 1}).encode(),
        )

    fake.route("POST", "/api/auth/local/auth", login)
    c = Client(fake.url)
    result = c.login("alice", "pw")
    assert result.token_path is not None and result.token_path.read_text() == jwt
    assert c.token() == jwt
    with pytest.raises(AuthError, match="Login failed: Incorrect user/password"):
        c.login("alice", "wrong")
    assert c.logout() is True
    assert c.logout() is False


def test_refresh_sends_ttl_in_ms(fake: FakeServer) -> None:
    new = valid_jwt()
    fake.json("POST", "/api/auth/refresh", {"jwt": new})
    c = client(fake)
    assert c.refresh(ttl_days=2) == new
    assert json.loads(fake.requests[0].body) == {"ttl": 2 * 86400000}
    assert c.config.token_path.read_text() == new


def test_iter_datasets_is_lazy_and_pages(fake: FakeServer) -> None:
    rows = [{"_id": f"{i:024x}"} for i in range(5)]

    def page(req: Req) -> tuple[int, dict[str, str], bytes]:
        skip, limit = int(req.query["skip"]), int(req.query["limit"])
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"datasets": rows[skip : skip + limit], "count": len(rows)}).encode(),
        )

    fake.route("GET", "/api/warehouse/dataset", page)
    it = client(fake).iter_datasets(page_size=2, subject="0001")
    assert fake.requests == []
    assert next(it) == rows[0]
    assert len(fake.requests) == 1
    assert [r["_id"] for r in it] == [r["_id"] for r in rows[1:]]
    assert [r.query["skip"] for r in fake.requests] == ["0", "2", "4"]
    assert fake.requests[0].json_param("find") == {
        "removed": False,
        "$and": [{"meta.subject": "0001"}],
    }


def test_a_download_that_gave_up_does_not_stop_later_queries(fake: FakeServer) -> None:
    from brainlife.client import GaveUp

    fake.json("GET", "/api/warehouse/datatype", {"datatypes": []})
    fake.json("GET", "/f", {"message": "down"}, status=503)
    c = Client(fake.url, token=valid_jwt(), backoff=0.01, give_up_after=0.5)
    with pytest.raises(GaveUp, match=r"HTTP 503"), c.http.stream("/f"):
        pass
    assert c.datatypes() == []  # the expired clock is the download's business, not the query's


def test_retry_after_as_an_http_date_is_understood() -> None:
    from email.utils import formatdate

    from brainlife.client._http import retry_after

    assert retry_after("7") == 7.0
    assert 3000 < (retry_after(formatdate(time.time() + 3600, usegmt=True)) or 0) <= 3600
    assert retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None
