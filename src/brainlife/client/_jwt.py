"""Read a JWT's claims without checking its signature (the server does that).

Used to tell the user that the token expired before a request is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["decode_claims", "expires_at", "is_expired"]


def decode_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWT, or None when it cannot be decoded."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def expires_at(claims: dict[str, Any]) -> datetime | None:
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return datetime.fromtimestamp(exp, tz=UTC)


def is_expired(claims: dict[str, Any], *, now: float | None = None) -> bool:
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return False
    return exp < (time.time() if now is None else now)
