"""HTTP ranges, ETags and 304s: how every download route answers `Range`, `If-Range` and
`If-None-Match`, for a body of known length and for one whose length is known only once it has
been generated.

- `ranged_response`: a body of known length (a data object's tar, a stored file, a task file).
  200 or 206 (one range), 304 when `If-None-Match` names the current ETag, HEAD with the headers
  only, 416 for a start at or past the end.
- `RegeneratedResponse`: a body made while it is sent (a task folder's .tar.gz). Its bytes are a
  function of its ETag, so a range can be served by generating it again (see the class).

The rules are the same for both: one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); a malformed or
multiple `Range`, or an `If-Range` other than the current ETag (strong comparison), gets the whole
body (RFC 9110 allows it); `If-None-Match` uses the weak comparison (§13.1.2).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, Protocol

import anyio.lowlevel
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from brainlife.server.disposition import content_disposition
from brainlife.server.errors import BadRequest, RangeNotSatisfiable
from brainlife.server.tarstream import BodyChanged, Chunk, Regenerable

#: Digits of a byte position in `Range` (10**18 bytes is beyond any object).
RANGE_MAX_DIGITS = 18

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

#: `body(start, end, nonblocking)`: the bytes `[start, end)`, `None` when a read would block.
BodyFactory = Callable[[int, int, bool], Iterator[Chunk | None]]

_END = object()

log = logging.getLogger("brainlife.server.downloads")


def parse_range(
    header: str | None, size: int, *, if_range: str | None = None, etag: str | None = None
) -> tuple[int, int] | None:
    """The byte range `[start, end)` a `Range` header asks for, or None for the whole body.

    A range that starts at or past the end raises `RangeNotSatisfiable`; a position of more than
    `RANGE_MAX_DIGITS` digits is a `BadRequest`."""
    if not header:
        return None
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.group(1), match.group(2)
    if len(first) > RANGE_MAX_DIGITS or len(last) > RANGE_MAX_DIGITS:
        # int() of thousands of digits is refused by Python (and slow before that)
        raise BadRequest(
            f"Range {header[:40]!r}...: a byte position has at most {RANGE_MAX_DIGITS} digits."
        )
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(f"Range {header!r}: a zero-length suffix is empty.", size)
        return max(0, size - n), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignore
    if start >= size:
        raise RangeNotSatisfiable(
            f"Range {header!r} starts at or past the end of the {size}-byte body.", size
        )
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def quote_etag(value: str) -> str:
    return f'"{value}"'


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """`If-None-Match` against our ETag (weak comparison, `*` matches any)."""
    if not if_none_match or not etag:
        return False
    ours = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == ours:
            return True
    return False


def not_modified(etag: str) -> Response:
    """304: the client's copy (named by its ETag in `If-None-Match`) is current."""
    return Response(status_code=304, headers={"ETag": etag})


async def paced(
    chunks: Iterator[Chunk | None], on_complete: Callable[[], None] | None = None
) -> AsyncIterator[Chunk]:
    """Drive a chunk iterator for `StreamingResponse`, keeping memory flat under many clients.

    - Reads that the page cache can serve run on the event loop (no thread hop per chunk;
      with a worker thread per read, the threads' malloc arenas kept freed chunks and peak RSS
      with 50 clients was ~60 MB higher). When a read would wait for the disk the iterator
      yields `None` and the read runs in a worker thread, so a slow disk never stalls the loop.
    - After each chunk an empty chunk is sent: the server then waits until its write buffer
      has drained before the next chunk is read, so a slow client pins one chunk, not two.
    - `on_complete` runs (in a thread) once the last byte has been handed to the server.
    The iterator is closed (its file closed) however the response ends.
    """
    try:
        while True:
            chunk = next(chunks, _END)
            while chunk is None:
                chunk = await anyio.to_thread.run_sync(next, chunks, _END)
            if chunk is _END:
                break
            assert isinstance(chunk, bytes | memoryview)
            yield chunk
            yield b""
            # uvicorn's send returns at once, without suspending, once the client is gone; with
            # page-cache reads on the loop nothing else would suspend either, so without this
            # checkpoint the disconnect could never cancel us and the rest of the object would
            # be read (and counted as downloaded) for nobody.
            await anyio.lowlevel.checkpoint()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if on_complete is not None:
        await anyio.to_thread.run_sync(on_complete)


