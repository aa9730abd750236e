"""The HTTP/1.1 protocol `bl serve` hands uvicorn: its httptools protocol with the request line
and the header section bounded.

Both are parsed before any ASGI middleware runs, and uvicorn's httptools protocol appends URL
and header fragments without bound (a 100 MB request line is held in full), then answers a parse
error with a plain-text 400. Here parsing stops at `MAX_REQUEST_LINE_BYTES` / `MAX_HEADER_BYTES`
and the answer is JSON like every other error: 414 for the URL, 431 for the headers, 400 for the
rest. URLs within the parser's bound but over `Settings.max_url_bytes` are refused (414) by
`limits.RequestLimits`.

A module of its own, imported only by `bl serve`: uvicorn is then imported only by the server
process, and the class is found by name when uvicorn starts worker processes.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from brainlife.server.limits import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES, url_too_long

_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes of a request's head (request line and headers) as they arrive: the
    parser holds a header value whole before it hands it over, so counting finished headers
    would not bound memory."""

    _refusal: tuple[int, str] | None = None
    _in_head = False
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._refusal = None
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_LINE_BYTES + MAX_HEADER_BYTES:
                self._refusal = (
                    431,
                    "The request's headers are too large: this server accepts at most "
                    f"{MAX_HEADER_BYTES} bytes of headers.",
                )
                self.send_400_response("")
                return
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_REQUEST_LINE_BYTES:
            self._refusal = (414, url_too_long(len(self.url), MAX_REQUEST_LINE_BYTES))
            raise ValueError("URL too long")  # stops the parser; send_400_response follows

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            status, message = 400, f"{msg} It is not HTTP/1.1 that this server can parse."
        else:
            status, message = self._refusal
        body = json.dumps({"message": message}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
