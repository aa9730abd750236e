"""Accounts, groups and tokens as an archive's administrators manage them: the rules behind
`bl admin` (on the data directory, no server running) and the admin routes of /api/auth, so
that both enforce the same ones.

Rules:
- a username is 1-64 characters of letters, digits, `.`, `_`, `-`, starting with a letter or a
  digit (it appears in paths and in `bl project query -a`); an e-mail, when given, has one `@`;
  both are unique (case-insensitively for e-mails, which people retype);
- a password has `MIN_PASSWORD` to `MAX_PASSWORD` characters and is only ever kept as an
  Argon2id hash; no message or log line holds it;
- an archive admin holds the admin scope of every service (`ADMIN_SCOPES`); the last active
  admin cannot be disabled or demoted, so an archive always keeps someone who can manage it
  (from the data directory, `bl admin` can always make a new one);
- disabling an account refuses its tokens at once (`services.auth.check_principal`);
- groups are brainlife's auth groups (`gids` claims): a project owns one (`projects.group_id`),
  and others can be made for people who work together. A new group's id is above every
  group's and every project's `group_id` (groups are deactivated, never deleted).

Functions flush and leave committing to the caller (a route's session, `bl admin`'s command).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Conflict, Forbidden, NotFound
from brainlife.server.ids import int_id
from brainlife.server.models import AuthToken, Group, GroupMember, Project, User
from brainlife.server.principal import Principal
from brainlife.server.services.auth import create_user, hash_password

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EMAIL = re.compile(r"[^@\s\x00]{1,128}@[^@\s\x00]{1,127}")
MAX_FULLNAME = 256
MAX_GROUP_NAME = 256
MAX_DESC = 64 * 1024

USER_SCOPES: dict[str, list[str]] = {"brainlife": ["user"]}
ADMIN_SCOPES: dict[str, list[str]] = {
    "brainlife": ["user"],
    "warehouse": ["user", "admin"],
    "amaretti": ["user", "admin"],
    "auth": ["user", "admin"],
}


def _is_number(text: str) -> bool:
    """ASCII digits that fit an id (`ids.int_id`: not '²', not beyond the database's INTEGER)."""
    return int_id(text) is not None


def is_admin(user: User) -> bool:
    return "admin" in ((user.scopes or {}).get("auth") or [])


def check_username(name: Any) -> str:
    if not isinstance(name, str) or not USERNAME.fullmatch(name):
        raise BadRequest(
            f"Invalid username {str(name)[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit."
        )
    return name


def check_email(email: Any) -> str | None:
    if email is None or email == "":
        return None
    if not isinstance(email, str) or not EMAIL.fullmatch(email):
        raise BadRequest(f"Invalid e-mail address {str(email)[:80]!r}.")
    return email


def check_password(password: Any) -> str:
    """Never echoes the password."""
    if not isinstance(password, str):
        raise BadRequest("Send a password (a string).")
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"The password is too long: use at most {MAX_PASSWORD} characters.")
    return password


def _text(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string.")
    if len(value) > limit:
        raise BadRequest(f"{what} is too long (at most {limit} characters).")
    if "\x00" in value:  # PostgreSQL text cannot hold it: refused alike on every engine
        raise BadRequest(f"{what} must not contain NUL characters.")
    return value


#: lower() as both databases apply it to these columns: ASCII letters only (SQLite's lower(),
#: and PostgreSQL's under the "C" collation 0016_pg_byte_order gives every text column)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _same(column: Any, value: str) -> Any:
    """`column` equals `value` ignoring case as the database folds the column: what the unique
    indexes on lower(username) and lower(email) compare (migration 0019). Not Python's lower(),
    which folds 'É' too; nor the database's lower() of the value, which PostgreSQL applies in
    the database's default collation (folding 'É' under C.UTF-8 or en_US.UTF-8)."""
    return func.lower(column) == value.translate(_ASCII_LOWER)


def add_user(
    session: Session,
    *,
    username: Any,
    password: Any,
    email: Any = None,
    fullname: Any = "",
    admin: bool = False,
) -> User:
    username = check_username(username)
    email = check_email(email)
    password = check_password(password)
    fullname = _text(fullname, "fullname", MAX_FULLNAME)
    # checked under the accounts' lock, so that two requests cannot both find a name free
    lock_writes(session, "accounts")
    # compared as the unique indexes of migration 0019 compare
    if session.scalar(select(User.sub).where(_same(User.username, username))):
        raise Conflict(f"The username {username!r} is taken.")
    if email and session.scalar(select(User.sub).where(_same(User.email, email))):
        raise Conflict(f"The e-mail address {email!r} belongs to another account.")
    scopes = ADMIN_SCOPES if admin else USER_SCOPES
    return create_user(
        session,
        username=username,
        password=password,
        email=email,
        fullname=fullname,
        scopes={k: list(v) for k, v in scopes.items()},
    )


def find_user(session: Session, ref: str | int) -> User:
    """A user by username, e-mail or sub (digits)."""
    text = str(ref)
    if _is_number(text):
        user = session.get(User, int(text))
        if user is not None:
            return user
    # no name or e-mail holds a NUL (and PostgreSQL could not even compare with one)
    user = (
        None
        if "\x00" in text
        else session.scalar(select(User).where((User.username == text) | _same(User.email, text)))
    )
    if user is None:
        raise NotFound(f"No user {text[:80]!r} in this archive.")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.sub)))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def _other_active_admins(session: Session, user: User) -> int:
    """Columns, not entities: the rows as committed now (under `lock_writes`), not accounts this
    session loaded before."""
    others = session.scalars(select(User.scopes).where(User.active.is_(True), User.sub != user.sub))
    return sum(1 for scopes in others if "admin" in ((scopes or {}).get("auth") or []))


