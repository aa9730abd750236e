"""Fast paths for data-object listings, exact by construction.

- `conjunction`: the top-level AND of a `find` as (key, value) terms;
- `fast_totals`: `count`/`size` of a listing from the trigger-kept aggregates
  (`DatasetCount`, `DatasetReleaseCount`, migration 0002) when the find only pins `removed`,
  `project`, `datatype` (equality or `$in`) and at most one release (`publications`);
- `tag_totals`: `count`/`size` of a listing that pins project and/or datatype and a tag,
  counted from the candidates in the trigger-kept tag index (`DatasetTagSearch`, migration
  0003) instead of every object of the project;
- `release_pin`: the release a find pins at its top level, so that the page can be read in
  `_id` order straight from that release's index.

Every function returns None when its shortcut does not apply; callers then use the general
SQL (brainlife.server.query).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_projects
from brainlife.server.errors import BadRequest
from brainlife.server.models import (
    Dataset,
    DatasetCount,
    DatasetReleaseCount,
    DatasetTagSearch,
    Project,
)
from brainlife.server.principal import Principal
from brainlife.server.query import NOMATCH, Kind, cast
from brainlife.server.services.listing import plain_rows

Term = tuple[str, Any]

#: fields answered by the aggregates (the count tables), and the kind their values are cast to
COUNTED_KINDS = {"project": Kind.OID, "datatype": Kind.OID, "removed": Kind.BOOL}


def conjunction(find: Any) -> list[Term] | None:
    """The (key, value) terms whose AND is `find`: top-level fields and, recursively, the
    members of `$and`. Other operators (`$or`, `$nor`) are kept as opaque terms under their
    own name, which no shortcut accepts as a pin. None if `find` is not a document."""
    if not isinstance(find, dict):
        return None
    terms: list[Term] = []
    for key, value in find.items():
        if key == "$and":
            if not isinstance(value, list) or not value:
                return None
            for sub in value:
                inner = conjunction(sub)
                if inner is None:
                    return None
                terms += inner
        elif key == "$comment":
            continue
        else:
            terms.append((key, value))
    return terms


def _values(kind: Kind, value: Any) -> set[Any] | None:
    """The set of values a term allows (equality, `$eq`, `$in`), cast as the compiler casts
    them; None when the term is anything else."""
    if isinstance(value, dict):
        if not value or not all(k in ("$eq", "$in") for k in value):
            return None
        allowed: set[Any] | None = None
        for op, arg in value.items():
            if op == "$eq":
                got = _values(kind, arg) if not isinstance(arg, dict) else None
            else:
                if not isinstance(arg, list):
                    return None
                got = set()
                for item in arg:
                    one = _values(kind, item) if not isinstance(item, dict) else None
                    if one is None:
                        return None
                    got |= one
            if got is None:
                return None
            allowed = got if allowed is None else allowed & got
        return allowed
    if value is None or isinstance(value, list):
        return None
    if kind is Kind.OID and not isinstance(value, str):
        return None
    try:
        casted = cast(kind, value, "")
    except BadRequest:
        return None
    return set() if casted is NOMATCH else {casted}


def is_pin(value: Any) -> bool:
    """Whether a term's value is an equality or `$eq`/`$in` (not a negation or a range)."""
    if isinstance(value, dict):
        return bool(value) and set(value) <= {"$eq", "$in"}
    return value is not None and not isinstance(value, list)


def release_pin(terms: Iterable[Term]) -> tuple[str | None, list[Term]] | None:
    """(the one release id pinned by `publications`, the other terms), or None unless exactly
    one term tests `publications` and it is an equality with one value. The id is None when
    the value can match nothing (not an ObjectId)."""
    pins = [(k, v) for k, v in terms if k == "publications"]
    if len(pins) != 1:
        return None
    value = pins[0][1]
    if isinstance(value, dict) and len(value) == 1:
        op, arg = next(iter(value.items()))
        if op == "$eq":
            value = arg
        elif op in ("$in", "$all") and isinstance(arg, list) and len(arg) == 1:
            value = arg[0]
        else:
            return None
    if not isinstance(value, str):
        return None
    casted = cast(Kind.OID, value, "publications")
    rest = [(k, v) for k, v in terms if k != "publications"]
    return (None if casted is NOMATCH else casted), rest


