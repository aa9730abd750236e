"""The filters of a data-object list page, as `bl data query` / `bl data download` take them:
parsed from the query string (bounded), turned into the `find` document the CLI sends, back into
a query string for links, and into the exact `bl data download` command for the same set."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from brainlife.server.errors import BadRequest
from brainlife.wire import is_object_id

#: longest value of one filter, and most values of a repeatable one
MAX_VALUE = 256
MAX_TAGS = 20

_SPECIAL = re.compile(r"[.*+?^${}()|\[\]\\]")


def _one(q: QueryParams, name: str) -> str:
    value = (q.get(name) or "").strip()
    if len(value) > MAX_VALUE:
        raise BadRequest(f"The filter {name!r} is longer than {MAX_VALUE} characters.")
    return value


def _many(q: QueryParams, name: str) -> list[str]:
    values: list[str] = []
    for raw in q.getlist(name):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > MAX_TAGS or any(len(v) > MAX_VALUE for v in values):
        raise BadRequest(f"At most {MAX_TAGS} values of {name!r}, each up to {MAX_VALUE} long.")
    return list(dict.fromkeys(values))


@dataclass
class Filters:
    datatype: str = ""
    datatype_tags: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    subject: str = ""
    session: str = ""
    run: str = ""
    q: str = ""

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
        )

    #: the form's bounds (`maxlength`): one value, and a field of comma-separated tags
    max_value: ClassVar[int] = MAX_VALUE
    max_tags_length: ClassVar[int] = MAX_TAGS * (MAX_VALUE + 1)

    @property
    def any(self) -> bool:
        return any(
            (self.datatype, self.datatype_tags, self.tags, self.subject, self.session, self.run)
        ) or bool(self.q)

    def find(self, *, project_id: str | None, datatype_id: str | None) -> dict[str, Any]:
        """The `find` document `bl data query` sends for these filters (`$and` of one clause
        each, so the listing's shortcuts see every pinned field)."""
        clauses: list[dict[str, Any]] = []
        for key, values in (("tags", self.tags), ("datatype_tags", self.datatype_tags)):
            want = [v for v in values if not v.startswith("!")]
            avoid = [v[1:] for v in values if v.startswith("!") and len(v) > 1]
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
        pairs += [("datatype_tag", v) for v in self.datatype_tags]
        pairs += [("tag", v) for v in self.tags]
        pairs += [(k, v) for k, v in extra.items() if v]
        return urlencode(pairs)

    def command(self, *, project_id: str | None = None, pub: str | None = None) -> str:
        """The `bl data download` command fetching the same set into a folder."""
        words = ["bl", "data", "download"]
        if project_id:
            words += ["-p", project_id]
        if pub:
            words += ["--pub", pub]
        if self.datatype:
            words += ["--datatype", self.datatype]
        for v in self.datatype_tags:
            words += ["--datatype_tag", v]
        for v in self.tags:
            words += ["--tag", v]
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
