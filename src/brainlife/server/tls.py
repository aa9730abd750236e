"""A self-signed certificate for `bl serve --tls`, made once and kept in the data directory.

The official CLI only speaks https; point it at this certificate with NODE_EXTRA_CA_CERTS, and our
client with BL_CA_BUNDLE (or --ca-bundle).

Whoever trusts `cert.pem` trusts what it vouches for, and whoever reads `tls/key.pem` can sign
with it. So the certificate is a leaf that can vouch for nothing else: `CA:FALSE` (critical),
key usage limited to signing the TLS handshake, `serverAuth` only, valid for `VALIDITY_DAYS` (the
CA/Browser Forum's old 825-day ceiling, which macOS/iOS still enforce), for the names it is made
for (`bl serve --tls-name`, default `default_names`). A certificate signed with its key for any
other site is refused by OpenSSL (Python, node) as "invalid CA certificate". Node and OpenSSL
accept a self-signed leaf as its own trust anchor (checked by tests/server/test_tls.py with
node and Python).

A certificate already in the data directory is reused unless it is a CA (made by an older `bl
serve`: a CA with its key on disk could mint certificates for any site), lacks a requested name,
or is expired or about to be: then it is replaced, and `ensure_certificate` says why.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VALIDITY_DAYS = 825
#: A certificate closer than this to its end is replaced at startup.
RENEW_BEFORE = timedelta(days=30)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def default_names(host: str) -> list[str]:
    """localhost, the loopback addresses, this machine's host name, and `host` when it names
    one interface (not a wildcard)."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if host not in _WILDCARD_HOSTS:
        names.append(host)
    return list(dict.fromkeys(n for n in names if n))


def _general_name(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name.lower())


def _problem(cert_path: Path, names: Iterable[str]) -> str | None:
    """Why the certificate at `cert_path` cannot be kept, or None."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return "it cannot be read"
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = True  # X.509 v1 certificates are treated as CAs by some verifiers
    if is_ca:
        return "it is a CA certificate, which could vouch for any site"
    try:
        have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        have = set()
    missing = [n for n in names if _general_name(n) not in have]
    if missing:
        return "it is not made for " + ", ".join(missing)
    if cert.not_valid_after_utc - datetime.now(UTC) < RENEW_BEFORE:
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def ensure_certificate(tls_dir: Path, names: Iterable[str]) -> tuple[Path, Path, str | None]:
    """`(cert.pem, key.pem, why)`: the certificate for `names`, made now (`why` says why an
    existing one was replaced) or reused (`why` is None)."""
    names = list(dict.fromkeys(names))
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    why = None
    if cert_path.exists() and key_path.exists():
        why = _problem(cert_path, names)
        if why is None:
            return cert_path, key_path, None
    _make(tls_dir, names)
    return cert_path, key_path, why


def _make(tls_dir: Path, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bl serve ({names[0]})")])
    now = datetime.now(UTC)
    no_usage: dict[str, bool] = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now - timedelta(minutes=5) + timedelta(days=VALIDITY_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, **no_usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_path = tls_dir / "key.pem"
    key_path.unlink(missing_ok=True)  # a new file, created 0600 (an old one may be wider)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    (tls_dir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
