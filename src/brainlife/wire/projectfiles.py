"""A project's plain files, as both sides see them: the listing document of
`GET /api/warehouse/files/<project>[/<prefix>]` (the shape the official CLI 1.8.2 reads, after
S3's ListObjectsV2), the header that carries a stored file's sha256, and which paths a project
file may have. Standard library only."""

from __future__ import annotations

from typing import Final, TypedDict

from brainlife.wire.paths import relative_path_problem

#: a listing page holds at most this many entries (folders and files together), as S3's
MAX_PAGE: Final = 1000
#: `PUT /projectfile/<project>/<path>`: the sha256 (hex) of the body; a body of another digest
#: is refused and nothing is kept
SHA256_HEADER: Final = "X-Content-SHA256"
#: top-level names that the listing routes give to their own download routes
RESERVED_TOP: Final = frozenset({"download", "download-multiple"})


class FileEntry(TypedDict):
    #: the name within the listed folder (`README.txt`)
    Name: str
    #: the path from the project's root (`docs/README.txt`)
    Key: str
    Size: int
    #: ISO 8601, UTC
    LastModified: str
    #: the file's sha256 (hex), quoted as an HTTP ETag is not
    ETag: str


class FolderEntry(TypedDict):
    Name: str
    #: the folder's path from the root, with a trailing slash (`docs/`)
    Prefix: str


class FileListing(TypedDict):
    objects: list[FileEntry]
    folders: list[FolderEntry]
    isTruncated: bool
    #: give it back as `?continuationToken=` for the next page ("" on the last page)
    nextContinuationToken: str
    #: the listed folder from the root, with a trailing slash ("" for the root)
    prefix: str


def project_path_problem(path: str) -> str | None:
    """Why `path` cannot name a project file, or None: a safe relative path (see
    `relative_path_problem`) whose first folder is not one of `RESERVED_TOP`."""
    problem = relative_path_problem(path)
    if problem is not None:
        return problem
    if path.split("/", 1)[0] in RESERVED_TOP:
        return (
            f"the file path {path!r} starts with {path.split('/', 1)[0]!r}, a name the listing "
            "routes keep for themselves; put it in a folder"
        )
    return None
