"""Data objects: `GET /api/warehouse/dataset` (token required) and helpers for other services."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, aliased

from brainlife.server import documents
from brainlife.server.access import browsable_datasets
from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetPublication,
    DatasetTag,
    Datatype,
    Project,
)
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams, compile_find
from brainlife.server.services import dataset_plans, dataset_totals
from brainlife.server.services.listing import Listing, plain_rows, run_listing
from brainlife.server.specs import DATASETS
from brainlife.wire import Document
from brainlife.wire.tags import split_tags


def list_datasets(
    *,
    session: Session,
    principal: Principal | None,
    params: ListParams,
    datatype_tags: Sequence[str] = (),
    count: bool = True,
) -> Listing[Row[Any]]:
    """Readable data objects matching `find`, with `count` and `size` over every readable match.
    The rows are plain rows of `DATASET_COLUMNS` (attributes named as `Dataset`'s), not ORM
    objects: what `dataset_documents` renders.

    Readable: in a project the caller may read (public, admin/member/guest) or published in a
    release. Unlike brainlife, unreadable rows are filtered in the query, so `count`/`size`
    and page lengths only cover what the caller may read. `removed` is not filtered: clients
    send `removed: false` themselves. `datatype_tags` is brainlife's deprecated parameter
    (`!tag` excludes). Anonymous callers (the web pages; the API route asks for a token) get
    `access.browsable_datasets`; `count=False` skips the totals (a page after the first).
    """
    find = params.find
    if datatype_tags:
        want, avoid = split_tags(datatype_tags)
        extra: dict[str, Any] = {}
        if want:
            extra["$all"] = want
        if avoid:
            extra["$nin"] = avoid
        find = {"$and": [find, {"datatype_tags": extra}]}
        params = ListParams(find, params.sort, params.select, params.skip, params.limit)
    access = browsable_datasets(principal)
    terms = dataset_totals.conjunction(find)
    correlate: frozenset[str] = frozenset()
    correlate_negations: frozenset[str] = frozenset()
    page_stmt = None
    span: dataset_plans.TagRange | None = None
    postgresql = session.get_bind().dialect.name == "postgresql"
    if terms is not None:
        keys = {key for key, value in terms if dataset_totals.is_pin(value)}
        if keys & _NARROWING:
            # the page walks an index of the narrowing columns in `_id` order and probes
            # each row's tags by primary key, instead of first collecting every object
            # having (or lacking) the tag
            correlate = _ARRAYS
        if keys & (_NARROWING | {"_id"}):
            # a negated array test can only be probed: per narrowed row, not as the set of
            # every object having the value (a release's publications included)
            correlate_negations = _NEGATABLE
        allowed = dataset_plans.pins(terms)
        gate = dataset_plans.project_gate(principal, allowed)
        if gate is not None:
            access = and_(access, gate)
        pinned = dataset_totals.release_pin(terms)
        if pinned and pinned[0] and not params.sort and not keys & _SELECTIVE:
            page_stmt = _release_page(
                pinned[0], pinned[1], access, correlate, correlate_negations, postgresql
            )
        if postgresql:
            span = dataset_plans.tag_range(terms, allowed)
        if span is not None and page_stmt is None and not params.sort:
            where = and_(
                access,
                compile_find(
                    DATASETS, find, correlate=correlate, correlate_negations=correlate_negations
                ),
            )
            page_stmt = dataset_plans.tag_page(span, where, DATASET_COLUMNS)
    return run_listing(
        session,
        Dataset,
        DATASETS,
        access,
        params,
        count=count,
        size_column=Dataset.size,
        columns=DATASET_COLUMNS,
        correlate=correlate,
        correlate_negations=correlate_negations,
        page_stmt=page_stmt,
        ids_first=postgresql,
        # the precomputed totals know projects, not a download script's list of objects
        totals=None
        if principal is not None and principal.scoped
        else lambda where: (
            dataset_totals.fast_totals(session, principal, find)
            or (span and terms and dataset_plans.range_totals(session, principal, span, terms))
            or dataset_totals.tag_totals(session, principal, find, where())
        ),
    )


#: top-level keys whose index narrows a listing enough to test tags row by row
_NARROWING = {"project", "datatype", "meta.subject"}
_ARRAYS = frozenset({"tags", "datatype_tags"})
#: arrays whose negated tests are probed row by row in a narrowed listing
_NEGATABLE = _ARRAYS | {"publications"}
#: pinned keys more selective than a release: their own index serves the page better
_SELECTIVE = {"_id", "meta.subject"}


def _release_page(
    release_id: str,
    rest: list[tuple[str, Any]],
    access: ColumnElement[bool],
    correlate: frozenset[str],
    correlate_negations: frozenset[str],
    postgresql: bool = False,
) -> Select[Any]:
    """The page of a find that pins one release: read in `_id` order from the release's index
    (`dataset_publications (release_id, dataset_id)`), joined to each object by primary key,
    so that the first 100 matches come without collecting the whole release (on PostgreSQL
    through `dataset_plans.driven_page`, which keeps the planner to that order)."""
    find = {"$and": [{key: value} for key, value in rest]} if rest else {}
    where = and_(
        access,
        compile_find(DATASETS, find, correlate=correlate, correlate_negations=correlate_negations),
    )
    # an alias, so that the access rule's own EXISTS on dataset_publications stays correlated
    # with the object only
    pub = _PUB
    in_release = pub.release_id == release_id
    if postgresql:
        return dataset_plans.driven_page(pub, pub.dataset_id, [in_release], where, DATASET_COLUMNS)
    # ORDER BY the publication's dataset_id (equal to the object's id): the index order
    link = and_(pub.dataset_id == Dataset.id, in_release)
    return select(*DATASET_COLUMNS).join(pub, link).where(where).order_by(pub.dataset_id)


#: `_release_page`'s alias of the release's rows (made once: a new alias of a mapped class
#: costs ~0.3 ms to make and read its columns from, issue #11)
_PUB = aliased(DatasetPublication)

#: What a listing reads of each data object: the columns its document is made of, in the
#: order `documents.dataset_values_doc` takes them.
DATASET_COLUMNS: tuple[Any, ...] = tuple(
    getattr(Dataset, name) for name in documents.DATASET_FIELDS
)


def dataset_documents(session: Session, rows: Sequence[Dataset | Row[Any]]) -> list[Document]:
    """Documents for many data objects (ORM objects, or rows of `DATASET_COLUMNS` as
    `list_datasets` reads them), with their arrays read in indexed queries (one for a page,
    three for more; cheaper than loading an ORM object per tag)."""
    values = [row if isinstance(row, Row) else documents.dataset_fields(row) for row in rows]
    # per object: its tags, datatype_tags and publications (the order of `_ARRAY_TABLES`)
    arrays: dict[str, tuple[list[str], list[str], list[str]]] = {v[0]: ([], [], []) for v in values}
    ids = list(arrays)
    one, each = _array_statements(session.get_bind().dialect.name == "postgresql")
    if ids and len(ids) <= _ONE_QUERY:
        # a page: the three arrays in one statement, one round trip to the database instead
        # of three (each costs a scheduler wake-up on a loaded machine); fetched at once:
        # iterating the result fetches row by row (~1 ms a page, issue #11)
        for k, dataset_id, value, _pos in plain_rows(session, one, {"ids": ids}):
            arrays[dataset_id][k].append(value)
    elif ids:
        for k, stmt in enumerate(each):
            for dataset_id, value in plain_rows(session, stmt, {"ids": ids}):
                arrays[dataset_id][k].append(value)
    return [documents.dataset_values_doc(v, *arrays[v[0]]) for v in values]


#: the arrays of a data object: (table, value column, document key)
_ARRAY_TABLES: tuple[tuple[Any, Any, str], ...] = (
    (DatasetTag, DatasetTag.tag, "tags"),
    (DatasetDatatypeTag, DatasetDatatypeTag.tag, "datatype_tags"),
    (DatasetPublication, DatasetPublication.release_id, "publications"),
)


@cache
def _array_statements(postgresql: bool) -> tuple[CompoundSelect[Any], tuple[Select[Any], ...]]:
    """The statements `dataset_documents` runs, with the ids as the parameter `ids`: the
    page's one statement (a UNION ALL of the three arrays, ordered by array, object and
    position) and one per array. Built once per engine kind: building the UNION and its cache
    key took ~0.5 ms per listing (issue #11)."""
    parts = [
        select(literal(i).label("k"), t.dataset_id, col.label("v"), t.pos).where(
            _among(postgresql, t.dataset_id)
        )
        for i, (t, col, _attr) in enumerate(_ARRAY_TABLES)
    ]
    one = union_all(*parts).order_by(*map(literal_column, ("k", "dataset_id", "pos")))
    each = tuple(
        select(t.dataset_id, col)
        .where(_among(postgresql, t.dataset_id))
        .order_by(t.dataset_id, t.pos)
        for t, col, _attr in _ARRAY_TABLES
    )
    return one, each


def _among(postgresql: bool, column: Any) -> ColumnElement[bool]:
    """`column IN :ids` (an expanding parameter: the ids' IN list, rendered per execution);
    on PostgreSQL `column = ANY(:ids)`, one array parameter (the same one in each part of the
    page's statement). With an IN list of 100 ids in each of its three parts, the statement was
    9.5 kB of text with 300 parameters, rendered by SQLAlchemy and parsed by psycopg again on
    every page (psycopg caches only short statements): 3-5 ms of CPU per listing at 1,000,000
    objects (issue #11); its text is now constant and short, cached by both and, from its
    fifth run on a connection, prepared by PostgreSQL."""
    if not postgresql:
        return column.in_(bindparam("ids", expanding=True))
    return column == any_(bindparam("ids", type_=ARRAY(String)))


#: up to this many objects, `dataset_documents` reads the arrays in one statement (three IN
#: lists of this many ids stay far below either engine's limit of bound parameters)
_ONE_QUERY = 1000


def populate(session: Session, docs: Iterable[Document], fields: Iterable[str]) -> None:
    """mongoose `populate` for data objects: `datatype` and/or `project` ids → documents.

    Other paths are ignored. Only ids present (not removed by `select`) are replaced.
    """
    wanted = set(fields)
    docs = list(docs)
    targets: list[tuple[str, Any, Any]] = [
        ("datatype", Datatype, documents.datatype_doc),
        ("project", Project, documents.project_doc),
    ]
    for name, model, to_doc in targets:
        if name not in wanted:
            continue
        ids = {d[name] for d in docs if isinstance(d.get(name), str)}
        if not ids:
            continue
        rows = session.scalars(select(model).where(model.id.in_(ids))).all()
        by_id: dict[str, Document] = {r.id: to_doc(r) for r in rows}
        for d in docs:
            if isinstance(d.get(name), str) and d[name] in by_id:
                d[name] = by_id[d[name]]


def populate_fields(text: str | None) -> list[str]:
    """The paths of a `populate` parameter: `"datatype project"`, or JSON (`{"path": …}` or a
    list of those/strings). Anything unreadable populates nothing; JSON beyond the limits of
    the list parameters (`query.limits`) is a 400, as for `find`."""
    from brainlife.server.query import limits

    if not text or not text.strip():
        return []
    text = text.strip()
    if text[0] in "[{":
        try:
            value = limits.loads("populate", text)
        except limits.NotJson:
            return []
        items = value if isinstance(value, list) else [value]
        out: list[str] = []
        for item in items:
            if isinstance(item, str):
                out += item.split()
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                out += item["path"].split()
        return out
    return text.replace(",", " ").split()
