"""The one exception tree of the client library.

Every message is a sentence the user can act on; the CLI prints it after ``Error:``.

    BrainlifeError
    ├── ConfigError          bad host, unreadable token file, bad option values
    ├── AuthError            no token, expired or rejected token, failed login
    ├── PermissionDenied     HTTP 403
    ├── NotFound             HTTP 404, or an id that matches nothing
    ├── ApiError             any other error status (``status``, server ``message``)
    ├── ServerUnavailable    connection refused, timeouts, 502/503/504 after retries
    │   └── GaveUp           no answer for ``give_up_after`` seconds, or a Retry-After longer
    │                        than the client waits: the whole run stops (partial files kept)
    ├── ProtocolError        an unexpected answer (HTML or JSON instead of a tar)
    ├── ChecksumMismatch     a downloaded file's size or sha256 differs from the manifest
    ├── DiskFullError        no space left while writing (``needed`` bytes, ``free`` bytes)
    └── Cancelled            the run was stopped (Ctrl-C); partial files are kept
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "BrainlifeError",
    "Cancelled",
    "ChecksumMismatch",
    "ConfigError",
    "DiskFullError",
    "GaveUp",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "ServerUnavailable",
]


class BrainlifeError(Exception):
    """Root of every error raised by `brainlife.client`."""

    #: the HTTP status and the server's own message, when the error came from an answer
    status: int | None = None
    server_message: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BrainlifeError):
    """The configuration (host, token file, certificate bundle, option values) is unusable."""


class AuthError(BrainlifeError):
    """Not logged in, the token expired or was rejected, or the login failed."""


class PermissionDenied(BrainlifeError):
    """The server refused access (HTTP 403)."""


class NotFound(BrainlifeError):
    """The requested object does not exist or is not visible to you."""


class ApiError(BrainlifeError):
    """The server answered with an error status."""

    def __init__(
        self, message: str, *, status: int | None = None, server_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class ServerUnavailable(BrainlifeError):
    """The server could not be reached, or kept failing after retries."""


class GaveUp(ServerUnavailable):
    """The server stayed away too long (no answer for ``give_up_after`` seconds, or it asked
    for a wait longer than the client accepts): every retry loop of the run stops.

    ``left`` names what a bulk run had not finished when it stopped (data object ids)."""

    def __init__(self, message: str, *, left: list[str] | None = None) -> None:
        super().__init__(message)
        self.left = list(left or [])


class ProtocolError(BrainlifeError):
    """The server's answer was not what the request expects (e.g. an HTML page instead of a tar)."""


class ChecksumMismatch(BrainlifeError):
    """A downloaded file does not match its manifest (size or sha256)."""


class DiskFullError(BrainlifeError):
    """The disk filled up while writing a download."""

    def __init__(self, message: str, *, needed: int | None = None, free: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed
        self.free = free


class Cancelled(BrainlifeError):
    """The run was stopped (Ctrl-C); partial files are kept for the next run."""