def set_active(session: Session, user: User, active: bool) -> User:
    lock_writes(session, "accounts")  # two admins disabling each other leave one
    if not active and is_admin(user) and user.active and not _other_active_admins(session, user):
        raise Conflict(
            f"{user.username} is the archive's last active admin: make another admin first."
        )
    user.active = active
    session.flush()
    return user


def set_admin(session: Session, user: User, admin: bool) -> User:
    lock_writes(session, "accounts")
    if not admin and is_admin(user) and user.active and not _other_active_admins(session, user):
        raise Conflict(
            f"{user.username} is the archive's last active admin: make another admin first."
        )
    base = ADMIN_SCOPES if admin else USER_SCOPES
    user.scopes = {k: list(v) for k, v in base.items()}
    session.flush()
    return user


def set_password(session: Session, user: User, password: Any, *, revoke: bool = True) -> User:
    """A new password; the account's tokens are revoked (a password is changed when it may be
    known to someone else, whose sessions must end too)."""
    user.password_hash = hash_password(check_password(password))
    if revoke:
        revoke_tokens(session, sub=user.sub)
    session.flush()
    return user


def set_username(session: Session, user: User, username: Any) -> User:
    """A new username (an admin's correction, e.g. of two names that differ only in case).
    The account's tokens are revoked: they carry the old name, which `bl` and brainlife's
    CLI show and send; the account logs in again under the new one."""
    username = check_username(username)
    if username == user.username:
        return user
    lock_writes(session, "accounts")  # as add_user: two requests cannot both find it free
    taken = session.scalar(
        select(User.sub).where(_same(User.username, username), User.sub != user.sub)
    )
    if taken:
        raise Conflict(f"The username {username!r} is taken.")
    user.username = username
    revoke_tokens(session, sub=user.sub)
    session.flush()
    return user


# -- groups -----------------------------------------------------------------------------


def next_group_id(session: Session) -> int:
    """A group id above every group's and project's (a token carrying a project's group id
    reaches its tasks, so no new group may share it). Two requests making groups or projects
    at once get different ids: the allocation is serialized (held until the caller commits)."""
    lock_writes(session, "group ids")
    top = max(
        session.scalar(select(func.max(Group.id))) or 0,
        session.scalar(select(func.max(Project.group_id))) or 0,
    )
    return top + 1


def add_group(
    session: Session,
    *,
    name: Any,
    desc: Any = "",
    admins: Iterable[int] = (),
    members: Iterable[int] = (),
) -> Group:
    name = _text(name, "name", MAX_GROUP_NAME).strip()
    if not name:
        raise BadRequest("A group needs a name.")
    group = Group(id=next_group_id(session), name=name, desc=_text(desc, "desc", MAX_DESC))
    session.add(group)
    session.flush()
    set_members(session, group, admins=list(admins), members=list(members))
    return group


