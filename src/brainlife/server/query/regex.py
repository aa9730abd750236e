r"""`$regex` on RE2, a linear-time engine.

Python's `re` backtracks: `((.{1,100}){1,100}){1,100}x` or `^(?:.|.){28}\\u0000` take seconds
to forever on one short value, inside one SQLite function call that holds the GIL, so the
whole server stalls (even `/health`) and no time budget can interrupt it. RE2 matches in time
linear in the text for any pattern it accepts; what it cannot do in linear time
(backreferences, look-around) it refuses to compile, and a pattern refused is a 400.

A pattern is validated (and compiled, once: `compiled` caches it) when the find is compiled;
the SQL then carries the pattern text with Mongo's options as inline flags, and SQLite calls
`sqlite_regexp` (registered as its REGEXP function by `brainlife.server.db`) per row.

PostgreSQL cannot call RE2: there the validated pattern is translated to PostgreSQL's own
syntax (Spencer's ARE, matched by `~`) so that it matches exactly what RE2 matches
(`postgresql_pattern`: `.` and the `\d \w \s` classes spelled out in ASCII as RE2 reads
them, `\b` as `\y`, the `m`/`s` flags as ARE's newline modes), and the few RE2 constructs
that have no faithful ARE spelling (Unicode classes `\p{…}`, `\Q…\E`, flag groups inside the
pattern, counts over 255) are refused with a 400 there. ARE matching is not guaranteed
linear, but the statement time budget (`statement_timeout`) bounds it, and RE2's
validation has already refused backreferences and look-around.
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


def regex_match(expr: Any, pattern: str) -> Any:
    """`expr` matches the validated `pattern` (from `mongo_pattern`), on either engine."""
    from sqlalchemy import literal

    from brainlife.server.engines import per_engine

    try:
        translated, error = postgresql_pattern(pattern), None
    except BadRequest as exc:
        translated, error = "", exc.message
    return per_engine(
        sqlite=expr.regexp_match(pattern),
        postgresql=expr.op("~")(literal(translated)),
        postgresql_error=error,
    )


#: RE2's Perl classes, in ASCII as RE2 defines them: (outside a class, inside a class)
_CLASSES = {
    "d": ("[0-9]", "0-9"),
    "D": ("[^0-9]", None),
    "w": ("[0-9A-Za-z_]", "0-9A-Za-z_"),
    "W": ("[^0-9A-Za-z_]", None),
    "s": ("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r "),
    "S": ("[^\\t\\n\\f\\r ]", None),
}
_SAME_ESCAPES = "tnrfva"
_FLAGS = re.compile(r"\(\?([imsU]*)\)")


def postgresql_pattern(pattern: str) -> str:
    """A pattern `mongo_pattern` accepted, in PostgreSQL ARE syntax with RE2's meaning."""

    def refuse(what: str) -> BadRequest:
        return BadRequest(
            f"find: $regex {pattern[:100]!r}: {what} is not supported by this archive's "
            "database (PostgreSQL); write it another way"
        )

    flags = ""
    body = pattern
    while (m := _FLAGS.match(body)) is not None:
        flags += m.group(1)
        body = body[m.end() :]
    if "U" in flags:
        raise refuse("the U flag")
    dotall = "s" in flags
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\\":
            out.append(_escape(body, i, inside=False, refuse=refuse))
            i += 2 if body[i + 1] not in "x" else _hex_end(body, i) - i
            continue
        if ch == "[":
            end, text = _bracket(body, i, refuse)
            out.append(text)
            i = end
            continue
        if ch == "\x00":  # PostgreSQL text never holds a NUL: a NUL never matches
            out.append("\\U00000000")
        elif ch == "." and not dotall:
            out.append("[^\\n]")
        elif ch == "(" and body.startswith("(?", i):
            if body.startswith("(?:", i):
                out.append("(?:")
                i += 3
                continue
            name = re.match(r"\(\?P?<[A-Za-z0-9_]+>", body[i:])
            if name is None:
                raise refuse("a flag group inside the pattern")
            out.append("(")
            i += name.end()
            continue
        elif ch == "{":
            count = re.match(r"\{(\d+)(?:,(\d*))?\}", body[i:])
            if count is not None:
                if any(g and int(g) > 255 for g in count.groups()):
                    raise refuse(f"a repetition count over 255 ({count.group(0)})")
                out.append(count.group(0))
                i += count.end()
                continue
            out.append("\\{")
        else:
            out.append(ch)
        i += 1
    mode = ("w" if "m" in flags else "") + ("i" if "i" in flags else "")
    return (f"(?{mode})" if mode else "") + "".join(out)


def _hex_end(body: str, i: int) -> int:
    """The end of the `\\xHH` or `\\x{H…}` escape starting at `i`."""
    if body.startswith("{", i + 2):
        return body.index("}", i) + 1
    return i + 4


def _escape(body: str, i: int, *, inside: bool, refuse: Any) -> str:
    c = body[i + 1]
    if c in _CLASSES:
        outer, inner = _CLASSES[c]
        if not inside:
            return outer
        if inner is None:
            raise refuse(f"\\{c} inside [...]")
        return inner
    if c == "x":
        digits = (
            body[i + 3 : _hex_end(body, i) - 1]
            if body.startswith("{", i + 2)
            else body[i + 2 : i + 4]
        )
        return f"\\U{int(digits, 16):08X}"
    if c in _SAME_ESCAPES:
        return "\\" + c
    if not inside and c in "bBAz":
        return {"b": "\\y", "B": "\\Y", "A": "\\A", "z": "\\Z"}[c]
    if not c.isalnum():
        return "\\" + c
    raise refuse(f"the escape \\{c}")


def _bracket(body: str, start: int, refuse: Any) -> tuple[int, str]:
    """The character class at `start`: its end and its ARE spelling."""
    out = ["["]
    i = start + 1
    if body.startswith("^", i):
        out.append("^")
        i += 1
    first = True
    while True:
        ch = body[i]
        if ch == "]" and not first:
            out.append("]")
            return i + 1, "".join(out)
        first = False
        if ch == "\\":
            out.append(_escape(body, i, inside=True, refuse=refuse))
            i += 2 if body[i + 1] != "x" else _hex_end(body, i) - i
            continue
        if ch == "[" and body.startswith("[:", i):
            end = body.index(":]", i) + 2
            out.append(body[i:end])
            i = end
            continue
        if ch == "[":
            out.append("\\[")
        elif ch == "\x00":
            out.append("\\U00000000")
        else:
            out.append(ch)
        i += 1
