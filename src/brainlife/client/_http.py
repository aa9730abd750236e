"""The one place that speaks HTTP (urllib3) and turns transport failures and error statuses into
`brainlife.client` exceptions.

One PoolManager per client. Retries are ours, not urllib3's (its ``Retry`` only reports the
failure): idempotent requests are retried with exponential backoff on connection errors and on
429/502/503/504, POSTs only when the connection could not be made (nothing was sent).

``Retry-After`` is honoured up to ``MAX_RETRY_AFTER`` (a minute); a longer one ends the command
at once with the server's wait in the message (:class:`GaveUp`), rather than sleeping silently
for an hour. Every wait is told to the :class:`Liveness` listener, so it is shown, not silent.

How long to keep retrying is decided in two ways:

- a plain request (``request_json``: queries, login, manifests) gives up after ``retries``
  retries (a few seconds): a command against a server that is down fails fast;
- a download (``stream``, used by every file and tar fetch) keeps retrying while the run-wide
  :class:`Liveness` clock allows: the clock starts at the first failure after the last success
  (any answer, any body bytes) and, once ``give_up_after`` seconds pass without a success, every
  retry loop sharing this client (all workers of a bulk run) raises :class:`GaveUp`, and no new
  request is sent. The loops above this one (``fetch_file``, ``fetch_tar``) retry only bodies
  that were cut off, and wait through the same clock, so retries do not multiply: a server that
  stays away costs ``give_up_after`` seconds, not attempts x retries x files.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import ProtocolError as Urllib3ProtocolError
from urllib3.util import Retry, Timeout

from brainlife.client._exceptions import (
    ApiError,
    AuthError,
    BrainlifeError,
    Cancelled,
    ConfigError,
    GaveUp,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)

__all__ = [
    "CHUNK_SIZE",
    "GIVE_UP_AFTER",
    "MAX_RETRY_AFTER",
    "HttpClient",
    "Liveness",
    "Response",
    "RetryPolicy",
    "Transport",
    "Waiting",
    "content_range",
    "encode_query",
    "error_for_status",
    "quote_path",
]

#: Streaming downloads read this much per call (urllib3 is fastest with large reads).
CHUNK_SIZE = 1 << 20
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = (429, 502, 503, 504)
#: seconds without any success after which downloads stop retrying (``give_up_after``)
GIVE_UP_AFTER = 120.0
#: the longest ``Retry-After`` waited for; a longer one ends the command
MAX_RETRY_AFTER = 60.0
#: the longest pause between two retries
MAX_BACKOFF = 20.0


class Transport(Protocol):
    """What :class:`HttpClient` sends requests through: a ``urllib3.PoolManager`` by default;
    anything with its ``request`` and ``clear`` will do (a test's recorder, a proxy, a pool
    set up by the caller)."""

    def request(self, method: str, url: str, **kwargs: Any) -> Response: ...

    def clear(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Every retry rule of a client, in one place (``Client(retry=...)``); the loops that retry
    (``HttpClient._send``, ``fetch_file``, ``fetch_tar``) ask it, none has numbers of its own.

    - a plain request (``request_json``) is retried ``retries`` times;
    - a download request is retried while the run-wide :class:`Liveness` clock allows
      (``give_up_after`` seconds without any success);
    - a body cut off after the server answered is continued from where it stopped, at most
      ``attempts`` times per file (the pauses go through the same clock);
    - a file whose bytes do not match its manifest is fetched once more from zero
      (``checksum_retries``), then :class:`ChecksumMismatch`.

    Pauses double from ``backoff`` (requests) or ``cut_backoff`` (cut bodies), at most
    ``max_backoff``; a ``Retry-After`` is honoured up to ``max_retry_after``.
    """

    retries: int = 3
    backoff: float = 0.3
    attempts: int = 6
    cut_backoff: float = 1.0
    max_backoff: float = MAX_BACKOFF
    checksum_retries: int = 1
    give_up_after: float = GIVE_UP_AFTER
    max_retry_after: float = MAX_RETRY_AFTER

    def request_pause(self, failures: int) -> float:
        """The pause before retry number ``failures + 1`` of a request."""
        return min(self.max_backoff, self.backoff * 2**failures)

    def cut_pause(self, failures: int) -> float:
        """The pause after the ``failures``-th cut-off body of one transfer (1, 2, ...)."""
        return min(self.max_backoff, self.cut_backoff * 2 ** (failures - 1))


#: urllib3 only reports failures (our loop retries); redirects are still followed
_NO_RETRY = Retry(
    total=None,
    connect=0,
    read=0,
    status=0,
    other=0,
    redirect=5,
    raise_on_status=False,
    respect_retry_after_header=False,
)
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


#: statuses of a route the server does not have: as an HTML page, the sign of a web server
#: that is not brainlife's API at BLHOST
_NO_ROUTE_STATUSES = (404, 405, 501)


