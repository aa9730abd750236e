"""The find compiler: a JSON Mongo filter → one SQLAlchemy boolean clause; and the ORDER BY,
OFFSET and LIMIT of a listing."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, true

from brainlife.server.engines import per_engine
from brainlife.server.errors import BadRequest
from brainlife.server.query.fields import Collection, json_document
from brainlife.server.query.params import ListParams, parse_find
from brainlife.server.query.regex import mongo_pattern
from brainlife.server.query.targets import Target
from brainlife.server.query.text import text_clause
from brainlife.server.query.values import OPS, Clause

_LOGICAL = ("$and", "$or", "$nor")
_IGNORED_TOP = ("$comment",)


class Compiler:
    def __init__(
        self,
        spec: Collection,
        correlate: frozenset[str] = frozenset(),
        correlate_negations: frozenset[str] = frozenset(),
        *,
        negated: bool = False,
    ) -> None:
        self.spec = spec
        #: keys whose `Assoc` tests compile to correlated EXISTS (`Collection.resolve`)
        self.correlate = correlate
        #: keys whose negated `Assoc` tests compile to correlated NOT EXISTS
        self.correlate_negations = correlate_negations
        #: whether the documents compiled are under a negation (`$nor`)
        self.negated = negated

    def _under_negation(self) -> Compiler:
        if self.negated:
            return self
        return Compiler(self.spec, self.correlate, self.correlate_negations, negated=True)

    def nested(self, spec: Collection) -> Compiler:
        """A compiler for the documents of a child table (`$elemMatch` on `releases`)."""
        return Compiler(spec)

    def element(self, doc: ColumnElement[Any]) -> Compiler:
        """A compiler for a JSON value as a document (`$elemMatch` on arrays of objects)."""
        return Compiler(json_document(doc))

    def document(self, query: Any) -> Clause:
        if not isinstance(query, dict):
            raise BadRequest(f"find: expected an object, got {json.dumps(query)}")
        clauses: list[Clause] = []
        for key, value in query.items():
            if key in _LOGICAL:
                if not isinstance(value, list) or not value:
                    raise BadRequest(f"find: {key} needs a non-empty list of objects")
                compiler = self._under_negation() if key == "$nor" else self
                subs = [compiler.document(v) for v in value]
                if key == "$and":
                    clauses.append(and_(*subs))
                elif key == "$or":
                    clauses.append(or_(*subs))
                else:
                    clauses.append(not_(or_(*subs)))
            elif key in _IGNORED_TOP:
                continue
            elif key == "$text":
                clauses.append(text_clause(self.spec.name, self.spec.text, value))
            elif key.startswith("$"):
                raise BadRequest(f"find: unknown or unsupported top-level operator {key}")
            else:
                clauses.append(self.field(key, value))
        return and_(true(), *clauses)

    def field(self, key: str, value: Any) -> Clause:
        target, _known = self.spec.resolve(
            key,
            correlated=key in self.correlate,
            correlated_negations=key in self.correlate_negations,
        )
        if self.negated:
            target = target.for_negation()
        if isinstance(value, dict) and any(k.startswith("$") for k in value):
            if not all(k.startswith("$") for k in value):
                raise BadRequest(f"find: {key} mixes operators and field names")
            if set(value) <= {"$oid", "$date"}:
                return target.eq(value)
            return self.operators(target, value)
        return target.eq(value)

    def operators(self, target: Target, ops: dict[str, Any]) -> Clause:
        name = target.name or "value"
        clauses: list[Clause] = []
        if "$options" in ops and "$regex" not in ops:
            raise BadRequest(f"find: {name}: $options needs $regex")
        for op, arg in ops.items():
            if op == "$eq":
                clauses.append(target.eq(arg))
            elif op == "$ne":
                clauses.append(not_(target.for_negation().eq(arg)))
            elif op in ("$in", "$nin", "$all"):
                if not isinstance(arg, list):
                    raise BadRequest(f"find: {name}: {op} needs a list, not {json.dumps(arg)}")
                if op == "$in":
                    clauses.append(target.in_(arg))
                elif op == "$nin":
                    clauses.append(not_(target.for_negation().in_(arg)))
                else:
                    clauses.append(
                        and_(*(self._all_item(target, v) for v in arg)) if arg else false()
                    )
            elif op == "$exists":
                if _truthy(arg):
                    clauses.append(target.exists())
                else:
                    clauses.append(not_(target.for_negation().exists()))
            elif op in OPS:
                clauses.append(target.compare(op, arg))
            elif op == "$regex":
                clauses.append(target.regex(mongo_pattern(arg, ops.get("$options"))))
            elif op == "$options":
                continue
            elif op == "$not":
                if isinstance(arg, dict) and arg and all(k.startswith("$") for k in arg):
                    clauses.append(not_(self.operators(target.for_negation(), arg)))
                elif isinstance(arg, str):  # a regex given directly
                    clauses.append(not_(target.for_negation().regex(mongo_pattern(arg, None))))
                else:
                    raise BadRequest(f"find: {name}: $not needs an operator object or a regex")
            elif op == "$elemMatch":
                if not isinstance(arg, dict):
                    raise BadRequest(f"find: {name}: $elemMatch needs an object")
                clauses.append(target.elem_match(arg, self))
            elif op == "$size":
                if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
                    raise BadRequest(f"find: {name}: $size needs a non-negative whole number")
                clauses.append(target.size(arg))
            else:
                raise BadRequest(f"find: {name}: unknown or unsupported operator {op}")
        return and_(true(), *clauses)

    def _all_item(self, target: Target, value: Any) -> Clause:
        if isinstance(value, dict) and set(value) == {"$elemMatch"}:
            return self.operators(target, value)
        return target.eq(value)


def _truthy(value: Any) -> bool:
    return value not in (False, 0, None, "false", "0", "")


def compile_find(
    spec: Collection,
    find: dict[str, Any] | str | None,
    *,
    correlate: frozenset[str] = frozenset(),
    correlate_negations: frozenset[str] = frozenset(),
) -> Clause:
    """The SQL clause for a `find` document (parsed, or the raw JSON text of the parameter).

    `correlate`: array keys to test with correlated EXISTS (see `Collection.resolve`);
    `correlate_negations`: array keys whose negated tests (`$ne`, `$nin`, `$not`, `$nor`) use
    correlated NOT EXISTS while their positive tests keep the `IN (SELECT …)` form. A negated
    set cannot drive the query, so its only use is to be probed: the correlated probe costs
    per row tested and stops with the page, the set costs every object having the value."""
    if find is None or isinstance(find, str):
        find = parse_find(find)
    return Compiler(spec, correlate, correlate_negations).document(find)


def order_by(
    spec: Collection, sort: tuple[tuple[str, int], ...], id_column: ColumnElement[Any]
) -> list[ColumnElement[Any]]:
    """ORDER BY for a parsed sort, with `_id` as the final tiebreaker."""
    out: list[ColumnElement[Any]] = []
    has_id = False
    for key, direction in sort:
        target, known = spec.resolve(key)
        expr = target.sortable if known else None
        if expr is None:
            raise BadRequest(f"sort: cannot sort {spec.name} by {key!r}")
        has_id = has_id or key == "_id"
        ordered: ColumnElement[Any] = expr.desc() if direction < 0 else expr.asc()
        if getattr(expr, "nullable", True) is not False:
            # missing values first ascending, last descending: SQLite's order (NULL is the
            # smallest value), which PostgreSQL must be told (it puts NULL after everything)
            nulls = expr.desc().nulls_last() if direction < 0 else expr.asc().nulls_first()
            ordered = per_engine(sqlite=ordered, postgresql=nulls)
        out.append(ordered)
    if not has_id:
        out.append(id_column.asc())
    return out


def page(stmt: Select[Any], params: ListParams) -> Select[Any]:
    if params.skip:
        stmt = stmt.offset(params.skip)
    if params.limit is not None:
        stmt = stmt.limit(params.limit)
    return stmt