def find_group(session: Session, ref: str | int) -> Group:
    """A group by id (digits) or by name (which must then be unique)."""
    text = str(ref)
    if _is_number(text):
        group = session.get(Group, int(text))
        if group is not None:
            return group
    named = select(Group).where(Group.name == text).limit(2)
    rows = [] if "\x00" in text else list(session.scalars(named))  # no name holds a NUL
    if not rows:
        raise NotFound(f"No group {text[:80]!r} in this archive.")
    if len(rows) > 1:
        raise BadRequest(f"Several groups are named {text[:80]!r}: name it by its id.")
    return rows[0]


@dataclass(frozen=True)
class Members:
    """A group's people by role (subs), rendered by `documents.group_doc`."""

    admins: list[int]
    members: list[int]


def members_of(session: Session, group_id: int) -> Members:
    rows = session.execute(
        select(GroupMember.sub, GroupMember.role)
        .where(GroupMember.group_id == group_id)
        .order_by(GroupMember.sub)
    ).all()
    return Members(
        admins=[s for s, r in rows if r == "admin"],
        members=[s for s, r in rows if r == "member"],
    )


def set_members(
    session: Session, group: Group, *, admins: list[int] | None, members: list[int] | None
) -> None:
    """Replace the group's admins and/or members (None: leave that list as it is), one request
    at a time per group (the rows are deleted and inserted again)."""
    lock_writes(session, f"members of group {group.id}")
    for role, subs in (("admin", admins), ("member", members)):
        if subs is None:
            continue
        known = set(session.scalars(select(User.sub).where(User.sub.in_(set(subs)))))
        unknown = sorted(set(subs) - known)
        if unknown:
            raise BadRequest(f"No user with sub {', '.join(map(str, unknown[:10]))}.")
        session.query(GroupMember).filter(
            GroupMember.group_id == group.id, GroupMember.role == role
        ).delete()
        for sub in dict.fromkeys(subs):
            session.add(GroupMember(group_id=group.id, sub=sub, role=role))
    session.flush()


def _not_a_projects_group(session: Session, group: Group) -> None:
    """A project's group follows the project's admins and members (`project_writes`): changed
    on its own, the two would disagree on who reaches the project's tasks."""
    pid = session.scalar(select(Project.id).where(Project.group_id == group.id).limit(1))
    if pid is not None:
        raise BadRequest(
            f"Group {group.id} is project {pid}'s: change its people on the project "
            f"('bl project update {pid} --member USER …')."
        )


def change_members(
    session: Session,
    group: Group,
    *,
    add: Iterable[int] = (),
    remove: Iterable[int] = (),
    add_admins: Iterable[int] = (),
) -> Members:
    """Add members, add admins, remove people (from both roles)."""
    _not_a_projects_group(session, group)
    lock_writes(session, f"members of group {group.id}")
    current = members_of(session, group.id)
    gone = set(remove)
    admins = [s for s in current.admins if s not in gone]
    members = [s for s in current.members if s not in gone]
    admins += [s for s in add_admins if s not in admins]
    members += [s for s in add if s not in members]
    set_members(session, group, admins=admins, members=members)
    return members_of(session, group.id)


def can_manage_group(session: Session, principal: Principal, group: Group) -> bool:
    if principal.is_admin("auth"):
        return True
    return principal.sub in members_of(session, group.id).admins


def require_group_admin(session: Session, principal: Principal, group: Group) -> None:
    if not can_manage_group(session, principal, group):
        raise Forbidden(f"Only the admins of group {group.id} may change it.")


# -- tokens -----------------------------------------------------------------------------


def list_tokens(session: Session, *, sub: int | None = None) -> list[AuthToken]:
    query = select(AuthToken).order_by(AuthToken.issued, AuthToken.jti)
    if sub is not None:
        query = query.where(AuthToken.sub == sub)
    return list(session.scalars(query))


def revoke_token(session: Session, jti: str, *, principal: Principal | None = None) -> AuthToken:
    """Revoke one token; a principal (an API caller) may only revoke its own unless it is an
    auth admin. `principal` None: the data directory's administrator (`bl admin`)."""
    row = session.get(AuthToken, jti[:32])
    if row is None or (
        principal is not None and not principal.is_admin("auth") and row.sub != principal.sub
    ):
        raise NotFound(f"No token {jti[:40]!r} of yours in this archive.")
    if row.revoked is None:
        row.revoked = datetime.now(UTC)
    session.flush()
    return row


