"""The one exception tree of the client library.

Every message is a sentence the user can act on; the CLI prints it after ``Error:``.

    BrainlifeError
    ├── ConfigError          bad host, unreadable token file, bad option values
    ├── AuthError            no token, expired or rejected token, failed login
    ├── PermissionDenied     HTTP 403
    ├── NotFound             HTTP 404, or an id that matches nothing
    ├── ApiError             any other error status (``status``, server ``message``)
    │   └── Conflict         HTTP 409 to a change: the object's state forbids it (a release
    │                        name in use, a released data object)
    ├── ServerUnavailable    connection refused, timeouts, 502/503/504 after retries
    │   └── GaveUp           no answer for ``give_up_after`` seconds, or a Retry-After longer
    │                        than the client waits: the whole run stops (partial files kept)
    ├── ProtocolError        an unexpected answer (HTML or JSON instead of a tar)
    ├── ChecksumMismatch     a downloaded file's size or sha256 differs from the manifest
    ├── DiskFullError        no space left while writing (``needed`` bytes, ``free`` bytes)
    ├── UploadRefused        files that do not fit the datatype (or the archive), refused
    │                        before a byte moves
    ├── SourceChanged        a file changed while it was being uploaded
    └── Cancelled            the run was stopped (Ctrl-C); partial files are kept
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "HINTS",
    "ApiError",
    "AuthError",
    "BrainlifeError",
    "Cancelled",
    "ChecksumMismatch",
    "ConfigError",
    "Conflict",
    "DiskFullError",
    "GaveUp",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "ServerUnavailable",
    "SourceChanged",
    "UploadRefused",
]


class BrainlifeError(Exception):
    """Root of every error raised by `brainlife.client`.

    ``code`` names the kind of failure (one per class, stable: a program, or the CLI's exit
    code, goes by it); ``hint`` optionally names what the user can change, as a key that a
    front end renders in its own words (the CLI as a flag: see :data:`HINTS`), since the library
    does not know its caller's flags."""

    code: ClassVar[str] = "error"
    #: the HTTP status and the server's own message, when the error came from an answer
    status: int | None = None
    server_message: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(BrainlifeError):
    """The configuration (host, token file, certificate bundle, option values) is unusable."""

    code = "config"


class AuthError(BrainlifeError):
    """Not logged in, the token expired or was rejected, or the login failed."""

    code = "auth"


class PermissionDenied(BrainlifeError):
    """The server refused access (HTTP 403)."""

    code = "permission"


class NotFound(BrainlifeError):
    """The requested object does not exist or is not visible to you."""

    code = "not-found"


class ApiError(BrainlifeError):
    """The server answered with an error status."""

    code = "api"

    def __init__(
        self, message: str, *, status: int | None = None, server_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class Conflict(ApiError):
    """The server refused a change that the object's state does not allow (HTTP 409): a release
    name already used in the publication, a change to a released or removed data object."""

    code = "conflict"


class ServerUnavailable(BrainlifeError):
    """The server could not be reached, or kept failing after retries."""

    code = "unavailable"


class GaveUp(ServerUnavailable):
    """The server stayed away too long (no answer for ``give_up_after`` seconds, or it asked
    for a wait longer than the client accepts): every retry loop of the run stops.

    ``left`` names what a bulk run had not finished when it stopped (data object ids)."""

    code = "gave-up"

    def __init__(
        self, message: str, *, left: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.left = list(left or [])


class ProtocolError(BrainlifeError):
    """The server's answer was not what the request expects (e.g. an HTML page instead of a tar)."""

    code = "protocol"


class ChecksumMismatch(BrainlifeError):
    """A downloaded file does not match its manifest (size or sha256)."""

    code = "checksum"


class DiskFullError(BrainlifeError):
    """The disk filled up while writing a download."""

    code = "disk-full"

    def __init__(
        self,
        message: str,
        *,
        needed: int | None = None,
        free: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.needed = needed
        self.free = free


class UploadRefused(BrainlifeError):
    """An upload that cannot be made as asked: a file the datatype does not have, a required
    file missing, an unsafe name, a folder that is not one; refused before a byte moves."""

    code = "upload-refused"


class SourceChanged(BrainlifeError):
    """A file changed (size, time or content) between being planned and being sent."""

    code = "source-changed"


class Cancelled(BrainlifeError):
    """The run was stopped (Ctrl-C); partial files are kept for the next run."""

    code = "cancelled"


#: the hints a library error may carry (``BrainlifeError.hint``), and what each one means
HINTS = {
    "give-up-after": "how long to keep retrying a server that is away",
    "existing-overwrite": "replace files no download wrote",
    "ignore-expiry": "start although the token may expire first (or get a longer one)",
    "directory": "download into another folder",
    "output": "name the file to save",
    "layout": "choose another layout; a dry run shows the plan",
    "ca-bundle": "trust a certificate bundle",
}
