"""Public profiles (`GET /api/auth/profile/list`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brainlife.server.models import User
from brainlife.server.services.listing import Listing


def list_profiles(
    *, session: Session, find: str | None, limit: str | None, offset: str | None
) -> Listing[User]:
    """A page of users matching `find` (rendered public fields only: `documents.profile_doc`)."""
    from brainlife.server.query import PROFILES, compile_find, parse_limit_skip

    clause = compile_find(PROFILES, find)
    lim, skip = parse_limit_skip(limit, offset)
    count = session.scalar(select(func.count()).select_from(User).where(clause))
    stmt = select(User).where(clause).order_by(User.sub).offset(skip)
    if lim:
        stmt = stmt.limit(lim)
    users = session.scalars(stmt).all()
    return Listing(rows=list(users), count=count or 0)
