"""How a tag filter is typed: one rule for `bl` (queries, downloads, BIDS exports), the server
(release sets) and the web pages (the `bl` command they offer). Only the standard library.

As in brainlife, a leading `!` excludes the tag (`!bad` is "not tagged bad"). Ours adds one
escape so that every tag can be asked for, which brainlife's CLI cannot do: after the optional
`!`, a backslash before a `!` or a backslash stands for that character alone. `\\!x` wants the
tag `!x`, `!!x` (and `!\\!x`) excludes it, `\\\\x` wants `\\x`. Any other backslash is kept
as typed (`a\\b` is the tag `a\\b`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["TagFilter", "parse_tag", "split_tags", "typed_tag"]

TagFilter = tuple[str, bool]


def parse_tag(typed: str) -> TagFilter:
    """`(tag, excluded)` for one typed filter."""
    excluded = typed.startswith("!")
    tag = typed[1:] if excluded else typed
    if tag[:2] in ("\\!", "\\\\"):
        tag = tag[1:]
    return tag, excluded


def split_tags(typed: Iterable[str]) -> tuple[list[str], list[str]]:
    """The tags wanted and the tags excluded, in the order typed."""
    wanted: list[str] = []
    excluded: list[str] = []
    for one in typed:
        tag, negated = parse_tag(one)
        (excluded if negated else wanted).append(tag)
    return wanted, excluded


def typed_tag(tag: str, *, excluded: bool = False) -> str:
    """How to type a filter on `tag` so that `parse_tag` reads it back."""
    escape = tag[:2] in ("\\!", "\\\\") or (not excluded and tag.startswith("!"))
    return ("!" if excluded else "") + ("\\" if escape else "") + tag
