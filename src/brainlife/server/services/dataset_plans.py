"""Query shapes for data-object listings at 10,000,000 objects (issue #11): the same rows, order
and totals as the general listing (`datasets.list_datasets`), in forms that let the planner
stop early instead of walking every candidate.

- `project_gate`: a constant test, implied by the access rule, that a listing pinning its
  projects can match any row at all: one of the projects is readable, or holds a published
  object (the trigger-kept `dataset_counts.pub_count`). Both are uncorrelated EXISTS, so the
  planner evaluates the gate once and, when it is false, runs nothing else: the listing of a
  project the caller cannot read no longer probes each of its objects for a publication.
- `tag_range`: the (kind, tag, project, removed, datatype) prefix of `dataset_tag_search`
  that a find pins; its objects are one range of the table's primary key, in `dataset_id`
  order. `tag_page` reads the page from that range (joined to each object by primary key);
  `range_totals` counts a find answered by the range alone (its pins and tag tests) from the
  range, with `dataset_tag_search.size` (migration 0017_pg_listing) instead of each object.

Every shortcut returns None when it does not apply; the caller then keeps the general SQL.
The access rule is always part of the SQL that runs (`access`), never applied afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)

from brainlife.server.access import readable_projects, readable_rows
from brainlife.server.models import Dataset, DatasetCount, DatasetTagSearch, Project
from brainlife.server.principal import Principal
from brainlife.server.services import dataset_totals
from brainlife.server.services.listing import plain_rows

Term = dataset_totals.Term

#: the fields the count tables answer, and their kinds: one rule with `dataset_totals`
_PINNED = dataset_totals.COUNTED_KINDS


def pins(terms: Iterable[Term]) -> dict[str, set[Any]]:
    """The values each of project, datatype and removed is pinned to (equality, `$eq`,
    `$in`; several terms intersect); keys not pinned are absent."""
    allowed: dict[str, set[Any]] = {}
    for key, value in terms:
        kind = _PINNED.get(key)
        if kind is None or not dataset_totals.is_pin(value):
            continue
        values = dataset_totals._values(kind, value)
        if values is not None:
            allowed[key] = values if key not in allowed else allowed[key] & values
    return allowed


def project_gate(
    principal: Principal | None, allowed: dict[str, set[Any]]
) -> ColumnElement[bool] | None:
    """A row-free condition every readable match of a find with these pins satisfies, so that
    AND-ing it to the listing changes no result: some pinned project is readable, or some
    (pinned project, datatype, removed) holds a published object. None when no project is
    pinned or the caller reads everything."""
    projects = allowed.get("project")
    if projects is None or principal is None or principal.is_admin("warehouse"):
        return None
    datatypes = allowed.get("datatype")
    removed = allowed.get("removed")
    return _gate(
        principal.sub,
        tuple(sorted(projects)),
        None if datatypes is None else tuple(sorted(datatypes)),
        None if removed is None else tuple(sorted(removed)),
    )


@lru_cache(maxsize=256)
def _gate(
    reader: int,
    projects: tuple[str, ...],
    datatypes: tuple[str, ...] | None,
    removed: tuple[bool, ...] | None,
) -> ColumnElement[bool]:
    """`project_gate` of a user and pins, built once and reused (SQL clauses are immutable;
    the database decides at each query what the clause admits): a user's pages of a project,
    and the tools listing it again, reuse it. Building it took ~0.5 ms per listing (issue
    #11)."""
    readable = exists(
        select(Project.id).where(Project.id.in_(projects), readable_projects(Principal(sub=reader)))
    )
    c = DatasetCount
    narrow = [c.project_id.in_(projects), c.pub_count > 0]
    if datatypes is not None:
        narrow.append(c.datatype_id.in_(datatypes))
    if removed is not None:
        narrow.append(c.removed.in_(removed))
    return or_(readable, exists(select(c.project_id).where(*narrow)))


@dataclass(frozen=True)
class TagRange:
    """One range of `dataset_tag_search`: every key column but `dataset_id` pinned."""

    kind: str
    tag: str
    project_id: str
    removed: bool
    datatype_id: str

    def where(self, s: Any = DatasetTagSearch) -> list[ColumnElement[bool]]:
        return [
            s.kind == self.kind,
            s.tag == self.tag,
            s.project_id == self.project_id,
            s.removed == self.removed,
            s.datatype_id == self.datatype_id,
        ]


def tag_range(terms: list[Term], allowed: dict[str, set[Any]]) -> TagRange | None:
    """The range of a find that pins one project, one removed flag, one datatype and has a
    positive tag test, or None."""
    tag = dataset_totals.positive_tag(terms)
    if tag is None:
        return None
    one = {key: allowed.get(key, set()) for key in _PINNED}
    if any(len(values) != 1 for values in one.values()):
        return None
    return TagRange(
        tag[0],
        tag[1],
        next(iter(one["project"])),
        next(iter(one["removed"])),
        next(iter(one["datatype"])),
    )


def tag_page(span: TagRange, where: ColumnElement[bool], columns: tuple[Any, ...]) -> Select[Any]:
    """The sorted (unpaged) page statement: the range's rows in `dataset_id` order, each
    joined to its object by primary key and tested with the whole clause (access and find)."""
    s = DatasetTagSearch
    return driven_page(s, s.dataset_id, span.where(s), where, columns)


def driven_page(
    driver: Any,
    key: Any,
    narrow: list[ColumnElement[bool]],
    where: ColumnElement[bool],
    columns: tuple[Any, ...],
) -> Select[Any]:
    """The objects whose ids `driver` lists (its rows matching `narrow`), in the order of
    `key` (the driver's copy of the id, an index order), each looked up by primary key and
    tested with `where`, as plain rows of `columns` (columns of `Dataset`). The lookup is a
    LATERAL subquery fenced with `OFFSET 0`: PostgreSQL then runs it once per driver row, in
    the driver's index order, and stops at the page's last row; a plain join let it merge the
    driver with a walk of every object in `_id` order (37,000 objects read for a page of a
    release at 1,000,000 objects)."""
    probe = _select(columns).where(Dataset.id == key, where).offset(0).lateral(_PROBE)
    # the outer columns name the subquery's by text: its own column objects (`probe.c`, made
    # afresh for each new subquery: ~0.5 ms of a listing, issue #11) are never made
    return (
        select(*_probe_columns(columns))
        .select_from(driver)
        .join(probe, true())
        .where(*narrow)
        .order_by(key)
    )


#: the name of `driven_page`'s LATERAL subquery
_PROBE = "page_row"


@cache
def _select(columns: tuple[Any, ...]) -> Select[Any]:
    """`select(*columns)`, made once (statements are immutable: `where` makes a copy)."""
    return select(*columns)


@cache
def _probe_columns(columns: tuple[Any, ...]) -> tuple[Any, ...]:
    """`columns` as the columns of `driven_page`'s subquery: `page_row."<name>" AS <name>`,
    typed as the column (its result processing unchanged)."""
    return tuple(literal_column(f'{_PROBE}."{c.key}"', type_=c.type).label(c.key) for c in columns)


#: tag tests `range_totals` answers from the range: key → kind in `dataset_tag_search`
_TAG_KINDS = {"tags": "t", "datatype_tags": "d"}


def range_totals(
    session: Any, principal: Principal | None, span: TagRange, terms: list[Term]
) -> tuple[int, int] | None:
    """(count, size) of a find whose every term is a pin of the range or a tag test
    (`$all`/`$eq`/one-value `$in`, `$nin`/`$ne`) of the range's kind, counted over the range
    alone: the other tags of each object are probed in the same table (same prefix), its
    size read from the range row. Access: `access.readable_rows` over the range rows' copy of
    the project and id. None when another term is present, or for a caller whose rule needs
    the object row."""
    if principal is None or principal.datasets is not None:
        # a download script's token: its list of objects needs the object row
        return None
    others: list[tuple[str, bool]] = []
    for key, value in terms:
        if key in _PINNED:
            kind = _PINNED[key]
            if dataset_totals.is_pin(value) and dataset_totals._values(kind, value) is not None:
                continue  # one of the range's own pins (single-valued: `tag_range`)
            return None
        if _TAG_KINDS.get(key) != span.kind:
            return None
        tests = _tag_tests(value)
        if tests is None:
            return None
        for tag, present in tests:
            if present and tag == span.tag:
                continue  # the range's own tag
            others.append((tag, present))
    reader = None if principal.is_admin("warehouse") else principal.sub
    stmt = _range_statement(span.removed, tuple(present for _tag, present in others), reader)
    bound: dict[str, Any] = {
        "range_kind": span.kind,
        "range_tag": span.tag,
        "range_project": span.project_id,
        "range_datatype": span.datatype_id,
    }
    for i, (tag, _present) in enumerate(others):
        bound[f"range_tag_{i}"] = tag
    (row,) = plain_rows(session, stmt, bound)
    return int(row[0]), int(row[1] or 0)


@lru_cache(maxsize=1024)
def _range_statement(
    removed: bool, others: tuple[bool, ...], reader: int | None
) -> Select[int, int | None]:
    """`range_totals`' statement, for the range's `removed` (a constant in the SQL, as in the
    find's own clause), its other tag tests (must each be present or absent) and the caller
    (`reader`: a sub; None for an archive admin, who reads everything). The range's other
    columns and the other tags are bound parameters (`range_kind`, `range_tag`,
    `range_project`, `range_datatype`, `range_tag_<i>`): built once per shape and user, not
    for each listing (~0.7 ms with its cache key, issue #11)."""
    s = DatasetTagSearch
    kind = bindparam("range_kind", type_=String())
    project = bindparam("range_project", type_=String())
    datatype = bindparam("range_datatype", type_=String())
    clauses: list[ColumnElement[bool]] = [
        s.kind == kind,
        s.tag == bindparam("range_tag", type_=String()),
        s.project_id == project,
        s.removed == removed,
        s.datatype_id == datatype,
    ]
    for i, present in enumerate(others):
        other = DatasetTagSearch.__table__.alias()
        probe = exists(
            select(other.c.dataset_id).where(
                other.c.kind == kind,
                other.c.tag == bindparam(f"range_tag_{i}", type_=String()),
                other.c.project_id == project,
                other.c.removed == removed,
                other.c.datatype_id == datatype,
                other.c.dataset_id == s.dataset_id,
            )
        )
        clauses.append(probe if present else not_(probe))
    # the range's project is one value: its readability is tested once, not per row
    if reader is not None:
        access = readable_rows(Principal(sub=reader), project, s.dataset_id)
        assert access is not None  # (a user's rule, not a download script's)
        clauses.append(access)
    return select(func.count(), func.coalesce(func.sum(s.size), 0)).where(*clauses)


def _tag_tests(value: Any) -> list[tuple[str, bool]] | None:
    """(tag, must be present) for a tag term made only of string equality, `$eq`, `$all`,
    one-value `$in`, `$ne` and `$nin`; None for anything else."""
    if isinstance(value, str):
        return [(value, True)]
    if not isinstance(value, dict) or not value:
        return None
    out: list[tuple[str, bool]] = []
    for op, arg in value.items():
        if op in ("$eq", "$ne") and isinstance(arg, str):
            out.append((arg, op == "$eq"))
        elif op in ("$all", "$nin") and isinstance(arg, list) and arg:
            if not all(isinstance(item, str) for item in arg):
                return None
            out += [(item, op == "$all") for item in arg]
        elif op == "$in" and isinstance(arg, list) and len(arg) == 1 and isinstance(arg[0], str):
            out.append((arg[0], True))
        else:
            return None
    return out
