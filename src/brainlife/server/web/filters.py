"""The filters of a data-object list page, as `bl data query` / `bl data download` take them:
parsed from the query string (bounded), turned into the `find` document the CLI sends, back into
a query string for links, and into the exact `bl data download` command for the same set.

Tags (`tag`, `datatype_tag`: repeatable, and each value a list) are read with one rule, which
the page's help text states too:

- a comma separates tags, and blanks around a tag are not part of it: `afq, run2` is two tags;
- a leading `!` excludes the tag that follows: `!run2`;
- a backslash makes the next `,`, `!`, `\\` or blank part of the tag: `a\\,b` is the tag
  "a,b", `\\!x` the tag "!x" (and `!\\!x` excludes it), `\\\\` a backslash, `\\ x` the tag
  " x". A backslash before any other character is itself (`a\\b` is "a\\b").

So every tag an object can have can be typed (`escape_tag` writes it), and the URLs written
before the rule keep their meaning unless a tag had a backslash before one of those four.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from brainlife.server.errors import BadRequest
from brainlife.wire import is_object_id
from brainlife.wire.tags import typed_tag

#: longest value of one filter (and tag), and most values of a repeatable one
MAX_VALUE = 256
MAX_TAGS = 20
#: longest typed list of tags (every character escaped, a separator between tags)
MAX_TYPED = MAX_TAGS * (2 * MAX_VALUE + 2)
#: what a backslash escapes in a typed tag (and any blank)
_ESCAPED = ",!\\"

_SPECIAL = re.compile(r"[.*+?^${}()|\[\]\\]")


def _one(q: QueryParams, name: str) -> str:
    value = (q.get(name) or "").strip()
    if len(value) > MAX_VALUE:
        raise BadRequest(f"The filter {name!r} is longer than {MAX_VALUE} characters.")
    return value


@dataclass(frozen=True)
class TagTerm:
    """One tag of a filter: objects having it, or (`exclude`) not having it."""

    tag: str
    exclude: bool = False

    @property
    def typed(self) -> str:
        """As it is typed in the filter's field (and sent in a URL)."""
        return ("!" if self.exclude else "") + escape_tag(self.tag)


def escape_tag(tag: str) -> str:
    """`tag` as it is typed in a filter (the module's rule): a backslash before every `,` and
    `\\`, before a leading `!`, and before a blank at either end."""
    last = len(tag) - 1
    out = []
    for i, c in enumerate(tag):
        special = c in ",\\" or (c == "!" and i == 0) or (c.isspace() and i in (0, last))
        out.append("\\" + c if special else c)
    return "".join(out)


def split_tags(typed: str) -> list[TagTerm]:
    """The tags of one typed value (the module's rule)."""
    terms: list[TagTerm] = []
    chars: list[tuple[str, bool]] = []  # (character, escaped)
    i = 0
    while i <= len(typed):
        c = typed[i] if i < len(typed) else ","
        following = typed[i + 1] if i + 1 < len(typed) else ""
        if c == "\\" and following and (following in _ESCAPED or following.isspace()):
            chars.append((following, True))
            i += 2
            continue
        if i == len(typed) or c == ",":
            term = _term(chars)
            if term is not None:
                terms.append(term)
            chars = []
        else:
            chars.append((c, False))
        i += 1
    return terms


def _term(chars: list[tuple[str, bool]]) -> TagTerm | None:
    """One tag's characters, blanks (not escaped) around it dropped; None when it is empty."""
    start, end = 0, len(chars)
    while start < end and not chars[start][1] and chars[start][0].isspace():
        start += 1
    exclude = start < end and chars[start] == ("!", False)
    if exclude:
        start += 1
        while start < end and not chars[start][1] and chars[start][0].isspace():
            start += 1
    while end > start and not chars[end - 1][1] and chars[end - 1][0].isspace():
        end -= 1
    tag = "".join(c for c, _ in chars[start:end])
    return TagTerm(tag, exclude) if tag else None


def tag_link(project_id: str, tag: str, *, datatype_tag: bool = False) -> str:
    """The project's object list filtered on one tag (or datatype tag): what a shown tag
    links to."""
    name = "datatype_tag" if datatype_tag else "tag"
    return f"/project/{project_id}/data?" + urlencode([(name, escape_tag(tag))])


def _many(q: QueryParams, name: str) -> list[TagTerm]:
    terms: list[TagTerm] = []
    for raw in q.getlist(name):
        if len(raw) > MAX_TYPED:
            raise BadRequest(f"The filter {name!r} is longer than {MAX_TYPED} characters.")
        terms += split_tags(raw)
    if len(terms) > MAX_TAGS or any(len(t.tag) > MAX_VALUE for t in terms):
        raise BadRequest(f"At most {MAX_TAGS} values of {name!r}, each up to {MAX_VALUE} long.")
    return list(dict.fromkeys(terms))


