"""RS256 tokens with brainlife's claims. The key pair is made on first start and kept in
`<data_dir>/keys/` (private key 0600), unless the private key is given (`signing_keys`): replicas
of one archive (`bl serve` processes on several machines, docs/deploy.md) must sign with the same
key, so that a token one of them issued is accepted by the others."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from brainlife.server.errors import LOGIN_AGAIN, Unauthorized
from brainlife.server.principal import Principal


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


def load_or_create_keys(keys_dir: Path) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_path = keys_dir / "auth.key"
    public_path = keys_dir / "auth.pub"
    if not private_path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_private(private_path, private_pem)
        public_path.write_bytes(public_pem)
    return KeyPair(private_path.read_bytes(), public_path.read_bytes())


class SigningKeyError(ValueError):
    """A given signing key that cannot be used; the message says which and why."""


def keys_from_private_pem(pem: bytes, where: str) -> KeyPair:
    """The key pair of an unencrypted PEM RSA private key (PKCS#8 or PKCS#1, at least 2048
    bits), as `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072` writes it; `where`
    names its origin in the error."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise SigningKeyError(
            f"the signing key in {where} is encrypted: give it unencrypted "
            "(openssl pkey -in KEY -out PLAIN), readable by the server's user only"
        ) from None
    except (ValueError, Exception):
        raise SigningKeyError(
            f"{where} holds no PEM private key (make one with: openssl genpkey -algorithm RSA "
            "-pkeyopt rsa_keygen_bits:3072 -out KEY)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise SigningKeyError(
            f"the signing key in {where} must be an RSA key of at least 2048 bits "
            "(tokens are RS256, as brainlife.io's)"
        )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(pem, public_pem)


def signing_keys(
    keys_dir: Path, *, pem: bytes | None = None, key_file: Path | None = None
) -> KeyPair:
    """The key pair tokens are signed with: the PEM given (`BL_SIGNING_KEY`), else the key file
    (`--key-file`, `BL_SIGNING_KEY_FILE`), else the data directory's own pair (made on first
    start). Given keys are never written to the data directory."""
    if pem is not None and key_file is not None:
        raise SigningKeyError(
            "both BL_SIGNING_KEY and a key file (--key-file, BL_SIGNING_KEY_FILE) are set: "
            "give the signing key one way"
        )
    if pem is not None:
        return keys_from_private_pem(pem, "BL_SIGNING_KEY")
    if key_file is not None:
        try:
            data = key_file.read_bytes()
        except OSError as exc:
            raise SigningKeyError(
                f"cannot read the signing key file {key_file}: {exc.strerror or exc}"
            ) from None
        return keys_from_private_pem(data, str(key_file))
    return load_or_create_keys(keys_dir)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


#: the claim of a download script's token: the ids of the data objects it may read
DATASETS_CLAIM = "bl_datasets"


class TokenSigner:
    def __init__(self, keys: KeyPair, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer

    @functools.cached_property
    def _private_key(self) -> Any:
        """The private key, parsed once: PyJWT given the PEM parses and checks the RSA key on
        every call, ~50 ms of CPU per token (each login, refresh and download script), where
        signing with the parsed key takes under a millisecond."""
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self.keys.private_pem, password=None)

    @functools.cached_property
    def _public_key(self) -> Any:
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_public_key(self.keys.public_pem)

    def sign(self, claims: dict[str, Any], ttl_ms: float) -> str:
        now = time.time()
        body = {"iss": self.issuer, **claims, "exp": (now * 1000 + ttl_ms) / 1000, "iat": int(now)}
        return jwt.encode(body, self._private_key, algorithm="RS256")

    def decode(self, token: str) -> dict[str, Any]:
        """Verify signature and expiry; raise Unauthorized with a message that says what to do."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "sub"], "verify_iss": False, "verify_sub": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(f"Your token has expired. {LOGIN_AGAIN}") from None
        except jwt.InvalidTokenError:
            raise Unauthorized(f"Your token is not valid for this server. {LOGIN_AGAIN}") from None
        return claims

    def principal(self, token: str) -> Principal:
        claims = self.decode(token)
        try:
            sub = int(claims["sub"])
        except (TypeError, ValueError):
            raise Unauthorized(f"Your token has no valid user id. {LOGIN_AGAIN}") from None
        gids = tuple(int(g) for g in claims.get("gids") or [] if isinstance(g, int | float))
        profile = claims.get("profile") or {}
        scopes = claims.get("scopes") if isinstance(claims.get("scopes"), dict) else {}
        jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        if DATASETS_CLAIM in claims:
            listed = claims[DATASETS_CLAIM]
            if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                raise Unauthorized(f"Your token's scope is malformed. {LOGIN_AGAIN}")
            # a scoped token carries no groups or scopes: it cannot act as its user elsewhere
            return Principal(sub=sub, datasets=frozenset(listed), jti=jti)
        return Principal(
            sub=sub, gids=gids, scopes=scopes or {}, username=profile.get("username"), jti=jti
        )
