from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from brainlife.client import AuthError, Client, ConfigError, resolve_config
from brainlife.client._config import read_token_file, write_token_file
from brainlife.client._jwt import decode_claims, is_expired
from tests.fake_server import make_jwt


def test_default_host_is_brainlife_https() -> None:
    cfg = resolve_config()
    assert cfg.base_url == "https://brainlife.io"
    assert cfg.token_path == Path(os.environ["HOME"]) / ".config" / "brainlife.io" / ".jwt"


@pytest.mark.parametrize(
    ("blhost", "base", "key"),
    [
        ("127.0.0.1:8443", "https://127.0.0.1:8443", "127.0.0.1:8443"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443", "127.0.0.1:8443"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("example.org/prefix", "https://example.org/prefix", "example.org/prefix"),
    ],
)
def test_blhost_forms_share_the_official_token_folder(
    monkeypatch: pytest.MonkeyPatch, blhost: str, base: str, key: str
) -> None:
    monkeypatch.setenv("BLHOST", blhost)
    cfg = resolve_config()
    assert cfg.base_url == base
    assert cfg.host_key == key
    assert cfg.token_path.parent.name == key.split("/")[-1]


def test_bad_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BLHOST"):
        resolve_config("ftp://x")


@pytest.mark.parametrize(
    "blhost",
    [
        "http://[::1",  # was ValueError: Invalid IPv6 URL, an 'unexpected failure'
        "http://127.0.0.1:99999",  # was 'The connection … failed (Failed to parse …)', exit 5
        "http://127.0.0.1:abc",
        "127.0.0.1:abc",
        "http://",  # was https://http: 'the server is down or unreachable'
        "https:///x",
        "http://127.0.0.1:8080?x=1",
        "http://127.0.0.1:8080#top",
    ],
)
def test_a_malformed_blhost_is_a_config_error_naming_it(blhost: str) -> None:
    with pytest.raises(ConfigError, match="BLHOST") as info:
        resolve_config(blhost)
    assert "not a usable address" in str(info.value)


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), 1e308, -1.0, 0.0])
def test_a_token_lifetime_that_is_not_a_positive_number_of_days_is_refused(ttl: float) -> None:
    client = Client("http://127.0.0.1:9", token=make_jwt(time.time() + 600))
    with pytest.raises(ConfigError, match="days"):
        client.login("demo", "demo", ttl_days=ttl)
    with pytest.raises(ConfigError, match="days"):
        client.refresh(ttl_days=ttl)


def test_missing_ca_bundle_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BL_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match=r"nope.pem"):
        resolve_config()


def test_node_extra_ca_certs_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_text("x")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(pem))
    assert resolve_config().ca_files == (pem,)


def test_token_file_is_written_like_the_official_cli(tmp_path: Path) -> None:
    path = tmp_path / ".config" / "h" / ".jwt"
    write_token_file(path, "abc.def.ghi")
    assert path.read_bytes() == b"abc.def.ghi"  # raw, no newline
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_token_file(path) == "abc.def.ghi"
    assert list(path.parent.iterdir()) == [path]  # no temporary left


def test_jwt_claims_and_expiry() -> None:
    token = make_jwt(exp=time.time() - 10, sub=7)
    claims = decode_claims(token)
    assert claims is not None and claims["sub"] == 7
    assert is_expired(claims)
    assert not is_expired(decode_claims(make_jwt(exp=time.time() + 60)) or {})
    assert not is_expired(decode_claims(make_jwt()) or {})  # no exp: accepted, as the official
    assert decode_claims("garbage") is None


def test_expired_token_says_run_bl_login(tmp_path: Path) -> None:
    client = Client("http://127.0.0.1:9", token=make_jwt(exp=time.time() - 5))
    with pytest.raises(AuthError, match=r"expired.*bl login"):
        client.token()


def test_no_token_says_run_bl_login() -> None:
    with pytest.raises(AuthError, match=r"not logged in.*bl login"):
        Client("http://127.0.0.1:9").token()


def test_bl_token_env_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_jwt(exp=time.time() + 60)
    monkeypatch.setenv("BL_TOKEN", token)
    assert Client("http://127.0.0.1:9").token() == token


def test_undecodable_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthError, match="cannot be decoded"):
        Client("http://127.0.0.1:9", token="nope").token()
