"""`bl serve --tls`'s certificate: a leaf for the served names only, that whoever holds its key
cannot use to vouch for another site; node (the official CLI's runtime) and Python trust it."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from brainlife.server.tls import VALIDITY_DAYS, default_names, ensure_certificate


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def san(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(getattr(n, "value", n)) for n in names}


def test_the_certificate_is_a_short_lived_leaf_for_the_names(tmp_path):
    cert_path, key_path, why = ensure_certificate(tmp_path, default_names("127.0.0.1"))
    assert why is None
    cert = load(cert_path)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=VALIDITY_DAYS)
    assert {"localhost", "127.0.0.1", "::1", socket.gethostname()} <= san(cert)
    assert key_path.stat().st_mode & 0o777 == 0o600


def mint(key_path: Path, issuer: x509.Certificate, name: str, tmp_path: Path) -> tuple[Path, Path]:
    """What a reader of key.pem could do: sign a certificate for another site."""
    signer = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_out, key_out = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_out.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    key_out.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_out, key_out


def tls_listener(cert: Path, key: Path) -> tuple[int, threading.Thread]:
    """A TLS server on 127.0.0.1 answering `HTTP/1.0 200` to each of a few connections."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(30)

    def serve() -> None:
        with sock:
            for _ in range(2):
                try:
                    conn, _addr = sock.accept()
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(4096)
                        tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except (OSError, ssl.SSLError):
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock.getsockname()[1], thread


def python_trusts(port: int, ca: Path, hostname: str) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return tls.recv(100).startswith(b"HTTP/1.0 200")
    except ssl.SSLCertVerificationError:
        return False


NODE_GET = """
const https = require('https');
const req = https.get({host: '127.0.0.1', port: process.argv[1], servername: process.argv[2],
                       path: '/', headers: {host: process.argv[2]}}, (res) => {
  console.log('ok ' + res.statusCode); res.resume(); });
req.on('error', (e) => console.log('error ' + e.code));
"""


def node_trusts(port: int, ca: Path, hostname: str) -> str:
    out = subprocess.run(
        ["node", "-e", NODE_GET, str(port), hostname],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "NODE_EXTRA_CA_CERTS": str(ca)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("client", ["python", "node"])
def test_the_key_cannot_vouch_for_another_site(tmp_path, client):
    if client == "node" and shutil.which("node") is None:
        pytest.fail("node is needed: the official CLI runs on it")
    cert_path, key_path, _ = ensure_certificate(tmp_path / "tls", ["localhost", "127.0.0.1"])
    forged_cert, forged_key = mint(key_path, load(cert_path), "bank.example", tmp_path)

    genuine_port, _ = tls_listener(cert_path, key_path)
    forged_port, _ = tls_listener(forged_cert, forged_key)
    if client == "python":
        assert python_trusts(genuine_port, cert_path, "localhost")
        assert not python_trusts(forged_port, cert_path, "bank.example")
    else:
        assert node_trusts(genuine_port, cert_path, "localhost") == "ok 200"
        assert node_trusts(forged_port, cert_path, "bank.example").startswith("error ")


def old_style_ca(tls_dir: Path) -> bytes:
    """The certificate older `bl serve --tls` made: an unconstrained CA for ten years."""
    tls_dir.mkdir(parents=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bl serve (self-signed)")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tls_dir / "cert.pem").write_bytes(pem)
    (tls_dir / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


def test_an_old_ca_certificate_is_replaced_saying_why(tmp_path):
    old = old_style_ca(tmp_path / "tls")
    cert_path, _key, why = ensure_certificate(tmp_path / "tls", ["localhost"])
    assert why is not None and "CA" in why
    assert cert_path.read_bytes() != old
    assert (
        load(cert_path).extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    )


def test_a_certificate_lacking_a_requested_name_is_replaced_and_a_good_one_kept(tmp_path):
    cert_path, _key, _ = ensure_certificate(tmp_path, ["localhost", "127.0.0.1"])
    first = cert_path.read_bytes()
    assert ensure_certificate(tmp_path, ["127.0.0.1"])[2] is None  # a subset: kept
    assert cert_path.read_bytes() == first
    _cert, _key, why = ensure_certificate(tmp_path, ["localhost", "archive.lab.example"])
    assert why is not None and "archive.lab.example" in why
    assert "archive.lab.example" in san(load(cert_path))


def test_bl_serve_tls_name_option(tmp_path):
    from tests.conftest import start_server, stop_server

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    old_style_ca(data_dir / "tls")
    server = start_server(
        data_dir, tls=True, extra=["--tls-name", "localhost", "--tls-name", "archive.lab.example"]
    )
    try:
        assert server.cert is not None
        cert = load(server.cert)
        assert san(cert) == {"localhost", "archive.lab.example"}
        import requests

        # `Connection: close`: a TLS connection left open holds the server's graceful shutdown
        # until the client answers its close_notify (stop_server then kills it after 10 s)
        r = requests.get(
            f"https://localhost:{server.port}/api/warehouse/health",
            verify=str(server.cert),
            headers={"Connection": "close"},
        )
        assert r.status_code == 200
    finally:
        stop_server(server)
    assert server.process.returncode == -signal.SIGTERM  # stopped, not killed after 10 s
    log = (data_dir.parent / f"server-{server.port}.log").read_text()
    assert "replaced the TLS certificate (it is a CA certificate" in log


def test_stop_server_is_not_held_by_a_dropped_keep_alive_connection(tmp_path):
    """The fixtures' `stop_server` after a client that kept its TLS connection open and was then
    dropped (as the clients of `bl` commands run in-process by CliRunner are): a clean SIGTERM
    stop, not the kill after 10 s that the server's wait for the TLS close would end in."""
    import urllib3

    from tests.conftest import start_server, stop_server

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, tls=True)
    try:
        client: dict[str, object] = {"pool": urllib3.PoolManager(ca_certs=str(server.cert))}
        client["self"] = client  # a reference cycle, as a client's objects often hold
        pool = client["pool"]
        assert isinstance(pool, urllib3.PoolManager)
        assert pool.request("GET", server.url + "/api/warehouse/health").status == 200
        del client, pool  # dropped, but its connection stays open until the cycle is collected
    finally:
        stop_server(server)
    assert server.process.returncode == -signal.SIGTERM
