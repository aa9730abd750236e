"""The documented limits of the list parameters, checked before anything is compiled.

A query string is the one input anybody can send, without a token, to every listing route, so
its shape is bounded before it reaches the compiler or the database: JSON nesting (Python's
parser and the compiler recurse, SQLite refuses expression trees deeper than 1,000), list
lengths (every `$or`/`$and`/`$nor`/`$all` member compiles to its own SQL test, which costs
about a millisecond of compiler time each, and SQLite nests a chain of ORs one level per
member), the number of values overall (each is a bound SQL parameter), and the values
themselves: integers beyond 64 bits and text that is not valid Unicode (a lone surrogate)
cannot be handed to the database, and NUL cannot be part of a field name (nor is it in Mongo).

Each refusal is a `BadRequest` that names the parameter and the limit exceeded. The numbers
are listed in docs/api.md; they let every query brainlife's clients send through (our client
puts at most 200 ids in one `$in`, the official CLI a handful of `$or`/`$all` members).
"""

from __future__ import annotations

import json
import math
from typing import Any

from brainlife.server.errors import BadRequest

#: JSON nesting of `find`, `sort`, `select` and `populate` (objects and lists)
MAX_DEPTH = 32
#: members of one `$in` / `$nin` list (or any list used as a value)
MAX_IN = 10_000
#: members of one `$and` / `$or` / `$nor` / `$all` list: each is a SQL test of its own
MAX_CLAUSES = 256
#: field tests in one `find` (every field or operator key, every `$all` member)
MAX_TESTS = 512
#: JSON values in one parameter, all lists together (each becomes a bound SQL parameter)
MAX_VALUES = 20_000
#: parts of a dotted field name (`config._inputs.meta.subject` has 4): each part of a JSON path
#: after the first nests one more `EXISTS (… json_each …)`, and SQLite's parser refuses ten
MAX_PATH_PARTS = 8
#: fields in one `sort`
MAX_SORT_KEYS = 32
#: characters of a `$regex` pattern
MAX_PATTERN = 1_000
#: instructions of a compiled `$regex` (RE2's program size): RE2's time per character of text
#: grows with it (`(\w+\s?){1,1000}!`, 16,004 instructions, takes 0.45 s on 9 KB of text);
#: an escaped search text of 100 characters needs about 100
MAX_PROGRAM = 2_000

_INT64 = 2**63 - 1
_CLAUSE_LISTS = frozenset(("$and", "$or", "$nor", "$all"))


class NotJson(BadRequest):
    """The parameter is not JSON at all (as opposed to JSON beyond the limits)."""


def loads(name: str, text: str) -> Any:
    """`text` parsed as JSON (`NaN`/`Infinity` are not JSON), its shape checked."""

    def no_constant(word: str) -> Any:
        raise ValueError(f"{word} is not a JSON value")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise BadRequest(f"{name}: nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise NotJson(f"{name} is not valid JSON: {exc}") from None
    check(name, value)
    return value


def check(name: str, value: Any) -> None:
    """Refuse a parsed parameter whose shape or values exceed the limits (see the module)."""
    values = 0
    tests = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        values += 1
        if isinstance(item, dict | list) and depth > MAX_DEPTH:
            raise BadRequest(f"{name}: nesting deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                _text(name, key)
                if "\x00" in key:
                    raise BadRequest(f"{name}: a field name contains NUL: {key!r}")
                if key.count(".") >= MAX_PATH_PARTS:
                    raise BadRequest(
                        f"{name}: field {key[:60]!r}… has more than {MAX_PATH_PARTS} parts"
                    )
                tests += 1
                if isinstance(sub, list):
                    most = MAX_CLAUSES if key in _CLAUSE_LISTS else MAX_IN
                    if len(sub) > most:
                        raise BadRequest(
                            f"{name}: {key} has {len(sub)} members; at most {most} are allowed"
                        )
                    if key == "$all":
                        tests += len(sub)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            if len(item) > MAX_IN:
                raise BadRequest(
                    f"{name}: a list has {len(item)} members; at most {MAX_IN} are allowed"
                )
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, str):
            _text(name, item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -_INT64 - 1 <= item <= _INT64:
                raise BadRequest(f"{name}: {item} is beyond the 64-bit integer range")
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(f"{name}: {item} is not a finite number")
        if values > MAX_VALUES:
            raise BadRequest(f"{name}: more than {MAX_VALUES} values; narrow the query")
        if tests > MAX_TESTS:
            raise BadRequest(f"{name}: more than {MAX_TESTS} field tests; narrow the query")


def _text(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            f"{name}: text is not valid Unicode (a lone surrogate such as \\ud800)"
        ) from None


def check_field(name: str, key: str) -> None:
    """A field name given outside JSON (mongoose's `"-create_date name"` forms)."""
    check(name, {key: None})
