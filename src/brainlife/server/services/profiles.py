"""Public profiles (`GET /api/auth/profile/list`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brainlife.server.models import User


def profile_doc(user: User) -> dict[str, Any]:
    """The safe, public fields of a user (never the password hash or private profile)."""
    return {
        "sub": user.sub,
        "username": user.username,
        "fullname": user.fullname,
        "email": user.email,
        "active": user.active,
        "profile": {"public": (user.profile or {}).get("public", {})},
    }


def list_profiles(
    *, session: Session, find: str | None, limit: str | None, offset: str | None
) -> dict[str, Any]:
    from brainlife.server.query import PROFILES, compile_find, parse_limit_skip

    clause = compile_find(PROFILES, find)
    lim, skip = parse_limit_skip(limit, offset)
    count = session.scalar(select(func.count()).select_from(User).where(clause))
    stmt = select(User).where(clause).order_by(User.sub).offset(skip)
    if lim:
        stmt = stmt.limit(lim)
    users = session.scalars(stmt).all()
    return {"profiles": [profile_doc(u) for u in users], "count": count or 0}
