"""The one listing query every brainlife list route runs: filter, count, sort and page in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Executable, Select, and_, func, select
from sqlalchemy.orm import Session

from brainlife.server.query import Collection, ListParams, compile_find, order_by, page

T = TypeVar("T")


@dataclass
class Listing(Generic[T]):
    """One page of rows, and (when asked for) the number and total size of all matches."""

    rows: list[T]
    count: int | None = None
    size: int | None = None


def plain_rows(
    session: Session, stmt: Executable, params: dict[str, Any] | None = None
) -> Sequence[Any]:
    """The rows (SQLAlchemy `Row`s) of a statement that selects columns (no ORM entity), all
    fetched: run on the session's connection (its execution options, its transaction), after
    the autoflush `Session.execute` would do. `Session.execute` would also pass each row
    through the ORM's loading machinery, ~0.5 ms for a listing's page of 100 (issue #11)."""
    if session.autoflush:
        session.flush()
    return session.connection().execute(stmt, params).all()


def run_listing(
    session: Session,
    model: Any,
    spec: Collection,
    access: ColumnElement[bool],
    params: ListParams,
    *,
    count: bool = True,
    size_column: Any = None,
    options: tuple[Any, ...] = (),
    correlate: frozenset[str] = frozenset(),
    correlate_negations: frozenset[str] = frozenset(),
    page_stmt: Select[Any] | None = None,
    totals: Callable[[Callable[[], ColumnElement[bool]]], tuple[int, int] | None] | None = None,
    ids_first: bool = False,
    columns: tuple[Any, ...] | None = None,
) -> Listing[Any]:
    """Rows of `model` the caller may see (`access`) that match `params.find`, sorted and paged.

    `count` (and `size`, the sum of `size_column`) are computed over all matching rows, in the
    database. When the page itself shows that it holds every match (the first page, not full),
    the totals come from the page and the second query is skipped.

    Shortcuts a caller may give (each must select exactly what the general query selects):
    `correlate` and `correlate_negations` (array keys whose tests, or negated tests only, use
    correlated EXISTS, see `compile_find`); `page_stmt`,
    the sorted statement of the page (unpaged, with its own load options) to run instead of
    the general one; `totals`,
    which, given a function returning the whole WHERE clause (access and find; built on first
    use, ~0.5 ms for a rich find, which a `page_stmt` and the totals' shortcuts may not need),
    returns (count, size) or None to fall back to counting with that clause; `ids_first`,
    for a page after the first in `_id` order: its ids are picked first (on PostgreSQL an
    index-only walk past the skipped rows) and only the page's own rows are read, not every
    skipped one; `columns`, columns of
    `model` to read the page as plain rows (SQLAlchemy `Row`s, in that order) instead of ORM
    objects, for a caller that only reads their values (`options` are then not used): an ORM
    object per row costs more to build than the row's SQL to run (issue #11).
    """
    built: list[ColumnElement[bool]] = []

    def whole() -> ColumnElement[bool]:
        if not built:
            find = compile_find(
                spec, params.find, correlate=correlate, correlate_negations=correlate_negations
            )
            built.append(and_(access, find))
        return built[0]

    paged = False
    read = columns if columns is not None else (model,)
    if page_stmt is not None:
        stmt = page_stmt
    elif ids_first and params.skip and not params.sort:
        ids = page(select(model.id).where(whole()).order_by(model.id), params).subquery()
        stmt = select(*read).join(ids, model.id == ids.c.id).order_by(model.id)
        paged = True
    else:
        stmt = select(*read).where(whole()).order_by(*order_by(spec, params.sort, model.id))
    if options and page_stmt is None and columns is None:
        stmt = stmt.options(*options)
    stmt = stmt if paged else page(stmt, params)
    # fetched at once: iterating a result fetches row by row
    rows = plain_rows(session, stmt) if columns is not None else session.scalars(stmt).all()
    listing: Listing[Any] = Listing(list(rows))
    if not count:
        return listing
    complete = params.skip == 0 and (params.limit is None or len(rows) < params.limit)
    if complete:
        listing.count = len(rows)
        if size_column is not None:
            listing.size = sum(getattr(r, size_column.key) or 0 for r in rows)
        return listing
    if totals is not None:
        fast = totals(whole)
        if fast is not None:
            listing.count = fast[0]
            if size_column is not None:
                listing.size = fast[1]
            return listing
    aggregates: list[Any] = [func.count()]
    if size_column is not None:
        aggregates.append(func.coalesce(func.sum(size_column), 0))
    sums = session.execute(select(*aggregates).select_from(model).where(whole())).one()
    listing.count = int(sums[0])
    if size_column is not None:
        listing.size = int(sums[1])
    return listing