def error_for_status(
    status: int, body: bytes, content_type: str, base_url: str, path: str | None = None
) -> BrainlifeError:
    """The exception for an error answer (status >= 400); ``path``: the API route asked, named
    when an HTML page says the server has no such route (BLHOST may be wrong)."""
    message = _server_message(body, content_type)
    error = _error_for(status, message, base_url)
    if path and status in _NO_ROUTE_STATUSES and message.startswith("an HTML page"):
        error.message += f" for {path}; is {base_url} a brainlife server (check BLHOST)?"
    error.status = status
    error.server_message = message
    return error


def _error_for(status: int, message: str, base_url: str) -> BrainlifeError:
    lowered = message.lower()
    if status == 401 or (status == 500 and any(h in lowered for h in _AUTH_HINTS)):
        if "expired" in lowered:
            return AuthError("Your access token has expired. Please log in again: run 'bl login'.")
        if "bl login" in lowered:  # the server says what to do already
            return AuthError(f"The server rejected your access token: {message}")
        return AuthError(
            f"The server rejected your access token ({message}). "
            "Please log in again: run 'bl login'."
        )
    if status == 403:
        return PermissionDenied(f"Access denied: {message}")
    if status == 404:
        # a sentence of its own (ours: "Nothing to release: …", "No project matches …") is said
        # as it is; a fragment (brainlife's "couldn't find the dataset specified") is named
        sentence = message[:1].isupper() and message.rstrip().endswith((".", "'", ")"))
        return NotFound(message if sentence else f"Not found: {message}")
    if status in (502, 503, 504):
        return ServerUnavailable(
            f"The server at {base_url} is unavailable (HTTP {status}: {message}). Try again later."
        )
    return ApiError(
        f"The server answered HTTP {status}: {message}", status=status, server_message=message
    )


