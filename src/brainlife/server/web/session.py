"""Who is visiting the web pages, and CSRF protection of their forms.

Signing in (`/signin`) calls the same login as `POST /api/auth/local/auth` and keeps the signed
token in a cookie (`bl_session`: HttpOnly, SameSite=Lax, Secure over https, i.e. under `--tls`),
so the pages apply exactly the API's access rules to the token's claims. The token never appears
in a URL or a page. The cookie's token is checked as an API token is (`auth.check_principal`): a
revoked token, or a disabled account's, makes the visitor anonymous. Signing out revokes the
session's token (its `jti`) before forgetting the cookie, so a copy of the cookie taken before
(another browser, a stolen backup) stops working at once rather than when the token expires.

Every form carries a CSRF token: an HMAC of the visitor's session id (the session token, or for an
anonymous visitor a random `bl_csrf` cookie) under a key derived from the archive's signing key.
A POST whose token does not match its own cookies is refused (403), whatever its origin: another
site can make a browser send the cookies, never read the token. Signing in changes the session id,
so tokens issued before it stop working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from brainlife.server.archive import Archive
from brainlife.server.deps import get_archive
from brainlife.server.errors import ApiError, Forbidden, Unauthorized
from brainlife.server.models import AuthToken, User
from brainlife.server.principal import Principal
from brainlife.server.services.accounts import (
    revoke_labelled_tokens,
    revoke_oldest_labelled_tokens,
    revoke_token,
)
from brainlife.server.services.auth import check_principal, claims_for, sign_recorded

SESSION_COOKIE = "bl_session"
ANON_COOKIE = "bl_csrf"
#: lifetime of a web session's token (milliseconds)
SESSION_TTL_MS = 12 * 3600 * 1000
CSRF_FIELD = "csrf"
#: lifetime of the bearer token a page's upload script gets (`upload_token`, milliseconds)
UPLOAD_TOKEN_TTL_MS = 3600 * 1000
#: live upload tokens of one web session: a new one revokes the oldest past this (each call
#: recorded a token row, however many a script asked for)
MAX_UPLOAD_TOKENS = 8


@dataclass
class Visitor:
    principal: Principal | None
    #: what the CSRF token is tied to: the session token, or the anonymous cookie's value
    session_id: str
    #: a new anonymous id to set as a cookie with the response
    new_anon: bool = False
    #: the session cookie held a token no longer valid: clear it
    drop_session: bool = False

    @property
    def username(self) -> str | None:
        if self.principal is None:
            return None
        return self.principal.username or f"user {self.principal.sub}"


def _key(archive: Archive) -> bytes:
    return hashlib.sha256(b"brainlife web csrf\x00" + archive.signer.keys.private_pem).digest()


def csrf_token(archive: Archive, visitor: Visitor) -> str:
    return hmac.new(_key(archive), visitor.session_id.encode(), hashlib.sha256).hexdigest()


def visitor(request: Request, archive: Annotated[Archive, Depends(get_archive)]) -> Visitor:
    """The visitor of a page: signed in (a valid session cookie) or anonymous."""
    token = request.cookies.get(SESSION_COOKIE)
    drop = False
    if token:
        try:
            return Visitor(_checked(archive, archive.signer.principal(token)), token)
        except ApiError:
            drop = True  # expired, revoked or from another key: carry on as anonymous
    anon = request.cookies.get(ANON_COOKIE) or ""
    if len(anon) == 43 and anon.replace("-", "").replace("_", "").isalnum():
        return Visitor(None, anon, drop_session=drop)
    return Visitor(None, secrets.token_urlsafe(32), new_anon=True, drop_session=drop)


def _checked(archive: Archive, principal: Principal) -> Principal:
    with archive.read_session() as session:
        check_principal(session, principal)
    return principal


def check_csrf(archive: Archive, visitor: Visitor, form: dict[str, str]) -> None:
    """Refuse a form whose CSRF token is missing or is not this session's."""
    sent = form.get(CSRF_FIELD, "")
    if visitor.new_anon or not hmac.compare_digest(sent, csrf_token(archive, visitor)):
        raise Forbidden(
            "This form has expired or did not come from this site (CSRF check failed): "
            "reload the page and submit it again."
        )


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def remember(request: Request, response: Response, visitor: Visitor) -> None:
    """Set or clear the cookies a page's visitor needs."""
    if visitor.drop_session:
        response.delete_cookie(SESSION_COOKIE, path="/")
    if visitor.new_anon:
        response.set_cookie(
            ANON_COOKIE,
            visitor.session_id,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )


def sign_in(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_MS // 1000,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(ANON_COOKIE, path="/")


def sign_out(archive: Archive, visitor: Visitor, response: Response) -> None:
    """Revoke the session's token (a token without an id, signed by a tool holding the key,
    cannot be revoked: it expires) and forget the cookie."""
    principal = visitor.principal
    if principal is not None and principal.jti is not None:
        with archive.session() as session:
            revoke_token(session, principal.jti, principal=principal)
            revoke_labelled_tokens(session, sub=principal.sub, label=_upload_label(principal))
            session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")


def _upload_label(principal: Principal) -> str:
    return f"web upload {principal.jti}"


def upload_token(archive: Archive, visitor: Visitor) -> str:
    """A bearer token for the page's upload script (the API's upload routes take bearer tokens
    only, so the cookie never authorises an API call): the session's claims fresh from the
    database, for `UPLOAD_TOKEN_TTL_MS` at most and never past the session, recorded with the
    session's id so that signing out revokes it too. Handed out only to a CSRF-checked POST
    (`POST /upload-token`), in a response body, never in a URL."""
    principal = visitor.principal
    if principal is None or principal.jti is None or principal.scoped:
        raise Unauthorized("Sign in to upload.")
    with archive.session() as session:
        user = session.get(User, principal.sub)
        if user is None or not user.active:
            raise Unauthorized("This account no longer exists or is disabled.")
        row = session.get(AuthToken, principal.jti)
        ends = row.expires if row is not None else datetime.now(UTC)
        ends = ends if ends.tzinfo is not None else ends.replace(tzinfo=UTC)  # SQLite: naive
        left = (ends - datetime.now(UTC)).total_seconds() * 1000
        ttl = min(UPLOAD_TOKEN_TTL_MS, left)
        if ttl < 60_000:
            raise Unauthorized("Your session is about to end: sign in again to upload.")
        # leave room for one more: an upload still using a revoked one is told to sign in again
        revoke_oldest_labelled_tokens(
            session, sub=principal.sub, label=_upload_label(principal), keep=MAX_UPLOAD_TOKENS - 1
        )
        token = sign_recorded(
            session, archive, claims_for(session, user), ttl, _upload_label(principal)
        )
        session.commit()
    return token


VisitorDep = Annotated[Visitor, Depends(visitor)]