def fast_totals(session: Session, principal: Principal | None, find: Any) -> tuple[int, int] | None:
    """(count, size) of the readable data objects matching `find`, from the aggregates;
    None when `find` has other tests."""
    if principal is None:
        return None
    terms = conjunction(find)
    if terms is None:
        return None
    release: str | None = None
    pinned = release_pin(terms)
    if pinned is not None:
        if pinned[0] is None:
            return 0, 0
        release, terms = pinned
    allowed: dict[str, set[Any]] = {}
    for key, value in terms:
        kind = COUNTED_KINDS.get(key)
        if kind is None:
            return None
        values = _values(kind, value)
        if values is None:
            return None
        allowed[key] = values if key not in allowed else allowed[key] & values
    if any(not values for values in allowed.values()):
        return 0, 0

    keys = tuple(key for key in _COUNTED_ORDER if key in allowed)
    # a released object is published, hence readable by any token holder
    everything = release is not None or principal.is_admin("warehouse")
    stmt = _totals_statement(release is not None, keys, None if everything else principal.sub)
    bound: dict[str, Any] = {key: sorted(allowed[key]) for key in keys}
    if release is not None:
        bound["release"] = release
    ((total_count, total_size),) = plain_rows(session, stmt, bound)
    return int(total_count), int(total_size)


#: the pinned columns of the count tables, in the order `fast_totals` tests them
_COUNTED_ORDER = ("project", "datatype", "removed")


@lru_cache(maxsize=1024)
def _totals_statement(release: bool, keys: tuple[str, ...], reader: int | None) -> Select[Any]:
    """`fast_totals`' statement for a release or not, its pinned `keys` (each bound as an
    expanding parameter of that name, the release as `release`) and the caller: `reader`, the
    sub whose readable projects count in full (the others for their published objects only),
    or None when every object counts. Built once per shape and user, and reused with the
    request's values bound: building it and its cache key for each listing cost ~0.5 ms of a
    page at 1,000,000 objects (issue #11); its text is the same as before."""
    table: Any = DatasetReleaseCount if release else DatasetCount
    where: list[ColumnElement[bool]] = []
    if release:
        where.append(DatasetReleaseCount.release_id == bindparam("release"))
    columns = {"project": table.project_id, "datatype": table.datatype_id, "removed": table.removed}
    for key in keys:
        where.append(columns[key].in_(bindparam(key, expanding=True)))
    if reader is None:
        count: Any = table.count
        size: Any = table.size
    else:
        readable_of = readable_projects(Principal(sub=reader))
        readable = table.project_id.in_(select(Project.id).where(readable_of))
        count = case((readable, table.count), else_=table.pub_count)
        size = case((readable, table.size), else_=table.pub_size)
    return select(func.coalesce(func.sum(count), 0), func.coalesce(func.sum(size), 0)).where(*where)


#: array keys kept in `dataset_tag_search`, and their `kind`
_TAG_KINDS = {"tags": "t", "datatype_tags": "d"}


def positive_tag(terms: Iterable[Term]) -> tuple[str, str] | None:
    """(kind, tag) of a tag every match must have (`tags: "x"`, `$eq`, `$all`, a one-value
    `$in`), or None."""
    for key, value in terms:
        kind = _TAG_KINDS.get(key)
        if kind is None:
            continue
        if isinstance(value, str):
            return kind, value
        if not isinstance(value, dict):
            continue
        for op, arg in value.items():
            if op == "$eq" and isinstance(arg, str):
                return kind, arg
            if op in ("$all", "$in") and isinstance(arg, list) and arg:
                if op == "$in" and len(arg) != 1:
                    continue
                first = next((item for item in arg if isinstance(item, str)), None)
                if first is not None:
                    return kind, first
    return None


def tag_totals(
    session: Session, principal: Principal | None, find: Any, where: ColumnElement[bool]
) -> tuple[int, int] | None:
    """(count, size) of the rows matching `where` (the listing's whole clause: access and
    `find`) when `find` pins project and/or datatype and a tag: only the objects in that
    tag's range of `dataset_tag_search` are tested. None when the shortcut does not apply."""
    if principal is None:
        return None
    terms = conjunction(find)
    if terms is None:
        return None
    tag = positive_tag(terms)
    if tag is None:
        return None
    allowed: dict[str, set[Any]] = {}
    for key, value in terms:
        kind = COUNTED_KINDS.get(key)
        if kind is None or not is_pin(value):
            continue
        values = _values(kind, value)
        if values is not None:
            allowed[key] = values if key not in allowed else allowed[key] & values
    if "project" not in allowed and "datatype" not in allowed:
        return None
    s = DatasetTagSearch
    narrow: list[ColumnElement[bool]] = [s.kind == tag[0], s.tag == tag[1]]
    for key, column in (
        ("project", s.project_id),
        ("removed", s.removed),
        ("datatype", s.datatype_id),
    ):
        if key in allowed:
            narrow.append(column.in_(sorted(allowed[key])))
    candidates = select(s.dataset_id).where(*narrow)
    stmt = select(func.count(), func.coalesce(func.sum(Dataset.size), 0)).where(
        Dataset.id.in_(candidates), where
    )
    row = session.execute(stmt).one()
    return int(row[0]), int(row[1] or 0)
