"""The server's one error hierarchy. Services raise these; `app.py` renders every one as
`{"message": ...}` with its status code (brainlife clients read `message`)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


class ApiError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status_code = 400


class QueryTimeout(BadRequest):
    """A statement ran past the query time budget (`Settings.query_timeout`) and was stopped.

    A 400, not a 5xx: it is the query's shape (a `$regex` over every row, a huge `$or`) that
    makes it slow, so the same query would fail again; a narrower one succeeds."""

    def __init__(self, budget: float | None) -> None:
        limit = f"the {budget:g} s budget" if budget else "the time budget"
        super().__init__(
            f"The query took longer than {limit} and was stopped; narrow it "
            "(a more precise find, fewer or simpler $regex, a smaller limit)."
        )


class Unauthorized(ApiError):
    """No valid token: missing, expired, forged, or a failed login."""

    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    """The request is valid but the object is not in a state that allows it (e.g. not stored)."""

    status_code = 409


class Gone(ApiError):
    """A data object that was removed (soft-deleted) and is not in a release."""

    status_code = 410


class PayloadTooLarge(ApiError):
    """A request body (an upload) over a limit of this server."""

    status_code = 413


class RangeNotSatisfiable(ApiError):
    status_code = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(ApiError):
    """The archive's disk is full (or would be): nothing accepted so far is lost."""

    status_code = 507


@contextlib.contextmanager
def full_disk_says(message: str) -> Iterator[None]:
    """A full disk (or quota) met inside the block becomes an `InsufficientStorage` saying
    `message`; any other `OSError` goes on as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(message) from None
        raise


LOGIN_AGAIN = "Please log in again (run 'bl login')."