def revoke_tokens(session: Session, *, sub: int) -> int:
    """Revoke every token of an account; how many were still valid."""
    now = datetime.now(UTC)
    result = session.execute(
        update(AuthToken)
        .where(AuthToken.sub == sub, AuthToken.revoked.is_(None))
        .values(revoked=now)
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_labelled_tokens(session: Session, *, sub: int, label: str) -> int:
    """Revoke an account's tokens issued under `label` (a web session's upload tokens)."""
    result = session.execute(
        update(AuthToken)
        .where(AuthToken.sub == sub, AuthToken.label == label[:128], AuthToken.revoked.is_(None))
        .values(revoked=datetime.now(UTC))
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_oldest_labelled_tokens(session: Session, *, sub: int, label: str, keep: int) -> int:
    """Revoke an account's live tokens issued under `label` past the newest `keep` (a web
    session holds a bounded number of upload tokens)."""
    now = datetime.now(UTC)
    live = session.scalars(
        select(AuthToken)
        .where(
            AuthToken.sub == sub,
            AuthToken.label == label[:128],
            AuthToken.revoked.is_(None),
            AuthToken.expires > now,
        )
        .order_by(AuthToken.issued.desc(), AuthToken.jti)
        .offset(keep)
    ).all()
    for row in live:
        row.revoked = now
    session.flush()
    return len(live)


# -- what the API adds: who may call --------------------------------------------------------


def require_archive_admin(principal: Principal) -> None:
    if not principal.is_admin("auth"):
        raise Forbidden("Only the archive's administrators may do this.")


def body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def subs(value: Any, what: str) -> list[int] | None:
    """A list of subs as brainlife sends them (numbers or digit strings); None when absent."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 10_000:
        raise BadRequest(f"{what} must be a list of user ids (subs).")
    out = []
    for item in value:
        text = str(item)
        if isinstance(item, bool) or not _is_number(text):
            raise BadRequest(f"{what}: {text[:40]!r} is not a user id (sub).")
        out.append(int(text))
    return out


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{what} must be true or false.")
    return value


#: the fields of an admin's new account (`POST /user`) and of a change (`PUT /user/:sub`)
NEW_USER_FIELDS = frozenset({"username", "password", "email", "fullname", "admin"})
USER_CHANGE_FIELDS = frozenset({"active", "admin", "password", "fullname", "email", "username"})


def known_fields(body: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """`body`, refused whole (400 naming what it takes) if it has a field not in `known`: a
    misspelt or unsupported field is never silently ignored."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"Unknown field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}.")
    return body


def update_user(session: Session, user: User, body: dict[str, Any]) -> User:
    """An admin's change of an account: `active`, `admin`, `password`, `fullname`, `email`,
    `username`."""
    known_fields(body, USER_CHANGE_FIELDS)
    if "username" in body:
        set_username(session, user, body["username"])
    if "password" in body:
        set_password(session, user, body["password"])
    if "fullname" in body:
        user.fullname = _text(body["fullname"], "fullname", MAX_FULLNAME)
    if "email" in body:
        email = check_email(body["email"])
        lock_writes(session, "accounts")  # as add_user: two requests cannot both find it free
        taken = email and session.scalar(
            select(User.sub).where(_same(User.email, email), User.sub != user.sub)
        )
        if taken:
            raise Conflict(f"The e-mail address {email!r} belongs to another account.")
        user.email = email
    if "admin" in body:
        set_admin(session, user, flag(body["admin"], "admin"))
    if "active" in body:
        set_active(session, user, flag(body["active"], "active"))
    session.flush()
    return user


def groups_of(session: Session, principal: Principal) -> list[Group]:
    """Every group for an archive admin; else the caller's (as admin or member)."""
    query = select(Group).order_by(Group.id)
    if not principal.is_admin("auth"):
        mine = select(GroupMember.group_id).where(GroupMember.sub == principal.sub)
        query = query.where(Group.id.in_(mine))
    return list(session.scalars(query))


def update_group(session: Session, group: Group, body: dict[str, Any]) -> Group:
    """brainlife's `PUT /group/:id`: `name`, `desc`, `admins`, `members` (subs)."""
    _not_a_projects_group(session, group)
    if "name" in body:
        name = _text(body["name"], "name", MAX_GROUP_NAME).strip()
        if not name:
            raise BadRequest("A group needs a name.")
        group.name = name
    if "desc" in body:
        group.desc = _text(body["desc"], "desc", MAX_DESC)
    admins = subs(body.get("admins"), "admins")
    if admins is not None and not admins:
        raise BadRequest("A group needs at least one admin.")
    set_members(session, group, admins=admins, members=subs(body.get("members"), "members"))
    return group
