"""Targets: what a find key refers to (a column, an association-table array, a child table,
a path in a JSON document), and how each positive operator tests it. The compiler negates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import cast as sql_cast

from brainlife.server.query.jsonpath import JSON, JsonPath, JsonRow
from brainlife.server.query.regex import regex_match
from brainlife.server.query.values import NOMATCH, OPS, Clause, Kind, SqlExpr, cast

if TYPE_CHECKING:
    from brainlife.server.query.fields import Collection
    from brainlife.server.query.find import Compiler


class Target:
    """A resolved find key. Positive tests only; the compiler negates them."""

    name: str = ""
    sortable: ColumnElement[Any] | None = None

    def eq(self, value: Any) -> Clause:
        raise NotImplementedError

    def in_(self, values: list[Any]) -> Clause:
        return or_(false(), *(self.eq(v) for v in values))

    def compare(self, op: str, value: Any) -> Clause:
        raise NotImplementedError

    def regex(self, pattern: str) -> Clause:
        raise NotImplementedError

    def exists(self) -> Clause:
        raise NotImplementedError

    def elem_match(self, query: dict[str, Any], compiler: Compiler) -> Clause:
        return false()

    def size(self, n: int) -> Clause:
        return false()

    def for_negation(self) -> Target:
        """The target whose tests the compiler negates (`$ne`, `$nin`, `$not`, `$nor`): the
        same rows, in the SQL form that is cheaper to negate when it differs."""
        return self


@dataclass
class ScalarTarget(Target):
    expr: SqlExpr
    kind: Kind
    name: str = ""

    @property
    def sortable(self) -> ColumnElement[Any]:  # type: ignore[override]
        return self.expr

    def _known(self, clause: Clause) -> Clause:
        """Never NULL: a missing value fails the test (so that NOT of it succeeds)."""
        if getattr(self.expr, "nullable", True) is False:
            return clause
        return and_(self.expr.is_not(None), clause)

    def eq(self, value: Any) -> Clause:
        if value is None:
            return self.expr.is_(None)
        v = cast(self.kind, value, self.name)
        return false() if v is NOMATCH else self._known(self.expr == v)

    def in_(self, values: list[Any]) -> Clause:
        casted = [cast(self.kind, v, self.name) for v in values if v is not None]
        casted = [v for v in casted if v is not NOMATCH]
        parts: list[Clause] = [self._known(self.expr.in_(casted))] if casted else []
        if any(v is None for v in values):
            parts.append(self.expr.is_(None))
        return or_(false(), *parts)

    def compare(self, op: str, value: Any) -> Clause:
        if value is None:
            return self.expr.is_(None) if op in ("$gte", "$lte") else false()
        v = cast(self.kind, value, self.name)
        if v is NOMATCH:
            return false()
        if self.kind is Kind.BOOL:
            # false < true, as in Mongo; SQL has no order on booleans, their integers do
            return self._known(OPS[op](sql_cast(self.expr, Integer), int(v)))
        return self._known(OPS[op](self.expr, v))

    def regex(self, pattern: str) -> Clause:
        if self.kind is not Kind.STR:
            return false()
        return self._known(regex_match(self.expr, pattern))

    def exists(self) -> Clause:
        return self.expr.is_not(None)


@dataclass
class AnyOf(Target):
    """An array field whose elements are tested by `element` inside `wrap` (an EXISTS, or
    `parent IN (SELECT …)`); `negated_wrap` is the form used under a negation."""

    element: ScalarTarget
    wrap: Callable[[Clause], Clause]
    count: Callable[[], ColumnElement[Any]]
    name: str = ""
    negated_wrap: Callable[[Clause], Clause] | None = None

    def for_negation(self) -> Target:
        if self.negated_wrap is None or self.negated_wrap is self.wrap:
            return self
        return replace(self, wrap=self.negated_wrap)

    def eq(self, value: Any) -> Clause:
        if value is None:
            return false()
        if isinstance(value, list):
            # whole-array equality (order is not compared)
            return and_(*(self.eq(v) for v in value), self.count() == len(value))
        return self.wrap(self.element.eq(value))

    def in_(self, values: list[Any]) -> Clause:
        scalars = [v for v in values if not isinstance(v, list) and v is not None]
        parts = [self.wrap(self.element.in_(scalars))] if scalars else []
        parts += [self.eq(v) for v in values if isinstance(v, list)]
        return or_(false(), *parts)

    def compare(self, op: str, value: Any) -> Clause:
        return self.wrap(self.element.compare(op, value))

    def regex(self, pattern: str) -> Clause:
        return self.wrap(self.element.regex(pattern))

    def exists(self) -> Clause:
        return true()

    def elem_match(self, query: dict[str, Any], compiler: Compiler) -> Clause:
        if not query or not all(k.startswith("$") for k in query):
            return false()  # strings have no fields
        return self.wrap(compiler.operators(self.element, query))

    def size(self, n: int) -> Clause:
        return self.count() == n


@dataclass
class SubDocTarget(Target):
    """A field of the documents of a child table (`releases.name`): any child matches."""

    inner: Target
    wrap: Callable[[Clause], Clause]
    name: str = ""

    def eq(self, value: Any) -> Clause:
        return self.wrap(self.inner.eq(value))

    def in_(self, values: list[Any]) -> Clause:
        return self.wrap(self.inner.in_(values))

    def compare(self, op: str, value: Any) -> Clause:
        return self.wrap(self.inner.compare(op, value))

    def regex(self, pattern: str) -> Clause:
        return self.wrap(self.inner.regex(pattern))

    def exists(self) -> Clause:
        return self.wrap(self.inner.exists())

    def elem_match(self, query: dict[str, Any], compiler: Compiler) -> Clause:
        return self.wrap(self.inner.elem_match(query, compiler))


@dataclass
class SubDocsTarget(Target):
    """The child-table array itself (`releases`): supports $elemMatch, $size, $exists."""

    spec: Collection
    link: Clause
    name: str = ""

    def _exists(self, clause: Clause) -> Clause:
        return exists().where(self.link, clause)

    def eq(self, value: Any) -> Clause:
        return false() if value is None else self._exists(false())

    def compare(self, op: str, value: Any) -> Clause:
        return false()

    def regex(self, pattern: str) -> Clause:
        return false()

    def exists(self) -> Clause:
        return true()

    def elem_match(self, query: dict[str, Any], compiler: Compiler) -> Clause:
        return self._exists(compiler.nested(self.spec).document(query))

    def size(self, n: int) -> Clause:
        return select(func.count()).where(self.link).scalar_subquery() == n


@dataclass
class JsonValueTarget(Target):
    """One JSON value (an array element under $elemMatch) tested directly."""

    row: JsonRow
    name: str = ""

    def eq(self, value: Any) -> Clause:
        return JSON.eq(self.row, value)

    def compare(self, op: str, value: Any) -> Clause:
        return JSON.compare(self.row, op, value)

    def regex(self, pattern: str) -> Clause:
        return JSON.regex(self.row, pattern)

    def exists(self) -> Clause:
        return true()


@dataclass
class JsonTarget(Target):
    """A path inside a JSON document, with Mongo's semantics for arrays on the way."""

    doc: ColumnElement[Any]
    segments: list[str]
    name: str = ""

    @property
    def sortable(self) -> ColumnElement[Any]:  # type: ignore[override]
        return JSON.scalar_at(self.doc, JSON.path(self.segments))

    def _at(self, terminal: Callable[[ColumnElement[Any], JsonPath], Clause]) -> Clause:
        """terminal(container, path-of-last-segment) for every container on the way."""
        return self._walk(self.doc, self._groups(), terminal)

    def _groups(self) -> list[list[str]]:
        # numeric segments index into the array before them (no iteration at that level)
        groups: list[list[str]] = []
        for seg in self.segments:
            if seg.isdigit() and groups:
                groups[-1].append(seg)
            else:
                groups.append([seg])
        return groups

    def _walk(
        self,
        doc: ColumnElement[Any],
        groups: list[list[str]],
        terminal: Callable[[ColumnElement[Any], JsonPath], Clause],
    ) -> Clause:
        if not groups:  # the whole document
            return terminal(doc, ())
        path = JSON.path(groups[0])
        if len(groups) == 1:
            return terminal(doc, path)
        row = JSON.elements_of(doc, path)
        inner = self._walk(row.c.value, groups[1:], terminal)
        return exists(select(literal(1)).select_from(row).where(row.c.type == "object", inner))

    def _values(self, test: Callable[[JsonRow], Clause]) -> Clause:
        def terminal(doc: ColumnElement[Any], path: JsonPath) -> Clause:
            row = JSON.each(doc, path)
            cond = and_(not_(JSON.is_member(row)), test(JsonRow(row.c.value, row.c.type)))
            return exists(select(literal(1)).select_from(row).where(cond))

        return self._at(terminal)

    def eq(self, value: Any) -> Clause:
        if value is None:
            return or_(not_(self.exists()), self._values(lambda r: JSON.eq(r, None)))
        if isinstance(value, list | dict):
            whole = self._at(lambda d, p: JSON.whole_eq(d, p, value))
            return or_(whole, self._values(lambda r: JSON.eq(r, value)))
        return self._values(lambda r: JSON.eq(r, value))

    def in_(self, values: list[Any]) -> Clause:
        scalars = [v for v in values if not isinstance(v, list | dict) and v is not None]
        parts = [self.eq(v) for v in values if isinstance(v, list | dict) or v is None]
        if scalars:
            parts.append(self._values(lambda r: JSON.in_(r, scalars)))
        return or_(false(), *parts)

    def compare(self, op: str, value: Any) -> Clause:
        return self._values(lambda r: JSON.compare(r, op, value))

    def regex(self, pattern: str) -> Clause:
        return self._values(lambda r: JSON.regex(r, pattern))

    def exists(self) -> Clause:
        return self._at(lambda d, p: JSON.type_at(d, p).is_not(None))

    def size(self, n: int) -> Clause:
        return self._at(
            lambda d, p: and_(JSON.type_at(d, p) == "array", JSON.array_length(d, p) == n)
        )

    def elem_match(self, query: dict[str, Any], compiler: Compiler) -> Clause:
        if not query:
            return false()
        operators = all(k.startswith("$") for k in query)

        def terminal(doc: ColumnElement[Any], path: JsonPath) -> Clause:
            row = JSON.each(doc, path)
            if operators:
                cond = compiler.operators(JsonValueTarget(JsonRow(row.c.value, row.c.type)), query)
            else:
                cond = and_(row.c.type == "object", compiler.element(row.c.value).document(query))
            cond = and_(JSON.is_element(row), cond)
            return exists(select(literal(1)).select_from(row).where(cond))

        return self._at(terminal)
