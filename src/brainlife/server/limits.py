"""Bounds on what one request can make the server read and hold: its URL, its head, its body.

Without them a client decides how much memory a request costs: a 500 MB JSON body sent to the
login route was read in full before the 400 (RSS 172 → 1,160 MiB). Every refusal is a JSON
`{"message": ...}` naming the limit, like any other error (a browser outside `/api` gets it as a
page, `web.refusal_page`; see docs/api.md, "Limits"):

- `RequestLimits` (ASGI middleware, in front of every route): a URL (path and query string) over
  `Settings.max_url_bytes` → 414; a declared `Content-Length` over `Settings.max_body_bytes` →
  413 without reading a byte of the body; a body without a length (chunked) is counted as it
  arrives and refused (413) the moment it passes the limit, so at most one limit's worth (plus
  one chunk) is ever held. The one exception is a request `streamed` names (an upload's
  `PUT /upload/<id>/file/<n>`): its route writes the body to disk as it arrives, never holds
  it, and bounds it itself by the file's declared size.
- `httpproto.BoundedHttpToolsProtocol` (what `bl serve` hands uvicorn) bounds the request line
  (`MAX_REQUEST_LINE_BYTES`) and the headers (`MAX_HEADER_BYTES`), parsed before any
  middleware runs, and answers JSON 414 / 431 instead of uvicorn's plain-text 400.
- `json_body` parses a JSON request body within `MAX_JSON_DEPTH` levels of nesting (deeper
  input made the decoder hit Python's recursion limit: a 500) and refuses strings that cannot
  be stored as UTF-8 (lone surrogates such as `"\\ud800"`, another 500 once they reached the
  database) or that hold a NUL (`"\\u0000"`: PostgreSQL's text cannot hold it, SQLite stored
  it; refused alike on every engine).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brainlife.server.errors import BadRequest

#: What the HTTP parser accepts before any middleware sees the request (the middleware's URL
#: limit applies within it): the request line, and all the header lines together.
MAX_REQUEST_LINE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
#: Nesting depth of a JSON request body (`{"ids": [...]}` has 2).
MAX_JSON_DEPTH = 32


def _refusal(status: int, message: str) -> JSONResponse:
    # the unread body (if any) makes the connection unusable for another request
    return JSONResponse({"message": message}, status_code=status, headers={"Connection": "close"})


def url_too_long(length: int, limit: int) -> str:
    return (
        f"The URL is too long: {length} bytes (path and query string); this server accepts at "
        f"most {limit}. Ask for less per request (a shorter find, fewer ids)."
    )


def body_too_large(length: int | None, limit: int) -> str:
    size = f"{length} bytes" if length is not None else f"more than {limit} bytes"
    return (
        f"The request body is too large: {size}; this server accepts at most {limit} bytes "
        "per request body."
    )


class RequestLimits:
    """ASGI middleware: refuse URLs over `max_url_bytes` (414) and bodies over
    `max_body_bytes` (413), the latter before they are read (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_url_bytes: int,
        max_body_bytes: int,
        upload_prefixes: tuple[str, ...] = (),
        max_upload_bytes: int = 0,
        streamed: re.Pattern[str] | None = None,
        page: Callable[[Scope, int, str], Response | None] | None = None,
    ) -> None:
        self.app = app
        #: a refusal as a page for a browser (`web.refusal_page`), or None: the JSON
        self.page = page
        self.max_url_bytes = max_url_bytes
        self.max_body_bytes = max_body_bytes
        #: paths taking a file's bytes (uploads): their bound is `max_upload_bytes`
        self.upload_prefixes = upload_prefixes
        self.max_upload_bytes = max_upload_bytes
        #: `PUT` paths whose bodies the route streams to disk and bounds itself
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
        url_length = len(raw_path) + len(scope.get("query_string") or b"")
        if url_length > self.max_url_bytes:
            refusal = self._refusal(scope, 414, url_too_long(url_length, self.max_url_bytes))
            await refusal(scope, receive, send)
            return
        if (
            self.streamed is not None
            and scope.get("method") == "PUT"
            and self.streamed.fullmatch(str(scope.get("path", "")))
        ):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        if self.upload_prefixes and str(scope.get("path", "")).startswith(self.upload_prefixes):
            limit = self.max_upload_bytes
        declared = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                if not value.strip().isdigit() or len(value) > 20:
                    await _refusal(400, "Content-Length must be a number of bytes.")(
                        scope, receive, send
                    )
                    return
                declared = int(value)
        if declared is not None and declared > limit:
            await self._refusal(scope, 413, body_too_large(declared, limit))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive, limit), send)

    def _refusal(self, scope: Scope, status: int, message: str) -> Response:
        page = self.page(scope, status, message) if self.page is not None else None
        return page if page is not None else _refusal(status, message)

    def _counting(self, receive: Receive, limit: int) -> Receive:
        """`receive`, refusing the body (413, rendered by the app's handler) once it passes the
        limit: a body sent without Content-Length is only known as it arrives."""
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, body_too_large(None, limit), {"Connection": "close"})
            return message

        return counted


# --- JSON bodies -------------------------------------------------------------------------------

#: A JSON string (skipped whole, so brackets inside it do not count) or a bracket.
#: The closing quote is optional so that an unterminated string is one match to the end (a
#: rescan from every later quote would be quadratic).
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether `raw` nests arrays/objects more than `limit` deep (checked before decoding:
    Python's decoder recurses once per level)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _unstorable_string(value: Any) -> str | None:
    """What makes `value` unstorable, if a string in it (key or value, at any depth) holds a
    lone surrogate (not UTF-8) or a NUL (PostgreSQL's text cannot hold U+0000; SQLite can, so
    it is refused here for every engine alike); else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "that is not valid Unicode (a lone surrogate such as \\ud800)"
            if "\x00" in item:
                return "with a NUL character (\\u0000), which the archive cannot store"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def json_body(raw: bytes) -> Any:
    """The JSON value of a request body, or a `BadRequest` saying what is wrong with it."""
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise BadRequest(
            f"The JSON body is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays "
            "and objects are accepted."
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The request body must be valid JSON (UTF-8).") from None
    problem = _unstorable_string(data)
    if problem is not None:
        raise BadRequest(f"The JSON body holds a string {problem}.")
    return data
