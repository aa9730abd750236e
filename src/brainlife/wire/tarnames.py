"""Which names an archive member may have: one rule for the client (extracting what the server
sends) and the server (extracting what a client uploads). Only the standard library is used.

A member name becomes a relative POSIX path, or is refused: an absolute name (`/x`, `\\x`,
`C:x`) or one with a `..` component would leave the folder it is extracted into. `.` and empty
components are dropped (`./a//b` is `a/b`); a name that is only those is the folder itself.
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["UnsafeMember", "link_target", "member_path"]


class UnsafeMember(ValueError):
    """A member whose name (or link target) would leave the folder; the message says which."""


def member_path(name: str) -> PurePosixPath | None:
    """`name` as a safe relative path; None for the folder itself. Raises `UnsafeMember`."""
    if "\x00" in name:
        raise UnsafeMember(f"member {name!r} has a NUL character in its name")
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMember(f"member {name!r} has an absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember(f"member {name!r} points outside the folder")
    return PurePosixPath(*parts) if parts else None


def link_target(rel: PurePosixPath, linkname: str, *, symbolic: bool) -> PurePosixPath:
    """Where a link member `rel` points, relative to the folder (a symbolic link's target is
    read from the link's own folder, a hard link's from the folder's root). Raises
    `UnsafeMember` when it is absolute or climbs out of the folder (lexically: a symbolic link
    through other links is checked again where it is followed)."""
    link = PurePosixPath(linkname.replace("\\", "/"))
    if link.is_absolute() or linkname.startswith(("/", "\\")):
        raise UnsafeMember(f"link {rel.as_posix()!r} points outside the folder ({linkname})")
    base = rel.parent if symbolic else PurePosixPath()
    parts: list[str] = []
    for part in (base / link).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeMember(
                    f"link {rel.as_posix()!r} points outside the folder ({linkname})"
                )
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise UnsafeMember(f"link {rel.as_posix()!r} points at the folder itself ({linkname})")
    return PurePosixPath(*parts)
