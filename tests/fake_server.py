"""A tiny real HTTP server (stdlib, in a thread) for client and CLI tests: routes are set per test
and every request is recorded, so tests can pin the exact requests a command sends."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json_param(self, name: str) -> Any:
        return json.loads(self.query[name])

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None


Answer = tuple[int, dict[str, str], bytes | Iterator[bytes]]
Handler = Callable[[Req], Answer]


@dataclass
class FakeServer:
    url: str = ""
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[Req] = field(default_factory=list)

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def json(
        self,
        method: str,
        path: str,
        doc: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(doc).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self.route(method, path, lambda req: (status, hdrs, body))

    def calls(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[1]


def make_jwt(exp: float | None = None, **claims: Any) -> str:
    def b64(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    payload = dict(claims)
    payload.setdefault("sub", 1)
    if exp is not None:
        payload["exp"] = exp
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}.c2ln"


def valid_jwt() -> str:
    return make_jwt(time.time() + 3600)


def _handler_class(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _do(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            req = Req(
                self.command,
                unquote(parts.path),
                query,
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            server.requests.append(req)
            handler = server.routes.get((self.command, req.path))
            if handler is None:
                status, headers, payload = (
                    404,
                    {"Content-Type": "application/json"},
                    json.dumps({"message": f"No such route: {self.command} {req.path}"}).encode(),
                )
            else:
                status, headers, payload = handler(req)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if isinstance(payload, bytes):
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in payload:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        do_GET = do_POST = do_PUT = do_DELETE = _do

    return H


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("BLHOST", state.url)
    yield state
    httpd.shutdown()
    httpd.server_close()
