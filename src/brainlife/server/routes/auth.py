"""Routes under /api/auth: local login, refresh, profiles."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from brainlife.server import documents
from brainlife.server.deps import ArchiveDep, ReadSession, User
from brainlife.server.errors import BadRequest
from brainlife.server.limits import json_body
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.services import auth, profiles
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


async def _body(request: Request) -> dict[str, Any]:
    """JSON or form-encoded (the Colab recipe posts a form) request body."""
    raw = await request.body()
    if not raw:
        return {}
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in ctype:
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    data = json_body(raw)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


@router.post(routes.LOGIN.path, openapi_extra=params.LOGIN)
async def local_auth(request: Request, archive: ArchiveDep) -> dict[str, Any]:
    """Log in with a username (or email) and password; returns a signed token."""
    body = await _body(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username or not isinstance(password, str):
        raise BadRequest("Send a username (or email) and a password.")
    ttl = auth.parse_ttl(body.get("ttl"), archive.settings.max_token_ms)
    client = request.client.host if request.client else ""
    result = await auth.login(
        archive=archive, username=username, password=password, ttl_ms=ttl, client=client
    )
    return documents.login_doc(result.jwt, result.sub)


@router.post(routes.REFRESH.path, openapi_extra=params.REFRESH)
async def refresh(request: Request, archive: ArchiveDep, user: User) -> dict[str, Any]:
    """A fresh token for a still-valid one (claims may be narrowed, never widened)."""
    body = await _body(request)
    token = await run_in_threadpool(
        functools.partial(auth.refresh, archive=archive, principal=user, body=body)
    )
    return documents.refresh_doc(token)


@router.get(routes.ME.path)
def me(session: ReadSession, user: User) -> dict[str, Any]:
    """The caller's own account."""
    return documents.me_doc(auth.me(session=session, principal=user))


@router.get(routes.PROFILES.path)
def profile_list(
    session: ReadSession,
    find: str | None = None,
    where: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
    skip: str | None = None,
) -> dict[str, Any]:
    """Public profiles (`find` or `where`, `limit`, `offset`)."""
    page = profiles.list_profiles(
        session=session,
        find=find if find is not None else where,
        limit=limit,
        offset=offset if offset is not None else skip,
    )
    return documents.page(
        "profiles", [documents.profile_doc(u) for u in page.rows], count=page.count
    )
