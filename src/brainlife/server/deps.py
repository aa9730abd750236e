"""FastAPI dependencies: the archive, a database session, and who is calling.

FastAPI runs a plain `def` dependency in a worker thread, and each such hand-over (anyio's
thread pool, its capacity limiter) cost more than the work of a cheap request: py-spy of `bl
serve` answering `GET /api/auth/me` put ~45 % of the event loop's samples in `run_sync` /
`run_in_threadpool`. So the dependencies that only read the app's state or check a value are
`async def` (they never block); those that touch the database or a session stay `def`, in the
pool (issue #11: `/auth/me` and a 100-row listing on PostgreSQL ~1 ms faster in same-run A/B).
For a `def` route, `onecall.OneCallRoute` goes further: the sessions, the login and the JSON
body below are resolved in the route's own worker call (through `login` and the same session
factories), so FastAPI only calls these functions for the routes and pages that are not.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.errors import LOGIN_AGAIN, BadRequest, Forbidden, Unauthorized
from brainlife.server.limits import json_body
from brainlife.server.principal import Principal
from brainlife.server.services.finalize import FinalizeRunner


async def get_archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


async def get_finalizer(request: Request) -> FinalizeRunner:
    runner: FinalizeRunner = request.app.state.finalizer
    return runner


def get_session(archive: Annotated[Archive, Depends(get_archive)]) -> Iterator[Session]:
    """The request's session: its statements run under the query time budget."""
    with archive.request_session() as session:
        yield session


def get_read_session(archive: Annotated[Archive, Depends(get_archive)]) -> Iterator[Session]:
    """A read-only route's session (`Archive.read_session`: autocommit, the same budget)."""
    with archive.read_session() as session:
        yield session


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(f"The Authorization header must be 'Bearer <token>'. {LOGIN_AGAIN}")
        return value.strip()
    return None


class Login(enum.Enum):
    """What a route asks of its caller's token (`login`)."""

    #: a token if one was sent (`MaybeUser`); a download script's token is refused
    OPTIONAL = "optional"
    #: a token (`User`); a download script's token is refused
    REQUIRED = "required"
    #: a login or a download script's token (`ObjectReader`: `GET /dataset`, whose scope is
    #: applied in SQL by `access.readable_datasets`)
    READER = "reader"
    #: as READER, the token also taken from `?at=` (brainlife's download links; `DownloadUser`)
    DOWNLOAD = "download"


def login(
    kind: Login, request: Request, archive: Archive, session: Session | None = None
) -> Principal | None:
    """The caller as `kind` asks, or raise (401 no or bad token, 403 a download script's token
    where it may not go). The token check (`services.auth.check_principal`: revoked, disabled)
    runs in `session` when the caller has a read session open already, else in its own.
    A bad token is an error even where none is needed."""
    token = _bearer(request)
    if kind is Login.DOWNLOAD:
        token = token or request.query_params.get("at")
    if not token:
        if kind is Login.OPTIONAL:
            return None
        what = "This download needs" if kind is Login.DOWNLOAD else "This needs"
        raise Unauthorized(f"{what} a login: no token was sent. {LOGIN_AGAIN}")
    principal = _checked(archive, archive.signer.principal(token), session)
    if principal.scoped and kind in (Login.OPTIONAL, Login.REQUIRED):
        raise Forbidden(SCOPED_TOKEN)
    return principal


SCOPED_TOKEN = (
    "This token is a download script's: it can only download that script's data objects. "
    "Use your own login for anything else (run 'bl login')."
)


def _checked(archive: Archive, principal: Principal, session: Session | None) -> Principal:
    """The principal of a verified token, unless revoked or its account disabled."""
    from brainlife.server.services.auth import check_principal

    if session is not None:
        check_principal(session, principal)
        return principal
    with archive.read_session() as own:
        check_principal(own, principal)
    return principal


# The dependencies FastAPI resolves (`onecall` resolves the same through `login` itself).


def optional_principal(
    request: Request, archive: Annotated[Archive, Depends(get_archive)]
) -> Principal | None:
    return login(Login.OPTIONAL, request, archive)


async def required_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized(f"This needs a login: no token was sent. {LOGIN_AGAIN}")
    return principal


def object_reader(request: Request, archive: Annotated[Archive, Depends(get_archive)]) -> Principal:
    return cast(Principal, login(Login.READER, request, archive))  # never None for READER


def download_principal(
    request: Request, archive: Annotated[Archive, Depends(get_archive)]
) -> Principal:
    return cast(Principal, login(Login.DOWNLOAD, request, archive))  # nor for DOWNLOAD


async def json_request_body(request: Request) -> Any:
    """The request's JSON body, parsed within the limits of `limits.json_body` (FastAPI's own
    `Body()` parsing answers a body nested ~1,000 deep or holding a lone surrogate with a 500)."""
    return parse_json_request_body(await request.body())


def parse_json_request_body(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("This route needs a JSON request body.")
    return json_body(raw)


ArchiveDep = Annotated[Archive, Depends(get_archive)]
SessionDep = Annotated[Session, Depends(get_session)]
#: For a route that only reads (the listings, one object, the caller's account): no transaction,
#: and the token check runs in it (`onecall`).
ReadSession = Annotated[Session, Depends(get_read_session)]
#: A session closed as soon as the route function returns, before a download's body streams:
#: a long download holds no connection.
ShortSession = Annotated[Session, Depends(get_session, scope="function")]
MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
User = Annotated[Principal, Depends(required_principal)]
DownloadUser = Annotated[Principal, Depends(download_principal)]
ObjectReader = Annotated[Principal, Depends(object_reader)]
JsonBody = Annotated[Any, Depends(json_request_body)]
Finalizer = Annotated[FinalizeRunner, Depends(get_finalizer)]
