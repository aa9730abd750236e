"""The server's one error hierarchy. Services raise these; `app.py` renders every one as
`{"message": ...}` with its status code (brainlife clients read `message`)."""

from __future__ import annotations


class ApiError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status_code = 400


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


LOGIN_AGAIN = "Please log in again (run 'bl login')."
