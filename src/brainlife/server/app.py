"""`create_app(settings)`: the FastAPI application with brainlife's three API prefixes."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brainlife.server import web
from brainlife.server.archive import Archive, open_archive
from brainlife.server.errors import ApiError, RangeNotSatisfiable, TooManyRequests
from brainlife.server.gate import QueryGate
from brainlife.server.limits import RequestLimits
from brainlife.server.responses import JSONDocument
from brainlife.server.settings import Settings
from brainlife.wire import API_AMARETTI, API_AUTH, API_WAREHOUSE, ErrorBody, routes

log = logging.getLogger("brainlife.server")


def create_app(settings: Settings | None = None, archive: Archive | None = None) -> FastAPI:
    from brainlife.server.routes import (
        accounts,
        amaretti,
        amaretti_upload,
        apps,
        auth,
        catalogue,
        curation,
        downloads,
        downscript,
        participants,
        projectfiles,
        projects,
        publishing,
        taskfiles,
        uploads,
        warehouse,
        warehouse_upload,
    )
    from brainlife.server.services.auth import purge_expired_tokens
    from brainlife.server.services.finalize import FinalizeRunner
    from brainlife.server.services.uploads import clean_uploads

    archive = archive or open_archive(settings or Settings())
    clean_uploads(archive)  # expired upload sessions and orphaned staged bytes
    with archive.session() as session:
        purge_expired_tokens(session)  # records of tokens long expired
    finalizer = FinalizeRunner(archive, poll=archive.settings.finalize_poll)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the finalize jobs of uploads: those a killed server left are resumed now
        finalizer.start()
        try:
            yield
        finally:
            finalizer.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="brainlife archive",
        summary="brainlife.io's auth, warehouse and amaretti APIs on an embedded archive",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        default_response_class=JSONDocument,
    )
    app.state.archive = archive
    app.state.finalizer = finalizer
    app.state.query_gate = QueryGate(archive.settings.query_slots)
    app.include_router(auth.router, prefix=API_AUTH)
    app.include_router(accounts.router, prefix=API_AUTH)
    app.include_router(projects.router, prefix=API_WAREHOUSE)
    app.include_router(catalogue.router, prefix=API_WAREHOUSE)
    app.include_router(participants.router, prefix=API_WAREHOUSE)
    # Download routers first: their paths are more specific than the listing routers'.
    app.include_router(downloads.router, prefix=API_WAREHOUSE)
    app.include_router(warehouse.router, prefix=API_WAREHOUSE)
    app.include_router(publishing.router, prefix=API_WAREHOUSE)
    app.include_router(apps.router, prefix=API_WAREHOUSE)
    app.include_router(downscript.router, prefix=API_WAREHOUSE)
    app.include_router(warehouse_upload.router, prefix=API_WAREHOUSE)
    app.include_router(curation.router, prefix=API_WAREHOUSE)
    app.include_router(uploads.router, prefix=API_WAREHOUSE)
    app.include_router(projectfiles.router, prefix=API_WAREHOUSE)
    app.include_router(taskfiles.router, prefix=API_AMARETTI)
    app.include_router(amaretti_upload.router, prefix=API_AMARETTI)
    app.include_router(amaretti.router, prefix=API_AMARETTI)
    web.mount(app)  # the pages at /: after the API routers, none under /api
    if not archive.settings.extensions:
        app.add_middleware(_BrainlifeRoutesOnly)
    app.add_middleware(
        RequestLimits,
        max_url_bytes=archive.settings.max_url_bytes,
        max_body_bytes=archive.settings.max_body_bytes,
        upload_prefixes=(routes.TASK_UPLOAD.full.split("{")[0],),
        max_upload_bytes=archive.settings.max_upload_bytes,
        page=web.refusal_page,
        streamed=re.compile(
            re.sub(r"\{\w+\}", "[^/]+", routes.UPLOAD_FILE.full)
            + "|"
            + re.escape(routes.PROJECT_FILE.full.split("{")[0])
            + "[^/]+/.+"
        ),
    )
    app.add_middleware(_InternalErrors)
    if archive.settings.forwarded_allow_ips:  # outermost: every layer sees the client's view
        from brainlife.server.proxy import ForwardedHeaders

        app.add_middleware(ForwardedHeaders, trusted=archive.settings.forwarded_allow_ips)
    _install_error_handlers(app)
    return app


class _BrainlifeRoutesOnly:
    """ASGI middleware of `bl serve --no-extensions`: the routes brainlife.io does not have
    (manifests, per-file downloads) answer 404 like any unknown path, as on brainlife.io."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # each route's fixed part: everything before its first parameter
        self.prefixes = tuple(r.full.split("{")[0] for r in routes.EXTENSIONS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefixes):
            await JSONResponse({"message": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _InternalErrors:
    """ASGI middleware: an unexpected exception is logged once, as one line with an error id
    and its traceback, and answered 500 with the same id, so a user's report finds the line.

    Starlette's own last resort (`ServerErrorMiddleware`, outside every other middleware)
    re-raises after answering, and uvicorn then logs the traceback a second time: ~14 KB of log
    per anonymous 96-byte request. Here the exception stops. If the response had already
    started, it is logged the same way and the connection is left for the server to close."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = secrets.token_hex(8)
            log.error(
                "error id %s: %s %r: %s: %r",
                error_id,
                scope.get("method"),
                str(scope.get("path"))[:200],
                type(exc).__name__,
                str(exc)[:200],
                exc_info=exc,
            )
            if not started:
                response = JSONResponse(
                    {
                        "message": f"Internal server error (error id {error_id}); the server "
                        "log has the details.",
                        "error_id": error_id,
                    },
                    status_code=500,
                )
                await response(scope, receive, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body: ErrorBody = {"message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if web.wants_html(request):
            return await run_in_threadpool(web.error_page, request, exc.status_code, exc.message)
        headers: dict[str, str] = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.size}"
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return _error(exc.status_code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return _error(400, "Bad request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and web.wants_html(request):
            message = f"There is no page at {request.url.path}."
            return await run_in_threadpool(web.error_page, request, 404, message)
        if exc.status_code == 404:
            return _error(404, f"No such route: {request.method} {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"Method {request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
