"""Routes under /api/auth that manage accounts, groups and tokens: sign-up (brainlife's
`POST /signup`, off unless `bl serve --allow-signup`), brainlife's group routes, and our admin
routes for accounts and tokens (see docs/api.md). Rules: `services.accounts`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import ArchiveDep, JsonBody, SessionDep, User
from brainlife.server.errors import Forbidden
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import accounts, auth
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


def _user(session: Any, user: Any) -> dict[str, Any]:
    return documents.user_doc(user, admin=accounts.is_admin(user))


def _group(session: Any, group: Any) -> dict[str, Any]:
    return documents.group_doc(group, accounts.members_of(session, group.id))


def _add_user(session: Any, body: dict[str, Any], *, admin: bool = False) -> Any:
    """The account a sign-up or an admin's `POST /user` body describes."""
    return accounts.add_user(
        session,
        username=body.get("username"),
        password=body.get("password"),
        email=body.get("email"),
        fullname=body.get("fullname") or "",
        admin=admin,
    )


@router.post(routes.SIGNUP.path)
def signup(session: SessionDep, archive: ArchiveDep, body: JsonBody) -> dict[str, Any]:
    """Create an account and log in (only when the archive allows sign-up)."""
    if not archive.settings.allow_signup:
        raise Forbidden(
            "Sign-up is off on this archive: ask its administrator for an account "
            "('bl admin user add')."
        )
    body = accounts.body_object(body)
    user = _add_user(session, body)
    claims = auth.claims_for(session, user)
    ttl = auth.parse_ttl(body.get("ttl"), archive.settings.max_token_ms)
    token = auth.sign_recorded(session, archive, claims, ttl, "signup")
    session.commit()
    return documents.signup_doc(token, user.sub)


@router.get(routes.USERS.path)
def user_list(session: SessionDep, principal: User) -> dict[str, Any]:
    """Every account (archive admins only)."""
    accounts.require_archive_admin(principal)
    rows = accounts.list_users(session)
    return documents.page("users", [_user(session, u) for u in rows], count=len(rows))


@router.post(routes.USER_NEW.path)
def user_add(session: SessionDep, principal: User, body: JsonBody) -> dict[str, Any]:
    """Create an account (archive admins only): `username`, `password`, `email`, `fullname`,
    `admin` (any other field is a 400)."""
    accounts.require_archive_admin(principal)
    body = accounts.known_fields(accounts.body_object(body), accounts.NEW_USER_FIELDS)
    user = _add_user(session, body, admin=accounts.flag(body.get("admin", False), "admin"))
    session.commit()
    return _user(session, user)


@router.put(routes.USER.path)
def user_update(session: SessionDep, principal: User, sub: str, body: JsonBody) -> dict[str, Any]:
    """Change an account (archive admins only): `active`, `admin`, `password`, …"""
    accounts.require_archive_admin(principal)
    user = accounts.find_user(session, sub)
    accounts.update_user(session, user, accounts.body_object(body))
    session.commit()
    return _user(session, user)


@router.get(routes.GROUPS.path)
def group_list(session: SessionDep, principal: User) -> list[dict[str, Any]]:
    """The caller's groups (an archive admin: all)."""
    return [_group(session, g) for g in accounts.groups_of(session, principal)]


@router.post(routes.GROUP_NEW.path)
def group_add(session: SessionDep, principal: User, body: JsonBody) -> dict[str, Any]:
    """A new group (`name`, `desc`, `admins`, `members`); its creator is one of its admins."""
    body = accounts.body_object(body)
    admins = accounts.subs(body.get("admins"), "admins") or []
    if principal.sub not in admins:
        admins.insert(0, principal.sub)
    group = accounts.add_group(
        session,
        name=body.get("name"),
        desc=body.get("desc") or "",
        admins=admins,
        members=accounts.subs(body.get("members"), "members") or [],
    )
    session.commit()
    return documents.group_created_doc(_group(session, group))


@router.put(routes.GROUP.path)
def group_update(
    session: SessionDep, principal: User, group_id: str, body: JsonBody
) -> dict[str, Any]:
    """Change a group (its admins, or archive admins)."""
    group = accounts.find_group(session, group_id)
    accounts.require_group_admin(session, principal, group)
    accounts.update_group(session, group, accounts.body_object(body))
    session.commit()
    return _group(session, group)


@router.get(routes.TOKENS.path)
def token_list(session: SessionDep, principal: User, sub: str | None = None) -> dict[str, Any]:
    """The caller's tokens (an archive admin: `?sub=` anyone's)."""
    who = principal.sub
    if sub is not None and sub != principal.sub_str:
        accounts.require_archive_admin(principal)
        who = accounts.find_user(session, sub).sub
    rows = accounts.list_tokens(session, sub=who)
    return documents.page("tokens", [documents.token_doc(t) for t in rows], count=len(rows))


@router.delete(routes.TOKEN.path)
def token_revoke(session: SessionDep, principal: User, jti: str) -> dict[str, Any]:
    """Revoke a token (one's own; an archive admin: anyone's)."""
    row = accounts.revoke_token(session, jti, principal=principal)
    session.commit()
    return documents.token_doc(row)