class Download(Protocol):
    """What a response of known length says about its body."""

    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str:
        """The validator, unquoted ("" for none)."""
        ...

    @property
    def media_type(self) -> str: ...
    @property
    def filename(self) -> str: ...


def ranged_response(
    request: Request,
    download: Download,
    body: BodyFactory,
    *,
    on_last_byte: Callable[[], None] | None = None,
    presign: Callable[[], str | None] | None = None,
) -> Response:
    """A 200 or 206 response for `[0, download.size)` honouring `Range`/`If-Range`, or 304 when
    `If-None-Match` names the current ETag; HEAD gets the headers only. `on_last_byte` runs
    once a GET body that ends with the last byte (a 200, or a 206 up to the end: a resumed
    download) has been handed to the server in full.

    `presign` (a store that can give a URL for the bytes, `store.ByteStore.presign`): a GET is
    answered with a 307 to that URL, so the bytes flow from the store, not through us; the
    client sends its `Range` there. `on_last_byte` then runs when a whole file is asked for
    (no `Range`), since the end of a body we do not send is never seen."""
    size, media_type = download.size, download.media_type
    etag = quote_etag(download.etag) if download.etag else None
    if etag and etag_matches(request.headers.get("if-none-match"), etag):
        return not_modified(etag)
    if presign is not None and request.method == "GET":
        url = presign()
        if url is not None:
            if on_last_byte is not None and "range" not in request.headers:
                on_last_byte()
            headers = {"Location": url, "Cache-Control": "no-store"}
            if etag:
                headers["ETag"] = etag
            return Response(status_code=307, headers=headers)
    span = parse_range(
        request.headers.get("range"),
        size,
        if_range=request.headers.get("if-range"),
        etag=etag,
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(download.filename),
    }
    if etag:
        headers["ETag"] = etag
    status = 200
    start, end = 0, size
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        paced(body(start, end, True), on_last_byte if end == size else None),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


# --- bodies of unknown length ------------------------------------------------------------------


#: Lengths of regenerated bodies by ETag, so that repeated resumes skip the measuring pass.
#: The bytes are a function of the tag, so a length stays true; old tags fall out.
_LENGTHS: OrderedDict[str, int] = OrderedDict()
_LENGTHS_MAX = 1024
_lengths_lock = threading.Lock()


def known_length(etag: str) -> int | None:
    """The length of the body `etag` names, if one with that tag was generated in full here."""
    with _lengths_lock:
        length = _LENGTHS.get(etag)
        if length is not None:
            _LENGTHS.move_to_end(etag)
        return length


def remember_length(etag: str, length: int) -> None:
    with _lengths_lock:
        _LENGTHS[etag] = length
        _LENGTHS.move_to_end(etag)
        while len(_LENGTHS) > _LENGTHS_MAX:
            _LENGTHS.popitem(last=False)


def whole(body: Regenerable, *, chunk_size: int, strict: bool = False) -> Iterator[bytes]:
    """The whole body; its length is remembered when every byte was the one the tag names."""
    produced = 0
    chunks = body.stream(chunk_size=chunk_size, strict=strict)
    try:
        while True:
            try:
                chunk = next(chunks)
            except StopIteration as done:
                if done.value:
                    remember_length(body.etag, produced)
                return
            produced += len(chunk)
            yield chunk
    finally:
        chunks.close()


def body_slice(body: Regenerable, start: int, end: int, *, chunk_size: int) -> Iterator[bytes]:
    """Bytes `[start, end)` of a strict stream, generated from the start (the prefix is made and
    dropped). Raises `BodyChanged` if the source changed, or if the stream ends before `end`."""
    pos = 0
    chunks = whole(body, chunk_size=chunk_size, strict=True)
    try:
        for chunk in chunks:
            lo, pos = pos, pos + len(chunk)
            if pos <= start:
                continue
            yield chunk[max(0, start - lo) : end - lo]
            if pos >= end:
                return
        raise BodyChanged(f"the body ended at byte {pos}, before byte {end}")
    except BodyChanged as exc:
        log.warning("a ranged download is cut short (its ETag no longer holds): %s", exc)
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _wants_range(range_header: str | None, if_range: str | None, etag: str) -> bool:
    """Whether `Range` (with its `If-Range`) asks for part of the body named `etag`: a single,
    well-formed range and no `If-Range` other than `etag`."""
    try:
        return parse_range(range_header, 2**63, if_range=if_range, etag=etag) is not None
    except RangeNotSatisfiable:  # `bytes=-0`: a 416, which must tell the real length
        return True


