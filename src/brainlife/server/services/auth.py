"""Users, passwords, logins and tokens (brainlife's auth service).

Passwords are hashed with Argon2id. Failed logins are recorded per username: each one is answered
slowly (the route waits `failed_login_delay`), and after `max_failed_logins` within
`lockout_window` seconds further attempts are refused with 429 until the window passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, NotFound, TooManyRequests, Unauthorized
from brainlife.server.models import GroupMember, LoginFailure, User
from brainlife.server.principal import Principal

_hasher = PasswordHasher()

DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000
MAX_TTL_MS = 365 * 24 * 3600 * 1000
BAD_LOGIN = "Incorrect user/password"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session,
    *,
    username: str,
    password: str | None,
    email: str | None = None,
    fullname: str = "",
    scopes: dict[str, Any] | None = None,
    sub: int | None = None,
    active: bool = True,
) -> User:
    """Add a user (flushed, not committed)."""
    user = User(
        username=username,
        email=email,
        fullname=fullname,
        password_hash=hash_password(password) if password is not None else None,
        active=active,
        scopes=scopes or {},
        profile={"public": {}, "private": {}},
        create_date=datetime.now(UTC),
    )
    if sub is not None:
        user.sub = sub
    session.add(user)
    session.flush()
    return user


def parse_ttl(value: Any) -> float:
    """`ttl` in milliseconds (brainlife's unit), as a number or a numeric string."""
    if value is None or value == "":
        return DEFAULT_TTL_MS
    try:
        ttl = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"ttl must be a number of milliseconds, not {value!r}") from None
    if not ttl > 0:
        raise BadRequest("ttl must be a positive number of milliseconds")
    return min(ttl, MAX_TTL_MS)


def gids_for(session: Session, sub: int) -> list[int]:
    """brainlife's `gids` claim: admin groups, then 0, then member-only groups."""
    rows = session.execute(
        select(GroupMember.group_id, GroupMember.role).where(GroupMember.sub == sub)
    ).all()
    admin = sorted({g for g, role in rows if role == "admin"})
    member = sorted({g for g, role in rows if role == "member"} - set(admin))
    return [*admin, 0, *member]


def claims_for(session: Session, user: User) -> dict[str, Any]:
    return {
        "scopes": user.scopes or {},
        "sub": user.sub,
        "gids": gids_for(session, user.sub),
        "profile": {
            "username": user.username,
            "email": user.email,
            "fullname": user.fullname,
            "aup": True,
        },
    }


@dataclass(frozen=True)
class LoginResult:
    jwt: str
    sub: int


class LoginFailed(Unauthorized):
    """A wrong username or password; the route answers it after a delay."""


def login(archive: Archive, username: str, password: str, ttl_ms: float) -> LoginResult:
    settings = archive.settings
    now = datetime.now(UTC)
    key = username.strip().lower()
    with archive.session() as session:
        since = now - timedelta(seconds=settings.lockout_window)
        session.execute(delete(LoginFailure).where(LoginFailure.at < since))
        failures = session.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.username == key)
        )
        if (failures or 0) >= settings.max_failed_logins:
            session.commit()
            minutes = max(1, round(settings.lockout_window / 60))
            raise TooManyRequests(
                f"Too many failed logins for {username!r}; try again in {minutes} minutes.",
                retry_after=int(settings.lockout_window),
            )
        user = session.scalar(
            select(User).where(or_(User.username == username, User.email == username))
        )
        if user is None or not verify_password(user.password_hash, password):
            session.add(LoginFailure(username=key, at=now))
            session.commit()
            raise LoginFailed(BAD_LOGIN)
        if not user.active:
            raise Unauthorized("Account is disabled. Please contact the archive's administrator.")
        session.execute(delete(LoginFailure).where(LoginFailure.username == key))
        token = archive.signer.sign(claims_for(session, user), ttl_ms)
        session.commit()
        return LoginResult(jwt=token, sub=user.sub)


def refresh(archive: Archive, principal: Principal, body: dict[str, Any]) -> str:
    """A new token from the current one; claims come fresh from the database and may only be
    narrowed (`scopes`, `gids`, `clearProfile`), never widened."""
    ttl = parse_ttl(body.get("ttl"))
    with archive.session() as session:
        user = session.get(User, principal.sub)
        if user is None or not user.active:
            raise Unauthorized("This account no longer exists or is disabled.")
        claims = claims_for(session, user)
    if isinstance(body.get("scopes"), dict):
        wanted: dict[str, Any] = body["scopes"]
        claims["scopes"] = {
            service: [s for s in values if s in (claims["scopes"].get(service) or [])]
            for service, values in wanted.items()
            if isinstance(values, list)
        }
    if isinstance(body.get("gids"), list):
        allowed = set(claims["gids"])
        claims["gids"] = [g for g in body["gids"] if g in allowed]
    if body.get("clearProfile"):
        claims.pop("profile", None)
    return archive.signer.sign(claims, ttl)


def issue_token_for(session: Session, archive: Archive, username: str, ttl_ms: float) -> str:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return archive.signer.sign(claims_for(session, user), ttl_ms)


def me(session: Session, principal: Principal) -> dict[str, Any]:
    user = session.get(User, principal.sub)
    if user is None:
        raise NotFound("Your account no longer exists.")
    return {
        "sub": user.sub,
        "username": user.username,
        "fullname": user.fullname,
        "email": user.email,
        "active": user.active,
        "scopes": user.scopes,
        "profile": user.profile,
        "password_hash": user.password_hash is not None,
    }
