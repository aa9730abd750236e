"""The one place that speaks HTTP (urllib3) and turns transport failures and error statuses into
`brainlife.client` exceptions.

One PoolManager per client; idempotent requests are retried with exponential backoff on connection
errors and on 429/502/503/504, honouring ``Retry-After``; POSTs are retried only when the connection
could not be made (nothing was sent).
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Retry, Timeout

from brainlife.client._exceptions import (
    ApiError,
    AuthError,
    BrainlifeError,
    ConfigError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)

__all__ = [
    "CHUNK_SIZE",
    "HttpClient",
    "Response",
    "content_range",
    "encode_query",
    "error_for_status",
    "quote_path",
    "read_chunks",
]

#: Streaming downloads read this much per call (urllib3 is fastest with large reads).
CHUNK_SIZE = 1 << 20
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = (429, 502, 503, 504)
_AUTH_HINTS = (
    "jwt expired",
    "unauthorizederror",
    "invalid signature",
    "no authorization token",
    "jwt malformed",
    "invalid token",
)

Response = urllib3.BaseHTTPResponse


def encode_query(params: Mapping[str, Any] | None) -> str:
    """Percent-encode query parameters like the official CLI's `request` (``:`` becomes ``%3A``)."""
    if not params:
        return ""
    items = [
        (k, v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
        for k, v in params.items()
        if v is not None
    ]
    return urlencode(items, quote_via=quote, safe="")


def quote_path(path: str) -> str:
    """Quote a relative file path for use in a URL, keeping its slashes."""
    return quote(path.lstrip("/"), safe="/")


def _server_message(body: bytes, content_type: str) -> str:
    text = body[:4096].decode("utf-8", errors="replace").strip()
    if "json" in content_type or text.startswith("{"):
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            for key in ("message", "err", "error", "detail"):
                value = doc.get(key)
                if isinstance(value, str) and value:
                    return value
        if doc is not None:
            return text[:300]
    if "html" in content_type or text.lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        return f"an HTML page{' (' + title.group(1).strip() + ')' if title else ''}"
    return text[:300] or "no details given"


def error_for_status(status: int, body: bytes, content_type: str, base_url: str) -> BrainlifeError:
    """The exception for an error answer (status >= 400)."""
    message = _server_message(body, content_type)
    error = _error_for(status, message, base_url)
    error.status = status
    error.server_message = message
    return error


def _error_for(status: int, message: str, base_url: str) -> BrainlifeError:
    lowered = message.lower()
    if status == 401 or (status == 500 and any(h in lowered for h in _AUTH_HINTS)):
        if "expired" in lowered:
            return AuthError("Your access token has expired. Please log in again: run 'bl login'.")
        return AuthError(
            f"The server rejected your access token ({message}). "
            "Please log in again: run 'bl login'."
        )
    if status == 403:
        return PermissionDenied(f"Access denied: {message}")
    if status == 404:
        return NotFound(f"Not found: {message}")
    if status in (502, 503, 504):
        return ServerUnavailable(
            f"The server at {base_url} is unavailable (HTTP {status}: {message}). Try again later."
        )
    return ApiError(
        f"The server answered HTTP {status}: {message}", status=status, server_message=message
    )


class HttpClient:
    """A pooled urllib3 client bound to one base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_files: tuple[Path, ...] = (),
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        user_agent: str = "brainlife-python",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.timeout = Timeout(connect=connect_timeout, read=timeout)
        self.headers = {"User-Agent": user_agent}
        kwargs: dict[str, Any] = {"maxsize": 8}
        if self.base_url.startswith("https://"):
            context = ssl.create_default_context()
            for path in ca_files:
                try:
                    context.load_verify_locations(cafile=str(path))
                except (ssl.SSLError, OSError) as exc:
                    raise ConfigError(f"Cannot use the certificate bundle {path}: {exc}.") from exc
            kwargs["ssl_context"] = context
        self.pool = urllib3.PoolManager(**kwargs)

    def close(self) -> None:
        self.pool.clear()

    def ensure_pool_size(self, n: int) -> None:
        """Keep at least ``n`` connections per host alive (parallel downloads)."""
        if n > int(self.pool.connection_pool_kw.get("maxsize", 1)):
            self.pool.connection_pool_kw["maxsize"] = n
            self.pool.clear()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = encode_query(params)
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def _retry(self, method: str) -> Retry:
        if method in IDEMPOTENT:
            return Retry(
                total=self.retries,
                connect=self.retries,
                read=self.retries,
                status=self.retries,
                backoff_factor=self.backoff,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=IDEMPOTENT,
                respect_retry_after_header=True,
                raise_on_status=False,
            )
        return Retry(
            total=self.retries,
            connect=self.retries,
            read=0,
            status=0,
            other=0,
            backoff_factor=self.backoff,
            raise_on_status=False,
        )

    def _send(
        self, method: str, url: str, *, body: bytes | None, headers: dict[str, str], stream: bool
    ) -> Response:
        try:
            return self.pool.request(
                method,
                url,
                body=body,
                headers=headers,
                retries=self._retry(method),
                timeout=self.timeout,
                preload_content=not stream,
            )
        except MaxRetryError as exc:
            raise self._transport_error(exc.reason or exc) from exc
        except HTTPError as exc:
            raise self._transport_error(exc) from exc

    def _transport_error(self, exc: BaseException) -> BrainlifeError:
        where = self.base_url
        if isinstance(exc, SSLError):
            return ConfigError(
                f"Cannot establish a trusted TLS connection to {where} ({exc}). For a self-signed "
                "server certificate pass --ca-bundle <cert.pem> or set BL_CA_BUNDLE."
            )
        if isinstance(exc, NewConnectionError | ConnectTimeoutError):
            return ServerUnavailable(
                f"Cannot connect to {where}: the server is down or unreachable "
                "(check BLHOST and your network), even after retrying."
            )
        if isinstance(exc, ReadTimeoutError):
            return ServerUnavailable(
                f"The server at {where} did not answer in time, even after "
                "retrying. Try again later."
            )
        return ServerUnavailable(f"The connection to {where} failed ({exc}). Try again later.")

    def _headers(self, token: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        token: str | None = None,
    ) -> Any:
        """Send a request and return the decoded JSON answer; error statuses raise."""
        headers = self._headers(token, {"Accept": "application/json"})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        url = self.url(path, params)
        resp = self._send(method, url, body=body, headers=headers, stream=False)
        data = resp.data
        content_type = resp.headers.get("Content-Type", "")
        if resp.status >= 400:
            raise error_for_status(resp.status, data, content_type, self.base_url)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            kind = "an HTML page" if b"<html" in data[:512].lower() else f"{content_type or 'data'}"
            raise ProtocolError(
                f"The server answered {kind} instead of JSON for {path}; is "
                f"{self.base_url} a brainlife server (check BLHOST)?"
            ) from None

    @contextmanager
    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Response]:
        """GET with a streamed body; error statuses raise before the body is read."""
        resp = self._send(
            "GET",
            self.url(path, params),
            body=None,
            headers=self._headers(token, headers),
            stream=True,
        )
        try:
            if resp.status >= 400:
                body = resp.read(65536, decode_content=True)
                raise error_for_status(
                    resp.status, body, resp.headers.get("Content-Type", ""), self.base_url
                )
            yield resp
        except BaseException:
            resp.close()  # an unread body: drop the connection rather than reuse it
            raise
        else:
            resp.release_conn()


def content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, complete length) of ``Content-Range: bytes <a>-<b>/<n|*>``; None for what
    is missing or malformed."""
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value, re.I)
    if not match:
        return None, None
    total = match.group(2)
    return int(match.group(1)), (int(total) if total.isdigit() else None)


def read_chunks(resp: Response, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The body of a streamed response, mapping mid-body transport failures."""
    try:
        while True:
            chunk = resp.read(chunk_size, decode_content=True)
            if not chunk:
                return
            yield chunk
    except HTTPError as exc:
        raise ServerUnavailable(f"The download was cut off ({exc}). Try again.") from exc