def short_duration(seconds: float) -> str:
    """``1m40s``, ``45s``, ``2h05m``: a wait, for a status line."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Waiting:
    """A retry about to wait: why, since when, for how long, and when the run gives up."""

    #: what failed, e.g. "server unreachable" or "server busy (HTTP 503)"
    reason: str
    #: wall-clock time (``time.time()``) of the first failure after the last success
    since: float
    #: seconds until this retry
    retry_in: float
    #: seconds until the run stops retrying (None: a plain request, a few retries)
    gives_up_in: float | None

    def message(self) -> str:
        """``server unreachable since 14:02:11, retrying in 2s (gives up in 1m40s)``."""
        when = datetime.fromtimestamp(self.since).strftime("%H:%M:%S")
        text = f"{self.reason} since {when}, retrying in {short_duration(self.retry_in)}"
        if self.gives_up_in is None:
            return text
        return f"{text} (gives up in {short_duration(self.gives_up_in)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "since": datetime.fromtimestamp(self.since).astimezone().isoformat(timespec="seconds"),
            "waited": round(max(0.0, time.time() - self.since), 1),
            "retry_in": round(self.retry_in, 1),
            "gives_up_in": None if self.gives_up_in is None else round(self.gives_up_in, 1),
            "message": self.message(),
        }


class Liveness:
    """The run-wide "last success" clock, one per :class:`HttpClient` (so shared by every worker
    of a bulk run).

    ``alive()`` (any answer, any body bytes) stops it; ``failing()`` (the first failure after a
    success) starts it. ``wait()`` is the one pause before a download retry: it tells the
    ``listener`` (a :class:`Waiting`; ``None`` when the server answers again), never sleeps past
    the deadline and raises :class:`GaveUp` once ``give_up_after`` seconds have passed with
    nothing but failures. Only failing time counts: each run (a bulk run, a single download)
    starts with ``reset()``, and only downloads start the clock (a failed query does not).
    """

    def __init__(self, base_url: str, give_up_after: float = GIVE_UP_AFTER) -> None:
        self.base_url = base_url
        self.give_up_after = give_up_after
        self.listener: Callable[[Waiting | None], None] | None = None
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the failing stretch
        self._since_wall = 0.0
        self._reason = ""

    def reset(self) -> None:
        """A new run starts: an old failing stretch (before idle time) no longer counts."""
        with self._lock:
            self._since = None

    def alive(self) -> None:
        """The server answered (or sent body bytes): the clock stops."""
        if self._since is None:  # the hot path (every body chunk): one attribute read
            return
        with self._lock:
            was_failing, self._since = self._since is not None, None
        if was_failing and self.listener is not None:
            self.listener(None)

    def failing(self, reason: str) -> None:
        """A request failed: the clock starts (if it is not running yet)."""
        with self._lock:
            if self._since is None:
                self._since, self._since_wall = time.monotonic(), time.time()
            self._reason = reason

    def remaining(self) -> float:
        """Seconds left before giving up (all of ``give_up_after`` while nothing fails)."""
        since = self._since
        if since is None:
            return self.give_up_after
        return self.give_up_after - (time.monotonic() - since)

    def check(self) -> None:
        """Raise :class:`GaveUp` once the deadline has passed (before sending anything)."""
        if self._since is not None and self.remaining() <= 0:
            raise self._gave_up()

    def _gave_up(self) -> GaveUp:
        when = datetime.fromtimestamp(self._since_wall).strftime("%H:%M:%S")
        return GaveUp(
            f"The server at {self.base_url} has been unavailable since {when} ({self._reason}); "
            f"gave up after {short_duration(self.give_up_after)} of retrying. "
            "Try again later: partial files are kept.",
            hint="give-up-after",
        )

    def tell(self, waiting: Waiting | None) -> None:
        if self.listener is not None:
            self.listener(waiting)

    def wait(self, seconds: float, reason: str, cancel: threading.Event | None = None) -> None:
        """Pause ``seconds`` before a retry (at most until the deadline), told to the listener;
        :class:`GaveUp` when the deadline passes, :class:`Cancelled` when ``cancel`` is set."""
        self.failing(reason)
        left = self.remaining()
        if left <= 0:
            raise self._gave_up()
        pause = min(seconds, left)
        self.tell(Waiting(reason, self._since_wall, pause, left))
        if cancel is None:
            time.sleep(pause)
        elif cancel.wait(pause):
            raise Cancelled("Interrupted.")
        self.check()


def retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _speaks(host: str, port: int, *, tls: bool, timeout: float = 3.0) -> bool:
    """Whether ``host:port`` answers a TLS handshake (``tls``) or a plain HTTP request: to tell
    a scheme mistake (http:// against a TLS server, or the reverse) from a broken server. The
    probe sends no credentials; a TLS handshake is not verified, only observed."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(sock, server_hostname=host):
                    return True
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except (OSError, ssl.SSLError):
        return False


class HttpClient:
    """A pooled urllib3 client bound to one base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_files: tuple[Path, ...] = (),
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        policy: RetryPolicy | None = None,
        user_agent: str = "brainlife-python",
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.liveness = Liveness(self.base_url, self.policy.give_up_after)
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
        self.pool: Transport = transport or urllib3.PoolManager(**kwargs)

    def close(self) -> None:
        self.pool.clear()

    def ensure_pool_size(self, n: int) -> None:
        """Keep at least ``n`` connections per host alive (parallel downloads)."""
        pool = self.pool
        if isinstance(pool, urllib3.PoolManager) and n > int(
            pool.connection_pool_kw.get("maxsize", 1)
        ):
            pool.connection_pool_kw["maxsize"] = n
            pool.clear()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """``base_url`` + ``path`` + the query. A ``.`` or ``..`` segment (from an id or a
        file path the user gave) is refused: HTTP clients resolve it, so the request would go
        to another route than the one meant."""
        dots = [s for s in path.split("/") if s in (".", "..")]
        if dots:
            raise ConfigError(
                f"An id or path given has a {dots[0]!r} part ({unquote(path)}): name a file or "
                "folder by its plain path inside the object or task, e.g. 'output/stats'."
            )
        query = encode_query(params)
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        stream: bool,
        patient: bool = False,
        cancel: threading.Event | None = None,
        redirect: bool = True,
    ) -> Response:
        """One request, retried by the rules of the module docstring: ``patient`` retries until
        the liveness clock gives up, else at most ``retries`` times. A retryable status still
        there at the end is returned (the caller maps it to an exception). ``redirect=False``
        returns a redirect as it is (the caller follows it)."""
        idempotent = method in IDEMPOTENT
        failures = 0
        first: float | None = None  # wall-clock time of the first failure
        while True:
            if patient:  # past the deadline no download request is sent (no new file starts)
                self.liveness.check()
            try:
                resp = self.pool.request(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    retries=_NO_RETRY,
                    timeout=self.timeout,
                    preload_content=not stream,
                    redirect=redirect,
                )
            except (MaxRetryError, HTTPError) as exc:
                cause = (exc.reason or exc) if isinstance(exc, MaxRetryError) else exc
                error = self._transport_error(cause)
                retryable = isinstance(error, ServerUnavailable) and (
                    idempotent or isinstance(cause, ConnectTimeoutError)
                )
                if not retryable or (not patient and failures >= self.policy.retries):
                    raise error from exc
                reason, pause, asked = (
                    "server unreachable",
                    self.policy.request_pause(failures),
                    None,
                )
            else:
                if not (idempotent and resp.status in RETRY_STATUSES):
                    self.liveness.alive()
                    return resp
                asked = self._asked_wait(resp, stream)
                if not patient and failures >= self.policy.retries:
                    return resp
                self._message_of(resp, stream)  # read and drop: the connection is reused
                reason = f"server busy (HTTP {resp.status})"
                pause = asked if asked is not None else self.policy.request_pause(failures)
            failures += 1
            if patient:
                self.liveness.wait(pause, reason, cancel)
                continue
            # a plain request: a few quick retries, outside the liveness clock; a wait the
            # server asked for is told (the others are too short to be news)
            first = first or time.time()
            if asked is not None:
                self.liveness.tell(Waiting(reason, first, pause, None))
            time.sleep(pause)

    def _asked_wait(self, resp: Response, stream: bool) -> float | None:
        """The wait a busy answer asks for (``Retry-After``); :class:`GaveUp` when it is longer
        than the policy waits."""
        asked = retry_after(resp.headers.get("Retry-After"))
        if asked is not None and asked > self.policy.max_retry_after:
            message = self._message_of(resp, stream)
            raise GaveUp(
                f"The server at {self.base_url} asks to wait "
                f"{short_duration(asked)} before trying again (HTTP {resp.status}, "
                f"Retry-After: {resp.headers.get('Retry-After')}: {message}); bl "
                f"waits at most {short_duration(self.policy.max_retry_after)}. "
                "Try again later: partial files are kept."
            )
        return asked

    def _message_of(self, resp: Response, stream: bool) -> str:
        """The server's message in an error answer (its body read, and the connection freed)."""
        body = resp.read(65536, decode_content=True) if stream else resp.data
        if not stream:
            pass
        elif resp.length_remaining == 0:
            resp.release_conn()
        else:
            resp.close()
        return _server_message(body or b"", resp.headers.get("Content-Type", ""))

    def _transport_error(self, exc: BaseException) -> BrainlifeError:
        where = self.base_url
        scheme, _, hostport = where.partition("://")
        host, _, port = hostport.partition("/")[0].rpartition(":")
        if not port.isdigit():
            host, port = hostport.partition("/")[0], "443" if scheme == "https" else "80"
        host = host.strip("[]")
        if isinstance(exc, SSLError):
            if "CERTIFICATE_VERIFY_FAILED" not in str(exc) and _speaks(host, int(port), tls=False):
                return ConfigError(
                    f"The server at {where} speaks plain HTTP, not TLS: use "
                    f"http://{hostport} (BLHOST) instead of https://."
                )
            return ConfigError(
                f"Cannot establish a trusted TLS connection to {where} ({exc}). For a self-signed "
                "server certificate trust its certificate (BL_CA_BUNDLE=<cert.pem>).",
                hint="ca-bundle",
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
        if (
            scheme == "http"
            and isinstance(exc, Urllib3ProtocolError)
            and _speaks(host, int(port), tls=True)
        ):
            return ConfigError(
                f"The server at {where} speaks TLS (HTTPS), not plain HTTP: use "
                f"https://{hostport} (BLHOST) instead of http://."
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
            raise error_for_status(resp.status, data, content_type, self.base_url, path)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            if b"<html" in data[:512].lower():
                what = "an HTML page instead of JSON"
            elif "json" in content_type:
                what = f"malformed JSON ({len(data)} bytes, cut off or not JSON)"
            else:
                what = f"{content_type or 'data'} instead of JSON"
            raise ProtocolError(
                f"The server answered {what} for {path}; is "
                f"{self.base_url} a brainlife server (check BLHOST)?"
            ) from None

    def send_once(
        self,
        method: str,
        path: str,
        *,
        body: Iterable[bytes | memoryview],
        token: str | None,
        headers: Mapping[str, str],
    ) -> Response:
        """One request with a streamed body (an upload), never retried here: its body cannot be
        replayed, so the caller resumes from what the server holds. A transport failure raises
        :class:`ServerUnavailable`; any answer is returned as is (body read)."""
        try:
            return self.pool.request(
                method,
                self.url(path),
                body=body,
                headers=self._headers(token, headers),
                retries=_NO_RETRY,
                timeout=self.timeout,
                preload_content=True,
            )
        except (MaxRetryError, HTTPError) as exc:
            cause = (exc.reason or exc) if isinstance(exc, MaxRetryError) else exc
            raise self._transport_error(cause) from exc

    @contextmanager
    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
        follow_redirects: bool = True,
        absolute: bool = False,
    ) -> Iterator[Response]:
        """GET with a streamed body (a download: retried while the liveness clock allows);
        error statuses raise before the body is read. ``follow_redirects=False`` yields a
        redirect as it is; ``absolute``: ``path`` is a whole URL of another host (a presigned
        URL of an object store), sent without a token."""
        if absolute and token:
            raise ValueError("a token is never sent to another host")
        resp = self._send(
            "GET",
            path if absolute else self.url(path, params),
            body=None,
            headers=self._headers(token, headers),
            stream=True,
            patient=True,
            cancel=cancel,
            redirect=follow_redirects,
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