@dataclass
class Filters:
    datatype: str = ""
    datatype_tags: list[TagTerm] = field(default_factory=list)
    tags: list[TagTerm] = field(default_factory=list)
    subject: str = ""
    session: str = ""
    run: str = ""
    q: str = ""
    #: only the objects without a subject (the matrix's "(none)" row; `no_subject=1`)
    no_subject: bool = False

    @classmethod
    def parse(cls, q: QueryParams) -> Filters:
        return cls(
            datatype=_one(q, "datatype"),
            datatype_tags=_many(q, "datatype_tag"),
            tags=_many(q, "tag"),
            subject=_one(q, "subject"),
            session=_one(q, "session"),
            run=_one(q, "run"),
            q=_one(q, "q"),
            no_subject=_one(q, "no_subject") in ("1", "on"),
        )

    #: the form's bounds (`maxlength`): one value, and a field of comma-separated tags
    max_value: ClassVar[int] = MAX_VALUE
    max_tags_length: ClassVar[int] = MAX_TYPED

    @property
    def typed_tags(self) -> str:
        """The tag filter as typed in its field."""
        return ", ".join(t.typed for t in self.tags)

    @property
    def typed_datatype_tags(self) -> str:
        return ", ".join(t.typed for t in self.datatype_tags)

    @property
    def any(self) -> bool:
        return any(
            (self.datatype, self.datatype_tags, self.tags, self.subject, self.session, self.run)
        ) or bool(self.q or self.no_subject)

    def find(self, *, project_id: str | None, datatype_id: str | None) -> dict[str, Any]:
        """The `find` document `bl data query` sends for these filters (`$and` of one clause
        each, so the listing's shortcuts see every pinned field)."""
        clauses: list[dict[str, Any]] = []
        for key, values in (("tags", self.tags), ("datatype_tags", self.datatype_tags)):
            want = [t.tag for t in values if not t.exclude]
            avoid = [t.tag for t in values if t.exclude]
            if want:
                clauses.append({key: {"$all": want}})
            if avoid:
                clauses.append({key: {"$nin": avoid}})
        if project_id:
            clauses.append({"project": project_id})
        if datatype_id:
            clauses.append({"datatype": datatype_id})
        for key, value in (
            ("meta.subject", self.subject),
            ("meta.session", self.session),
            ("meta.run", self.run),
        ):
            if value:
                clauses.append({key: value})
        if self.no_subject:  # the matrix counts a missing subject and "" together
            clauses.append({"meta.subject": {"$in": [None, ""]}})
        if self.q:
            clauses.append(text_search(self.q))
        find: dict[str, Any] = {"removed": False}
        if clauses:
            find["$and"] = clauses
        return find

    def query(self, **extra: str) -> str:
        """These filters (and `extra`) as a query string."""
        pairs: list[tuple[str, str]] = []
        for name, value in (
            ("datatype", self.datatype),
            ("subject", self.subject),
            ("session", self.session),
            ("run", self.run),
            ("q", self.q),
        ):
            if value:
                pairs.append((name, value))
        if self.no_subject:
            pairs.append(("no_subject", "1"))
        pairs += [("datatype_tag", t.typed) for t in self.datatype_tags]
        pairs += [("tag", t.typed) for t in self.tags]
        pairs += [(k, v) for k, v in extra.items() if v]
        return urlencode(pairs)

    @property
    def uncommandable(self) -> str:
        """Why `bl data download` cannot select this set ("" when it can): `-b` takes a
        subject, not its absence."""
        if self.no_subject:
            return (
                "The command line cannot select the objects without a subject: download "
                "this set from this page."
            )
        return ""

    def command(self, *, project_id: str | None = None, pub: str | None = None) -> str:
        """The `bl data download` command fetching the same set into a folder ("" when it
        cannot be said: `uncommandable`)."""
        if self.uncommandable:
            return ""
        words = ["bl", "data", "download"]
        if project_id:
            words += ["-p", project_id]
        if pub:
            words += ["--pub", pub]
        if self.datatype:
            words += ["--datatype", self.datatype]
        # one word a tag, typed as bl reads it (`!` first to exclude, `\!x` wants "!x")
        for t in self.datatype_tags:
            words += ["--datatype_tag", typed_tag(t.tag, excluded=t.exclude)]
        for t in self.tags:
            words += ["--tag", typed_tag(t.tag, excluded=t.exclude)]
        for flag, value in (
            ("-b", self.subject),
            ("--session", self.session),
            ("--run", self.run),
            ("-q", self.q),
        ):
            if value:
                words += [flag, value]
        folder = "-".join(
            p for p in (project_id or pub or "", self.datatype.replace("/", "_")) if p
        )
        words += ["-d", folder or "download"]
        return " ".join(shlex.quote(w) for w in words)


def text_search(text: str) -> dict[str, Any]:
    """The clause finding `text` in a name or description, as typed: case-insensitive, the
    pattern's metacharacters escaped and nothing else (the patterns run on RE2, which refuses
    an escaped character it does not know, such as `\\—`)."""
    pattern = {"$regex": _SPECIAL.sub(lambda m: "\\" + m.group(0), text), "$options": "i"}
    return {"$or": [{"name": pattern}, {"desc": pattern}]}


def after_id(q: QueryParams) -> str | None:
    """The keyset cursor of a list page: the last id of the previous page."""
    value = (q.get("after") or "").strip().lower()
    if not value:
        return None
    if not is_object_id(value):
        raise BadRequest("'after' must be a data object id (the last one of the previous page).")
    return value


#: the largest page number a list page's `page` is taken with (it only labels the page)
MAX_PAGE = 1_000_000


def page_number(q: QueryParams, after: str | None) -> int | None:
    """The number of a list page, for its label ("data objects 51–100"): 1 without `after`;
    otherwise `page`, which the "Next page" link carries, or None when it is missing or not a
    number from 2 to `MAX_PAGE` (the page is then labelled by its cursor). The rows a page
    shows come from `after` alone."""
    if after is None:
        return 1
    value = (q.get("page") or "").strip()
    if not value.isdigit() or len(value) > 7:
        return None
    number = int(value)
    return number if 2 <= number <= MAX_PAGE else None


def page_param(q: QueryParams) -> int:
    """A numbered list page's `page` (1 when absent): a number from 1 to `MAX_PAGE`."""
    value = (q.get("page") or "").strip()
    if not value:
        return 1
    if not value.isdigit() or len(value) > 7 or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"'page' must be a number from 1 to {MAX_PAGE:,}.")
    return int(value)
