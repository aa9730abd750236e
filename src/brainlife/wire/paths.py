"""Names and relative paths that are safe on every side, in one place: the client makes
server-supplied values into file names with :func:`safe_name` (a download never writes outside its
folder), and both sides check an upload's member paths with :func:`relative_path_problem` (the
client before a byte moves, the server before it accepts one). Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

#: a name longer than this (bytes, UTF-8) is refused by most file systems
MAX_NAME: Final = 255
#: the longest relative path of a file inside a data object (bytes, UTF-8; `dataset_files.path`)
MAX_RELATIVE_PATH: Final = 1024
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: an extension kept whole when a long name is shortened (``.tar.gz``, ``.nii.gz``)
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}$")


def safe_name(value: Any) -> str | None:
    """One harmless file or folder name made from a server-supplied ``value``, or None when
    nothing usable is left (empty, ``.``, ``..``).

    Control characters (NUL included) go; ``/`` and ``\\`` become ``-`` (``../../x`` cannot
    climb, ``/tmp/x`` is not absolute); ``<>:"|?*`` become ``_``; leading dots, spaces and dashes
    go (no hidden file such as ``.bashrc``, nothing read as an option), and so do trailing dots and
    spaces; a Windows device name gets a ``_`` in front; a name over ``MAX_NAME`` bytes is
    shortened, keeping its extension."""
    if value is None:
        return None
    text = _CONTROL.sub("", str(value)).replace("/", "-").replace("\\", "-")
    text = re.sub(r'[<>:"|?*]', "_", text).lstrip(" .-").rstrip(" .")
    if not text:
        return None
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    if len(text.encode()) > MAX_NAME:
        match = _EXTENSION.search(text)
        ext = match.group(0) if match else ""
        stem = text[: len(text) - len(ext)]
        budget = MAX_NAME - len(ext.encode())
        stem = stem.encode()[:budget].decode(errors="ignore").rstrip(" .")
        text = stem + ext
    return text


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` lies under ``root`` (or is it) once symbolic links and ``..`` are
    resolved."""
    base = root.resolve()
    resolved = path.resolve()
    return resolved == base or resolved.is_relative_to(base)


def relative_path_problem(path: Any) -> str | None:
    """Why ``path`` cannot name a file inside a data object, or None when it can: a plain
    relative POSIX path (``dwi.nii.gz``, ``output/mri/aseg.mgz``) of at most
    ``MAX_RELATIVE_PATH`` bytes whose components are at most ``MAX_NAME`` bytes, none empty,
    ``.`` or ``..``, none holding a control character or a backslash. Extracted anywhere, such a
    path stays inside its folder."""
    if not isinstance(path, str) or not path:
        return "a file path must be a non-empty string"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return f"the file path {path!r} is not valid Unicode"
    if _CONTROL.search(path):
        return f"the file path {path!r} holds a control character"
    if path.startswith("/"):
        return f"the file path {path!r} is absolute; it must be relative"
    if "\\" in path:
        return f"the file path {path!r} holds a backslash; use '/' between folders"
    if len(encoded) > MAX_RELATIVE_PATH:
        return f"the file path {path[:60]!r}… is longer than {MAX_RELATIVE_PATH} bytes"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return (
                f"the file path {path!r} has an empty, '.' or '..' component; paths must be "
                "plain relative paths such as 'dir/file.nii.gz'"
            )
        if len(part.encode("utf-8")) > MAX_NAME:
            return f"a name in the file path {path[:60]!r}… is longer than {MAX_NAME} bytes"
    return None
