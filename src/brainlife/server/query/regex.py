"""`$regex` on RE2, a linear-time engine.

Python's `re` backtracks: `((.{1,100}){1,100}){1,100}x` or `^(?:.|.){28}\\u0000` take seconds
to forever on one short value, inside one SQLite function call that holds the GIL, so the
whole server stalls (even `/health`) and no time budget can interrupt it. RE2 matches in time
linear in the text for any pattern it accepts; what it cannot do in linear time
(backreferences, look-around) it refuses to compile, and a pattern refused is a 400.

A pattern is validated (and compiled, once: `compiled` caches it) when the find is compiled;
the SQL then carries the pattern text with Mongo's options as inline flags, and SQLite calls
`sqlite_regexp` (registered as its REGEXP function by `brainlife.server.db`) per row.
PostgreSQL's own `~` is already linear-time (Spencer's engine with a state cache).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

from brainlife.server.errors import BadRequest
from brainlife.server.query.limits import MAX_PATTERN, MAX_PROGRAM

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the client's error, answered with a 400
#: memory for one compiled pattern and its matching cache (RE2's default is 8 MiB): with the
#: cache below, at most 64 MiB. A pattern that needs more is refused; matching never fails,
#: RE2 falls back to its slower (still linear) engine when the cache fills.
_OPTIONS.max_mem = 1 << 20


#: a repetition count `{n}`, `{n,}` or `{n,m}` (RE2 reads counts beyond its limit of 1000 as
#: literal text, where Mongo refuses them: refused here too)
_COUNTS = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


@functools.lru_cache(maxsize=64)
def compiled(pattern: str) -> Any:
    """The compiled RE2 for a pattern (inline flags included); raises `re2.error`."""
    return re2.compile(pattern, _OPTIONS)


def mongo_pattern(pattern: Any, options: Any) -> str:
    """A Mongo `$regex` + `$options` as one RE2 pattern with inline flags.

    `i`, `m` and `s` are RE2's own flags; `x` (extended: unescaped whitespace and `#`
    comments outside a character class are ignored) is applied here, since RE2 lacks it;
    `g` means nothing to a match and is ignored, as brainlife's clients send it."""
    if not isinstance(pattern, str):
        raise BadRequest(f"find: $regex needs a string, not {pattern!r}")
    if options is None:
        options = ""
    if not isinstance(options, str):
        raise BadRequest(f"find: $options needs a string, not {options!r}")
    if len(pattern) > MAX_PATTERN:
        raise BadRequest(
            f"find: $regex has {len(pattern)} characters; at most {MAX_PATTERN} are allowed"
        )
    flags = ""
    for letter in options:
        if letter in "imsx":
            flags += letter if letter not in flags else ""
        elif letter != "g":
            raise BadRequest(f"find: unknown $options flag {letter!r} (allowed: i, m, s, x)")
    body = _extended(pattern) if "x" in flags else pattern
    for match in _COUNTS.finditer(body):
        if any(n and int(n) > 1000 for n in match.groups()):
            raise BadRequest(
                f"find: $regex repeats {match.group(0)} times; at most 1000 are allowed"
            )
    inline = flags.replace("x", "")
    full = f"(?{inline}){body}" if inline else body
    try:
        size = compiled(full).programsize
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise BadRequest(
            f"find: invalid $regex {pattern[:100]!r}: {reason} (patterns run on RE2: "
            "no backreferences or look-around, repetition counts up to 1000)"
        ) from None
    if size > MAX_PROGRAM:
        raise BadRequest(
            f"find: $regex {pattern[:100]!r} is too complex ({size} RE2 instructions; "
            f"at most {MAX_PROGRAM} are allowed): fewer or smaller repetitions"
        )
    return full


def _extended(pattern: str) -> str:
    """Mongo's `x` option: drop unescaped whitespace and `#…` comments outside `[…]`."""
    out: list[str] = []
    i, in_class, n = 0, False, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch.isspace():
            i += 1
            continue
        elif ch == "#":
            end = pattern.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def sqlite_regexp(pattern: str, value: Any) -> bool | None:
    """SQLite's `value REGEXP pattern`, that is `regexp(pattern, value)`: a search, as in Mongo.

    Never raises (an exception would abort the statement with an unexplained error): the
    pattern was validated when the find was compiled, and non-text never matches."""
    if value is None:
        return None
    if not isinstance(value, str):
        return False
    try:
        return compiled(pattern).search(value) is not None
    except Exception:  # see the docstring
        return False
