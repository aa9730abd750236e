"""The archive's web pages, served by `bl serve` at `/` next to the API under `/api/...`:
browse and search projects, publications and data objects, download a file, an object or a
selection, sign in with the API's accounts. Server-rendered (Jinja2), usable without JavaScript;
`static/app.js` only adds copy buttons and "select all".

`mount(app)` adds the pages (`pages.router`) and the static files; `wants_html` and `error_page`
let the application's error handlers answer a browser with a page where an API client gets JSON.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    from brainlife.server.web import pages

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def wants_html(request: Request) -> bool:
    """A browser asking for a page: not under /api, and `Accept` names text/html."""
    if request.url.path.startswith("/api/") or request.url.path == "/api":
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An error as a page, with the visitor's header (signed in or not, as on any page; shown
    as signed out when the visitor cannot be told, e.g. the database is what failed). Blocking
    (the session's check reads the database): run it in a worker thread."""
    from brainlife.server.web import render
    from brainlife.server.web import session as web_session

    title = _title(status)
    archive = getattr(request.app.state, "archive", None)
    visitor = None
    if archive is not None:
        try:
            visitor = web_session.visitor(request, archive)
        except Exception:  # the error page must not fail in turn
            visitor = None
    if visitor is None or archive is None:
        return _anonymous_error_page(request, status, message)
    return render.page(
        request, archive, visitor, "error.html", status=status, title=title, message=message
    )


def _title(status: int) -> str:
    return {404: "Not found", 403: "Not allowed", 401: "Sign in needed"}.get(status, "Error")


def _anonymous_error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    from brainlife.server.web import render

    html = (
        render.environment()
        .get_template("error.html")
        .render(
            visitor=None,
            csrf="",
            path=render.here(request),
            status=status,
            title=_title(status),
            message=message,
        )
    )
    return HTMLResponse(
        html, status_code=status, headers={**render.SECURITY_HEADERS, **(headers or {})}
    )


def refusal_page(scope: Scope, status: int, message: str) -> HTMLResponse | None:
    """A refusal of `limits.RequestLimits` (a URL or body over its bound) as a page when a
    browser asks for one (`wants_html`), else None (the JSON). Nothing of the request is read
    beyond its head, and the visitor is not looked up: drawn signed out."""
    request = Request(scope)
    if not wants_html(request):
        return None
    return _anonymous_error_page(request, status, message, {"Connection": "close"})