class RegeneratedResponse(StreamingResponse):
    """A body of unknown length (`Regenerable`): `ETag`, `Accept-Ranges: bytes`, `Range` /
    `If-Range` and `If-None-Match` honoured.

    The length is unknown until the body has been generated, yet a 206 must say where it ends
    (RFC 9110 §14.4: `Content-Range: bytes <first>-<last>/<length>`; only the length may be `*`,
    and an open-ended `bytes N-*/*` is not HTTP). So a range is answered in two passes over the
    same snapshot, both stepping in worker threads (generating is CPU work; the event loop only
    hands chunks on, through `paced`):

    1. measure: the whole body is generated and only counted (no network, no buffering). The
       length is remembered by ETag (`known_length`), so a second resume skips this pass;
    2. send: the body is generated again, the first `start` bytes dropped, and the rest sent
       as a 206 with `Content-Range: bytes start-(end-1)/length` and `Content-Length`.

    Both passes are strict: if the source changed since the snapshot, the measure falls back to a
    200 with the whole (new) body, and a send already under way is cut off (the client sees a
    short body; its next If-Range no longer matches). A start at or past the end gets 416 with
    `Content-Range: bytes */<length>`. HEAD gets the 200 headers (`ETag`, no `Content-Length`):
    range handling is defined for GET only (§14.2), and measuring for a HEAD is not worth its CPU.

    `snapshot` runs when the response is sent, after the route returned: no database session is
    held while it runs.
    """

    def __init__(
        self,
        request: Request,
        snapshot: Callable[[], Regenerable],
        *,
        media_type: str,
        filename: str,
        chunk_size: int,
    ) -> None:
        super().__init__(iter(()), media_type=media_type)
        self.snapshot = snapshot
        self.filename = filename
        self.chunk_size = chunk_size
        self.head = request.method == "HEAD"
        self.range = request.headers.get("range")
        self.if_range = request.headers.get("if-range")
        self.if_none_match = request.headers.get("if-none-match")

    async def stream_response(self, send: Send) -> None:
        body = await anyio.to_thread.run_sync(self.snapshot)
        if etag_matches(self.if_none_match, body.etag):  # the client's copy is current
            self.status_code = 304
            self.init_headers({"ETag": body.etag})
            self.body_iterator = _empty()
            await super().stream_response(send)
            return
        chunks: Iterator[bytes] | None = None
        headers = {"Accept-Ranges": "bytes"}
        if not self.head and _wants_range(self.range, self.if_range, body.etag):
            total = known_length(body.etag)
            if total is None:
                total = await self._measure(body)
            if total is None:  # changed since the snapshot: the whole new body
                body = await anyio.to_thread.run_sync(self.snapshot)
            else:
                start, end = parse_range(self.range, total) or (0, total)  # may raise: 416
                self.status_code = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
                headers["Content-Length"] = str(end - start)
                chunks = body_slice(body, start, end, chunk_size=self.chunk_size)
        if chunks is None and not self.head:
            chunks = whole(body, chunk_size=self.chunk_size)
        headers["ETag"] = body.etag
        headers["Content-Disposition"] = content_disposition(self.filename)
        self.init_headers(headers)
        if chunks is not None:
            self.body_iterator = paced(_in_worker_threads(chunks))
        await super().stream_response(send)

    async def _measure(self, body: Regenerable) -> int | None:
        """The body's length, generated and counted a chunk at a time in worker threads
        (cancelled with the request if the client goes away); None if the source changed."""
        chunks = whole(body, chunk_size=self.chunk_size, strict=True)
        total = 0
        try:
            while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
                total += len(chunk)
        except BodyChanged:
            return None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return total


async def _empty() -> Any:
    return
    yield b""  # an async generator that yields nothing


def _in_worker_threads(chunks: Iterator[bytes]) -> Generator[Chunk | None, None, None]:
    """`chunks` for `paced`, each one made in a worker thread: the `None` before each step
    tells `paced` to call `next()` from a thread, where the generating happens."""
    try:
        while True:
            yield None
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
