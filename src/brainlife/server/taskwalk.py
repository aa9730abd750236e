"""A task folder's contents as the downloads see them: `walk` lists a folder (stat only, no file
is read) and each `Entry` holds what later checks compare, so that a stream can tell whether a
file is still the one the walk saw.

Nothing outside the task folder is ever listed: links are followed only when their target lies
inside it (others are left out and logged), as are hidden entries (`.name`), sockets and
devices. Link cycles are cut.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger("brainlife.server.taskfiles")


def inside(root: str, real: str) -> bool:
    """Whether the real path `real` is `root` or lies under it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Entry:
    rel: str
    real: str
    is_dir: bool
    size: int
    mode: int
    #: whole seconds, as the tar header holds it
    mtime: int
    # what ETags and the checks while streaming compare: any write moves mtime or ctime
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    dev: int = 0

    @classmethod
    def of(cls, rel: str, real: str, st: os.stat_result) -> Entry:
        is_dir = stat.S_ISDIR(st.st_mode)
        return cls(
            rel=rel,
            real=real,
            is_dir=is_dir,
            size=0 if is_dir else st.st_size,
            mode=st.st_mode & 0o7777,
            mtime=int(st.st_mtime),
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            ino=st.st_ino,
            dev=st.st_dev,
        )

    def same_file(self, st: os.stat_result) -> bool:
        """`st` is of this file (not another one now at its path, e.g. a swapped-in link)."""
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)

    def unchanged(self, st: os.stat_result) -> bool:
        """`st` is of this file, as the walk saw it."""
        return self.same_file(st) and (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
        )


def walk(root: str, folder: str) -> Iterator[Entry]:
    """The entries of `folder` (a real path inside the real path `root`), depth first in name
    order, paths relative to `folder`; hidden ones and unsafe links left out."""
    yield from _walk(root, folder, "", {folder})


def _walk(root: str, folder: str, prefix: str, ancestors: set[str]) -> Iterator[Entry]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        real = os.path.realpath(path)
        if not inside(root, real):
            log.warning("skipping %s: a link to %s, outside the task folder", path, real)
            continue
        try:
            st = os.stat(real)
        except OSError:
            continue  # dangling link, or removed meanwhile
        rel = prefix + name
        if stat.S_ISDIR(st.st_mode):
            if real in ancestors:
                log.warning("skipping %s: a link cycle", path)
                continue
            yield Entry.of(rel, real, st)
            yield from _walk(root, real, rel + "/", ancestors | {real})
        elif stat.S_ISREG(st.st_mode):
            yield Entry.of(rel, real, st)
