"""The `Content-Disposition` of a download, in one place: our routes send it (`ranges`) and a
presigned URL of an object store asks the store to send the same (`s3store`)."""

from __future__ import annotations

from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """`attachment; filename=…` as brainlife sends it, quoted (RFC 6266) only when needed."""
    if filename and all(c.isascii() and (c.isalnum() or c in "._-+") for c in filename):
        return f"attachment; filename={filename}"
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
