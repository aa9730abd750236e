"""Users, passwords, logins and tokens (brainlife's auth service).

Passwords are hashed with Argon2id at argon2-cffi's default cost (RFC 9106's low-memory profile:
3 passes over 64 MiB, 4 lanes). Each hash carries its own parameters and is verified at them, so
changing the cost never invalidates a stored hash. A test server may hash at the lowest cost
instead (`use_password_cost("test")`, `BL_TEST_PASSWORD_COST=test` for `bl serve`): a login
against the demo accounts then costs microseconds instead of a quarter second of CPU. Password
guessing is slowed and bounded; the rules:

- every failed login is answered after `failed_login_delay` seconds (here, in `login`: an
  asynchronous wait, so waiting answers hold no worker thread);
- an unknown user costs what a wrong password costs: the password is verified against a dummy
  Argon2 hash of the same parameters, and the same rows are read and written, so the answer's
  timing does not tell which usernames exist;
- failures count against the *account* (`sub:<n>`), whether it was named by username or by
  e-mail, and against the client address they came from. After `max_failed_logins` failures for
  one (account, address) within `lockout_window` seconds, that address gets 429 for that account
  until the window passes; after `max_failed_logins_per_client` failures from one address (any
  accounts), that address gets 429 for every login. The owner logging in from another address is
  not locked out by someone else's guessing: keying the lockout by account alone would let anyone
  who knows a username lock its owner out. The cost: an attacker with many addresses gets
  `max_failed_logins` guesses per address and window (Argon2 and the delay still apply). Behind a
  reverse proxy, the address is the proxy's unless uvicorn is told to trust its
  `X-Forwarded-For` (`--forwarded-allow-ips`).

Every token signed here carries an id (`jti`) recorded in `auth_tokens` (`sign_recorded`), so it
can be revoked before it expires; `check_principal` refuses (401) a token that was revoked, whose
id this archive never issued, or whose account is disabled: disabling an account ends its
sessions at once, not when its tokens expire. Tokens without an id (signed by tests or tools
holding the key) are only checked for a disabled account.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from brainlife.server import documents
from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, NotFound, TooManyRequests, Unauthorized
from brainlife.server.models import AuthToken, GroupMember, LoginFailure, User
from brainlife.server.principal import Principal

#: Argon2 cost profiles by name: "default" for every archive; "test" (one pass over 8 KiB, one
#: lane: worthless against guessing) only for test servers and test processes, whose accounts
#: are the demo's (password = username) anyway.
PASSWORD_COSTS: dict[str, Callable[[], PasswordHasher]] = {
    "default": PasswordHasher,
    "test": functools.partial(PasswordHasher, time_cost=1, memory_cost=8, parallelism=1),
}

_hasher = PASSWORD_COSTS["default"]()

DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000
MAX_TTL_MS = 365 * 24 * 3600 * 1000
BAD_LOGIN = "Incorrect user/password"
#: the same refusal from an archive without any account (nobody to tell apart: it says so)
NO_ACCOUNTS = (
    f"{BAD_LOGIN} (this archive has no accounts yet: its administrator makes the first with "
    "'bl admin --data-dir DIR user add NAME --admin --password-stdin' on the server)"
)


def use_password_cost(name: str) -> None:
    """Hash new passwords (and the unknown-user dummy) at the named cost (`PASSWORD_COSTS`) from
    now on, in this process. Existing hashes keep verifying at their own cost."""
    global _hasher
    _hasher = PASSWORD_COSTS[name]()
    _dummy_hash.cache_clear()


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


def parse_ttl(value: Any, max_ms: float = MAX_TTL_MS) -> float:
    """`ttl` in milliseconds (brainlife's unit), as a number or a numeric string, at most
    `max_ms` (the archive's `max_token_days`): a longer one gets the maximum, and the token's
    `exp` tells the client what it got (`bl login` prints it)."""
    if value is None or value == "":
        return min(DEFAULT_TTL_MS, max_ms)
    try:
        ttl = float(value)
    except OverflowError:  # an integer beyond any float (1e400 as digits): longer than allowed
        ttl = float("inf")
    except (TypeError, ValueError):
        raise BadRequest(f"ttl must be a number of milliseconds, not {str(value)[:40]!r}") from None
    if not ttl > 0:
        raise BadRequest("ttl must be a positive number of milliseconds")
    return min(ttl, max_ms)


def gids_for(session: Session, sub: int) -> list[int]:
    """brainlife's `gids` claim: admin groups, then 0, then member-only groups."""
    rows = session.execute(
        select(GroupMember.group_id, GroupMember.role).where(GroupMember.sub == sub)
    ).all()
    admin = sorted({g for g, role in rows if role == "admin"})
    member = sorted({g for g, role in rows if role == "member"} - set(admin))
    return [*admin, 0, *member]


def claims_for(session: Session, user: User) -> dict[str, Any]:
    return documents.claims_doc(user, gids_for(session, user.sub))


def sign_recorded(
    session: Session, archive: Archive, claims: dict[str, Any], ttl_ms: float, label: str
) -> str:
    """Sign `claims` with a fresh token id recorded in `auth_tokens` (flushed, not committed:
    the caller commits, and a token is only handed out once its record is)."""
    jti = secrets.token_hex(16)
    now = datetime.now(UTC)
    session.add(
        AuthToken(
            jti=jti,
            sub=int(claims["sub"]),
            issued=now,
            expires=now + timedelta(milliseconds=ttl_ms),
            label=label[:128],
        )
    )
    session.flush()
    return archive.signer.sign({**claims, "jti": jti}, ttl_ms)


#: how long the record of an expired token is kept (a token is refused by its own expiry first:
#: the record only serves `bl token list` and revocation, which an expired token needs neither of)
EXPIRED_KEPT = timedelta(days=7)


def purge_expired_tokens(session: Session, now: datetime | None = None) -> int:
    """Delete the records of tokens expired more than `EXPIRED_KEPT` ago (every login, refresh
    and web upload records one: the table grew forever); how many went. Run at start-up."""
    cutoff = (now or datetime.now(UTC)) - EXPIRED_KEPT
    gone = session.execute(delete(AuthToken).where(AuthToken.expires < cutoff))
    session.commit()
    return int(getattr(gone, "rowcount", 0) or 0)


REVOKED = "This token was revoked. Please log in again (run 'bl login')."
DISABLED = "This account is disabled. Please contact the archive's administrator."


def check_principal(session: Session, principal: Principal) -> None:
    """Refuse (401) a revoked or unknown token id and a disabled account's token.

    One statement (every request pays it): the token's row with its account's `active` flag
    beside it, in a subquery (None for an unknown account, which is not refused here). It
    selects columns, not entities, so it runs on the session's connection without the ORM's
    statement processing: 0.36-0.58 ms instead of 0.65-0.98 ms per check on PostgreSQL (same
    run). The session's execution options, the query budget among them, are the connection's."""
    active = select(User.active).where(User.sub == principal.sub).scalar_subquery().label("active")
    connection = session.connection()
    if principal.jti is None:
        if connection.scalar(select(active)) is False:
            raise Unauthorized(DISABLED)
        return
    t = AuthToken
    row = connection.execute(
        select(t.revoked, t.sub, active).where(t.jti == principal.jti)
    ).one_or_none()
    if row is None or row.revoked is not None or row.sub != principal.sub:
        raise Unauthorized(REVOKED)
    if row.active is False:
        raise Unauthorized(DISABLED)


@dataclass(frozen=True)
class LoginResult:
    jwt: str
    sub: int


class LoginFailed(Unauthorized):
    """A wrong username or password (raised by `login` after the delay)."""


@functools.cache
def _dummy_hash() -> str:
    """An Argon2 hash (same parameters as real ones) that an unknown user's password is checked
    against, so that an unknown user costs as much as a wrong password."""
    return _hasher.hash(secrets.token_hex(16))


async def login(
    *, archive: Archive, username: str, password: str, ttl_ms: float, client: str = ""
) -> LoginResult:
    """Log in, or raise: `LoginFailed` (after `failed_login_delay`), `TooManyRequests`, or
    `Unauthorized` (disabled account). The database and Argon2 work runs in a worker thread;
    the delay is awaited, holding no thread."""
    try:
        return await anyio.to_thread.run_sync(
            _login, archive, username, password, ttl_ms, client[:64]
        )
    except LoginFailed:
        await anyio.sleep(archive.settings.failed_login_delay)
        raise


def _login(
    archive: Archive, username: str, password: str, ttl_ms: float, client: str
) -> LoginResult:
    settings = archive.settings
    now = datetime.now(UTC)
    minutes = max(1, round(settings.lockout_window / 60))
    with archive.session() as session:
        since = now - timedelta(seconds=settings.lockout_window)
        session.execute(delete(LoginFailure).where(LoginFailure.at < since))
        user = session.scalar(
            select(User).where(or_(User.username == username, User.email == username)).limit(1)
        )
        account = f"sub:{user.sub}" if user is not None else "name:" + username.strip().lower()
        account = account[:256]
        failures = select(func.count()).select_from(LoginFailure)
        from_client = LoginFailure.client == client
        if (
            session.scalar(failures.where(LoginFailure.username == account, from_client)) or 0
        ) >= settings.max_failed_logins:
            session.commit()
            raise TooManyRequests(
                "Too many failed logins for this account from your address; try again in "
                f"{minutes} minutes.",
                retry_after=int(settings.lockout_window),
            )
        if (session.scalar(failures.where(from_client)) or 0) >= (
            settings.max_failed_logins_per_client
        ):
            session.commit()
            raise TooManyRequests(
                f"Too many failed logins from your address; try again in {minutes} minutes.",
                retry_after=int(settings.lockout_window),
            )
        known = user is not None and user.password_hash is not None
        hashed = user.password_hash if user is not None and user.password_hash else _dummy_hash()
        if not verify_password(hashed, password) or not known:
            session.add(LoginFailure(username=account, client=client, at=now))
            session.commit()
            if user is None and session.scalar(select(User.sub).limit(1)) is None:
                raise LoginFailed(NO_ACCOUNTS)
            raise LoginFailed(BAD_LOGIN)
        assert user is not None
        if not user.active:
            raise Unauthorized(DISABLED)
        session.execute(delete(LoginFailure).where(LoginFailure.username == account, from_client))
        token = sign_recorded(session, archive, claims_for(session, user), ttl_ms, "login")
        session.commit()
        return LoginResult(jwt=token, sub=user.sub)


def refresh(*, archive: Archive, principal: Principal, body: dict[str, Any]) -> str:
    """A new token from the current one; claims come fresh from the database and may only be
    narrowed (`scopes`, `gids`, `clearProfile`), never widened."""
    ttl = parse_ttl(body.get("ttl"), archive.settings.max_token_ms)
    with archive.session() as session:
        user = session.get(User, principal.sub)
        if user is None or not user.active:
            raise Unauthorized("This account no longer exists or is disabled.")
        claims = claims_for(session, user)
        # narrowed below, then signed and recorded in the same session
        token = _narrowed_token(session, archive, claims, body, ttl)
        session.commit()
    return token


def _narrowed_token(
    session: Session, archive: Archive, claims: dict[str, Any], body: dict[str, Any], ttl: float
) -> str:
    if isinstance(body.get("scopes"), dict):
        wanted: dict[str, Any] = body["scopes"]
        claims["scopes"] = {
            service: [s for s in values if s in (claims["scopes"].get(service) or [])]
            for service, values in wanted.items()
            if isinstance(values, list)
        }
    if isinstance(body.get("gids"), list):
        allowed = set(claims["gids"])
        claims["gids"] = [
            g
            for g in body["gids"]
            if isinstance(g, int) and not isinstance(g, bool) and g in allowed
        ]
    if body.get("clearProfile"):
        claims.pop("profile", None)
    return sign_recorded(session, archive, claims, ttl, "refresh")


def issue_token_for(session: Session, archive: Archive, username: str, ttl_ms: float) -> str:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return archive.signer.sign(claims_for(session, user), ttl_ms)


def me(*, session: Session, principal: Principal) -> User:
    """The caller's account (`documents.me_doc`)."""
    user = session.get(User, principal.sub)
    if user is None:
        raise NotFound("Your account no longer exists.")
    return user
