"""The documents of our resumable upload API (*ours*, under /api/warehouse; docs/api.md,
"Uploads"). Standard library only: the client imports this module.

A client declares a data object and its files (`UploadRequest`), gets a session
(`UploadSession`) saying what each file needs, sends each file's missing bytes with
`PUT /upload/<id>/file/<n>` and `Content-Range: bytes <a>-<b>/<size>`, and finalizes: the data
object appears then, with every file, or not at all.

A file's `sha256` may also be declared later (`PUT /upload/<id>/file/<n>/sha256`), so that a
client can start sending a large file while it is still hashing it: the server takes every
byte but the last before the digest is known, and checks the whole file against it.

A small data object (at most `UPLOAD_INLINE_MAX` bytes in all) may travel in one request: each
file's bytes in `data` (base64), `finalize: true`, and a session `id` the client chose, so that
the request can be sent again after a lost answer without making a second object (the same id
answers the same session). Its answer holds the new object's document in `object`. Such files
are sent even when the archive holds their content already: one round trip to ask costs more
than their bytes.
"""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

#: The most files one upload session may declare (their list must also fit the server's request
#: body limit, 256 KiB by default: about 2,300 short names).
UPLOAD_MAX_FILES: Final = 2_000
#: The longest description, and the most tags / datatype tags (and characters per tag).
UPLOAD_MAX_DESC: Final = 10_000
UPLOAD_MAX_TAGS: Final = 100
UPLOAD_MAX_TAG: Final = 256
#: The most bytes (decoded, all files together) a data object may send inside its `POST
#: /upload` (`UploadFileRequest.data`): well within the server's 256 KiB body limit in base64.
UPLOAD_INLINE_MAX: Final = 128 * 1024

#: `UploadFileState.state`: `stored` (the archive has the bytes: nothing to send), `partial`
#: (`received` bytes staged so far: send the rest from there)
UploadFileStatus = Literal["stored", "partial"]


class UploadFileRequest(TypedDict):
    """One file of an upload: `name` is its path inside the data object (`t1.nii.gz`,
    `output/mri/aseg.mgz`), `id` the datatype file id it is (`t1`, `output`: a `dirname`
    entry holds every file under its folder)."""

    id: NotRequired[str]
    name: str
    size: int
    #: omitted: declared later with `UploadDigest` (before the file's last byte)
    sha256: NotRequired[str]
    #: the whole file, base64 (standard alphabet, padded): no `PUT` needed (`UPLOAD_INLINE_MAX`)
    data: NotRequired[str]


class UploadDigest(TypedDict):
    """`PUT /api/warehouse/upload/<id>/file/<n>/sha256`: the digest of a file declared
    without one."""

    sha256: str


class UploadRequest(TypedDict):
    """`POST /api/warehouse/upload`."""

    project: str
    datatype: str
    desc: NotRequired[str]
    meta: NotRequired[dict[str, object]]
    tags: NotRequired[list[str]]
    datatype_tags: NotRequired[list[str]]
    files: list[UploadFileRequest]
    #: the session's id, chosen by the client (24 hex digits; `POST` again with it: the same
    #: session, never a second one)
    id: NotRequired[str]
    #: make the data object in the same request (every file then held or sent in `data`)
    finalize: NotRequired[bool]


class UploadFileState(TypedDict):
    id: NotRequired[str]
    name: str
    size: int
    #: None until declared (`UploadDigest`)
    sha256: str | None
    state: UploadFileStatus
    #: bytes the server holds (`size` when stored)
    received: int


class UploadSession(TypedDict):
    """What `POST /upload`, `GET /upload/<id>` and `PUT /upload/<id>/file/<n>` answer."""

    _id: str
    project: str
    datatype: str
    #: `open`, or `finalized` (then `dataset` is the new object's id)
    status: Literal["open", "finalized"]
    dataset: str | None
    files: list[UploadFileState]
    #: when the session and its staged bytes are removed if nothing happens (ISO 8601)
    expires: str
    #: the new data object's document, as `POST …/finalize` answers it: only in the answer of
    #: a `POST /upload` with `finalize: true`
    object: NotRequired[dict[str, object]]
