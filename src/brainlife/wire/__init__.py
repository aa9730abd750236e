"""The wire contract shared by the server and the client.

Only the standard library is imported here: the client imports this module on every `bl` call.
The shapes follow brainlife.io (see docs/api.md); the routes marked *ours* are additions that the
official service does not have.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypedDict

from brainlife.wire.routes import API_AMARETTI, API_AUTH, API_WAREHOUSE, Route
from brainlife.wire.uploads import (
    UploadDigest,
    UploadFileRequest,
    UploadFileState,
    UploadRequest,
    UploadSession,
)

#: Default number of rows a brainlife list route returns when `limit` is not given.
DEFAULT_LIMIT: Final = 100

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def is_object_id(value: object) -> bool:
    """True for a 24-hex-digit (lower case) Mongo ObjectId string."""
    return isinstance(value, str) and _OBJECT_ID.match(value) is not None


def format_date(value: datetime | None) -> str | None:
    """Render a datetime as brainlife does: ISO 8601 in UTC with milliseconds and a `Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.year < 1000:  # strftime's %Y does not pad (the C library's), f-strings would
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    # the same text without strftime: a third of the time, 100 dates per listing page
    return (
        f"{value.year}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
        f"{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


def parse_date(value: str) -> datetime:
    """Parse an ISO 8601 date as sent by clients (`Z` or an offset; date only is midnight UTC)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class ErrorBody(TypedDict):
    """Every error response body, on every route."""

    message: str


class ManifestFile(TypedDict):
    """One file of a data object (*ours*)."""

    path: str
    size: int
    sha256: str


class Manifest(TypedDict):
    """`GET /api/warehouse/dataset/manifest/:id` (*ours*).

    `tar_size` is the exact byte length of `GET /dataset/download/:id`; `files` lists the tar's
    members in tar order.
    """

    _id: str
    tar_size: int
    files: list[ManifestFile]


class ManifestMissing(TypedDict):
    """An id of a batch manifest request that has no manifest (*ours*).

    `reason`: `not-found` (unknown id, or not an id), `forbidden` (not readable by the caller)
    or `not-stored` (status other than `stored`); `message` is what the single manifest route
    would have answered.
    """

    _id: str
    reason: str
    message: str


class Manifests(TypedDict):
    """`POST /api/warehouse/dataset/manifests` `{"ids": [...]}` (*ours*): the manifests of the
    ids that have one, in the order asked, and every other id in `missing`."""

    manifests: list[Manifest]
    missing: list[ManifestMissing]


class TaskManifest(TypedDict):
    """`GET /api/amaretti/task/manifest/:task_id?p=<path>` (*ours*): what a download of that
    task path holds. `type` says which it is, so the client never guesses: `"folder"` (the
    download is a .tar.gz of the folder; `files` are the regular files under it, paths relative
    to it) or `"file"` (the download is the file itself; `files` has one entry, named after it).
    """

    _id: str
    path: str
    type: Literal["file", "folder"]
    files: list[ManifestFile]


#: The most ids one `routes.DATASET_MANIFESTS` request may ask for (more: 400).
MANIFESTS_MAX_IDS: Final = 1000
#: The most data objects one `routes.DATASET_TAR` tar may hold (more: 400), as many as one batch
#: manifest: the layout is built in memory before the first byte, and one request should not
#: turn into a copy of a whole archive (`bl data download` fetches larger sets, resumably).
DATASET_TAR_MAX_OBJECTS: Final = 1_000

Document = dict[str, Any]

__all__ = [
    "API_AMARETTI",
    "API_AUTH",
    "API_WAREHOUSE",
    "DATASET_TAR_MAX_OBJECTS",
    "DEFAULT_LIMIT",
    "MANIFESTS_MAX_IDS",
    "Document",
    "ErrorBody",
    "Manifest",
    "ManifestFile",
    "ManifestMissing",
    "Manifests",
    "Route",
    "TaskManifest",
    "UploadDigest",
    "UploadFileRequest",
    "UploadFileState",
    "UploadRequest",
    "UploadSession",
    "format_date",
    "is_object_id",
    "parse_date",
]
