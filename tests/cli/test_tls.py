"""`bl` against `bl serve --tls`: trusted through --ca-bundle, BL_CA_BUNDLE or NODE_EXTRA_CA_CERTS;
an untrusted certificate is a clear error, and so is the wrong scheme (http:// against a TLS server,
https:// against a plain one): it says which one to use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def tls_server(tls_live_server: LiveServer) -> LiveServer:
    """The session's read-only TLS server: these tests only read datatypes."""
    return tls_live_server


def test_untrusted_certificate_says_what_to_do(tls_server: LiveServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", tls_server.url)
    r = CliRunner().invoke(cli, ["datatype", "query", "-j"])
    assert r.exit_code == 1
    assert "--ca-bundle" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("how", ["option", "BL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"])
def test_trusted_certificate(tls_server: LiveServer, monkeypatch, how: str) -> None:  # type: ignore[no-untyped-def]
    assert tls_server.cert is not None
    monkeypatch.setenv("BLHOST", tls_server.url)
    args = ["datatype", "query", "-j"]
    if how == "option":
        args = ["--ca-bundle", str(tls_server.cert), *args]
    else:
        monkeypatch.setenv(how, str(tls_server.cert))
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)


def test_login_over_tls_shares_the_official_token_folder(
    tls_server: LiveServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", tls_server.url)
    monkeypatch.setenv("BL_CA_BUNDLE", str(tls_server.cert))
    r = CliRunner().invoke(cli, ["login", "--username", "demo", "--password-stdin"], input="demo\n")
    assert r.exit_code == 0, r.output
    assert (Path.home() / ".config" / tls_server.hostport / ".jwt").is_file()


def test_http_against_a_tls_server_says_to_use_https(tls_server: LiveServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", f"http://{tls_server.hostport}")
    r = CliRunner().invoke(cli, ["datatype", "query", "-j"])
    assert r.exit_code == 1, r.output
    assert f"use https://{tls_server.hostport}" in r.output
    assert "try again later" not in r.output.lower() and "Traceback" not in r.output


def test_https_against_a_plain_server_says_to_use_http(
    live_server: LiveServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLHOST", f"https://{live_server.hostport}")
    r = CliRunner().invoke(cli, ["datatype", "query", "-j"])
    assert r.exit_code == 1, r.output
    assert f"use http://{live_server.hostport}" in r.output
    assert "WRONG_VERSION_NUMBER" not in r.output and "--ca-bundle" not in r.output


def test_scheme_mistake_in_a_download_is_not_retried(
    tls_server: LiveServer, tmp_path: Path
) -> None:
    """A download (which waits for a server that is away) stops at once on the wrong scheme."""
    import subprocess
    import sys

    from tests.fake_server import valid_jwt

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BLHOST": f"http://{tls_server.hostport}",
    }
    env["BL_TOKEN"] = valid_jwt()
    task = "5a050ad5d76a2a002737e572"
    r = subprocess.run(
        # a give-up time beyond the subprocess timeout: retrying would fail the test
        [
            sys.executable,
            "-m",
            "brainlife",
            "task",
            "download",
            task,
            "out",
            "--give-up-after",
            "600",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "use https://" in r.stderr, r.stderr
