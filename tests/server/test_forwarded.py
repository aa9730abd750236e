"""Behind a reverse proxy (`proxy.ForwardedHeaders`, `bl serve --forwarded-allow-ips`): the
client address, scheme and host come from `X-Forwarded-*` only when the connection is a trusted
proxy's. What depends on them: the failed-login limits (per client address), the URL written
into download scripts, the cookies' `Secure` flag. Anyone else's headers change nothing, on a
real `bl serve` too (uvicorn, left alone, believes them from 127.0.0.1)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from brainlife.server.proxy import ForwardedHeaders, parse_trusted
from tests.conftest import LiveServer, make_token
from tests.server.test_auth import alice, cheap_hashes  # noqa: F401  (fixtures)

PROXY = ("10.1.0.7", 40000)


async def _scope_of(trusted: tuple[str, ...], scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(s: Any, _receive: Any, _send: Any) -> None:
        seen.update(s)

    await ForwardedHeaders(app, trusted)(scope, None, None)  # type: ignore[arg-type]
    return seen


def _http(client: tuple[str, int], **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "client": client,
        "headers": [(b"host", b"10.1.0.9:8080")]
        + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def _host(scope: dict[str, Any]) -> bytes:
    return dict(scope["headers"])[b"host"]


@pytest.mark.anyio
async def test_a_trusted_proxys_headers_give_client_scheme_and_host() -> None:
    scope = await _scope_of(
        ("10.1.0.0/16",),
        _http(
            PROXY,
            x_forwarded_for="198.51.100.4, 10.1.0.3",  # the client, then a proxy of ours
            x_forwarded_proto="https",
            x_forwarded_host="archive.example.org",
        ),
    )
    assert scope["client"] == ("198.51.100.4", 0)
    assert scope["scheme"] == "https"
    assert _host(scope) == b"archive.example.org"


@pytest.mark.anyio
async def test_anyone_elses_headers_change_nothing() -> None:
    for trusted in ((), ("10.2.0.0/16",), ("127.0.0.1",)):
        scope = await _scope_of(
            trusted,
            _http(
                PROXY,
                x_forwarded_for="203.0.113.9",
                x_forwarded_proto="https",
                x_forwarded_host="evil.example",
            ),
        )
        assert scope["client"] == PROXY and scope["scheme"] == "http"
        assert _host(scope) == b"10.1.0.9:8080"


@pytest.mark.anyio
async def test_a_forged_chain_yields_the_address_our_proxy_saw() -> None:
    # the client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the address it saw
    scope = await _scope_of(("10.1.0.7",), _http(PROXY, x_forwarded_for="1.1.1.1, 192.0.2.50"))
    assert scope["client"] == ("192.0.2.50", 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"x_forwarded_for": "not-an-ip"},
        {"x_forwarded_for": "192.0.2.1, junk"},
        {"x_forwarded_proto": "gopher"},
        {"x_forwarded_host": "evil.example/path"},
        {"x_forwarded_host": "a b"},
        {"x_forwarded_host": "x" * 300},
    ],
)
async def test_malformed_values_are_ignored(headers: dict[str, str]) -> None:
    scope = await _scope_of(("*",), _http(PROXY, **headers))
    assert scope["client"] == PROXY and scope["scheme"] == "http"
    assert _host(scope) == b"10.1.0.9:8080"


def test_a_bad_allow_list_is_refused_with_its_entry() -> None:
    assert parse_trusted(["127.0.0.1, 10.0.0.0/8", "*"]) == ("127.0.0.1", "10.0.0.0/8", "*")
    with pytest.raises(ValueError, match="'localhost' is not an IP address"):
        parse_trusted(["127.0.0.1,localhost"])


@pytest.fixture
def proxied(archive: Any) -> Any:
    """The app behind a proxy at 10.1.0.7 (the test client's address)."""
    from brainlife.server.app import create_app

    archive.settings.forwarded_allow_ips = ("10.1.0.7",)
    with TestClient(create_app(archive=archive), client=PROXY) as client:
        yield client


def _login(http: Any, password: str, client_ip: str) -> int:
    res = http.post(
        "/api/auth/local/auth",
        json={"username": "alice", "password": password},
        headers={"X-Forwarded-For": client_ip},
    )
    return int(res.status_code)


def test_login_limits_count_the_client_behind_the_proxy(
    cheap_hashes: Any,  # noqa: F811
    proxied: Any,
    archive: Any,
    alice: Any,  # noqa: F811
) -> None:
    for _ in range(archive.settings.max_failed_logins):
        assert _login(proxied, "wrong", "198.51.100.4") == 401
    assert _login(proxied, "s3cret", "198.51.100.4") == 429  # that client is locked out
    assert _login(proxied, "s3cret", "198.51.100.5") == 200  # the owner, elsewhere, is not


def test_secure_cookies_behind_a_tls_proxy(proxied: Any) -> None:
    https = proxied.get("/signin", headers={"X-Forwarded-Proto": "https"})
    assert https.status_code == 200
    assert "secure" in https.headers["set-cookie"].lower()
    plain = proxied.get("/signin")
    assert "secure" not in plain.headers["set-cookie"].lower()


def test_download_scripts_name_the_proxys_url(proxied: Any, archive: Any, alice: Any) -> None:  # noqa: F811
    res = proxied.post(
        "/api/warehouse/dataset/downscript",
        json={"find": {}, "limit": 1},
        headers={
            "Authorization": f"Bearer {make_token(archive, 'alice')}",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "archive.example.org",
        },
    )
    assert res.status_code == 200, res.text
    assert re.search(r"host='?https://archive\.example\.org'?\n", res.text)


def test_a_real_server_believes_no_one_by_default(live_server: LiveServer) -> None:
    """A client on the server's own machine (127.0.0.1) cannot pose as another address or
    scheme: uvicorn would believe it."""
    token = requests.post(
        f"{live_server.url}/api/auth/local/auth",
        json={"username": "hayashis", "password": "hayashis"},
        timeout=30,
    ).json()["jwt"]
    res = requests.post(
        f"{live_server.url}/api/warehouse/dataset/downscript",
        json={"find": {}, "limit": 1},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-For": "203.0.113.9",
        },
        timeout=30,
    )
    assert res.status_code == 200, res.text
    assert re.search(rf"host='?http://127\.0\.0\.1:{live_server.port}'?\n", res.text)


def test_redirects_name_the_proxys_url(proxied: Any) -> None:
    res = proxied.get(
        "/signin/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "archive.example.org"},
        follow_redirects=False,
    )
    assert res.status_code == 307
    assert res.headers["location"] == "https://archive.example.org/signin"


def test_a_real_servers_redirects_ignore_an_untrusted_clients_headers(
    live_server: LiveServer,
) -> None:
    res = requests.get(
        f"{live_server.url}/signin/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert res.status_code == 307
    assert res.headers["location"] == f"{live_server.url}/signin"
