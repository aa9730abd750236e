"""Where the server is, where the token lives, which certificates to trust.

The official CLI reads only ``BLHOST`` (default ``brainlife.io``) and always speaks https; its token
lives in ``$HOME/.config/<BLHOST>/.jwt``. We read the same variable and the same file, so one login
serves both CLIs. A ``BLHOST`` with a scheme (``http://127.0.0.1:8080``) is used as given; the token
folder is named after the host with the scheme stripped.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from brainlife.client._exceptions import ConfigError

__all__ = ["DEFAULT_HOST", "Config", "read_token_file", "resolve_config", "write_token_file"]

DEFAULT_HOST = "brainlife.io"


@dataclass(frozen=True)
class Config:
    """Resolved settings of one client."""

    #: ``scheme://host[:port][/prefix]`` without a trailing slash
    base_url: str
    #: the folder name under ``~/.config`` (BLHOST without its scheme)
    host_key: str
    token_path: Path
    #: extra CA certificates to trust (PEM files), in order
    ca_files: tuple[Path, ...] = ()


def _split_host(blhost: str) -> tuple[str, str]:
    """``(base_url, host_key)`` for a BLHOST value."""
    value = blhost.strip()
    if not value:
        raise ConfigError("BLHOST is empty: set it to a host such as 'brainlife.io' or unset it.")
    unusable = ConfigError(
        f"BLHOST={blhost!r} is not a usable address: use 'host[:port]' or "
        "'http(s)://host[:port]' (a port is a number up to 65535)."
    )
    base = value.rstrip("/") if "://" in value else f"https://{value.rstrip('/')}"
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not one
    except ValueError:
        raise unusable from None
    if parts.scheme not in ("http", "https") or not parts.hostname or "?" in base or "#" in base:
        raise unusable
    return base, base.split("://", 1)[1]


def resolve_config(
    host: str | None = None,
    *,
    ca_bundle: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> Config:
    """Settings from explicit values, else from BLHOST, BL_CA_BUNDLE, NODE_EXTRA_CA_CERTS."""
    blhost = host if host is not None else (os.environ.get("BLHOST") or DEFAULT_HOST)
    base_url, host_key = _split_host(blhost)
    home_dir = Path(home) if home is not None else Path(os.environ.get("HOME") or Path.home())
    token_path = home_dir / ".config" / host_key / ".jwt"
    ca_files: list[Path] = []
    for value in (
        str(ca_bundle) if ca_bundle else None,
        None if ca_bundle else os.environ.get("BL_CA_BUNDLE"),
        os.environ.get("NODE_EXTRA_CA_CERTS"),
    ):
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"The certificate bundle {path} does not exist: fix it, BL_CA_BUNDLE or "
                "NODE_EXTRA_CA_CERTS (for a TLS 'bl serve' it is <data-dir>/tls/cert.pem).",
                hint="ca-bundle",
            )
        if path not in ca_files:
            ca_files.append(path)
    return Config(
        base_url=base_url, host_key=host_key, token_path=token_path, ca_files=tuple(ca_files)
    )


def read_token_file(path: Path) -> str | None:
    """The stored token, or None when there is no file."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot read your access token {path}: {exc.strerror}.") from exc
    return text.strip() or None


def write_token_file(path: Path, token: str) -> None:
    """Write the raw token atomically: folder 0700, file 0600, no newline (as the official)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".jwt.", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(token)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"Cannot save your access token to {path}: {exc.strerror}.") from exc
