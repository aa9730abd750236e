"""Collection specs: how a collection's wire fields map to SQL, and the resolution of a find
or sort key to its `Target`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, exists, func, literal, select

from brainlife.server.errors import BadRequest
from brainlife.server.query.targets import (
    AnyOf,
    JsonTarget,
    ScalarTarget,
    SubDocsTarget,
    SubDocTarget,
    Target,
)
from brainlife.server.query.values import Clause, Kind, SqlExpr


@dataclass(frozen=True)
class Assoc:
    """An array of strings kept in an association table: `value` is the element column, `fk`
    points at the parent's `parent` key, `where` narrows the table (e.g. one project role).

    Tests compile to `parent IN (SELECT fk FROM table WHERE value …)`: the planner may then
    drive the query from the association table's index (a release's 10,000 objects among a
    million) or probe a set built once, which beats a correlated EXISTS per row over many
    rows. A caller whose find already narrows the rows through an index asks for the
    correlated EXISTS instead (`compile_find(correlate=…)`, `Collection.resolve`), for every
    test or for the negated ones only (`correlate_negations`)."""

    value: SqlExpr
    fk: SqlExpr
    parent: SqlExpr
    where: Callable[[], Clause] | None = None
    kind: Kind = Kind.STR


@dataclass(frozen=True)
class SubDocs:
    spec: Callable[[], Collection]
    link: Callable[[], Clause]


@dataclass(frozen=True)
class Collection:
    """How a collection's wire fields map to SQL.

    `fields` values: a `ScalarTarget` template (column + kind), an `Assoc`, a `SubDocs`, or a
    JSON column (sub-paths allowed). Keys may be dotted (`meta.subject`) to promote a path.
    Anything else falls into the `extra` JSON column. `text`: the text expressions a
    top-level `$text` search reads (none: the collection has no text index, as in Mongo).
    """

    name: str
    fields: Mapping[str, Any]
    extra: SqlExpr | None = None
    text: tuple[SqlExpr, ...] = ()

    def resolve(
        self, key: str, *, correlated: bool = False, correlated_negations: bool = False
    ) -> tuple[Target, bool]:
        """The target of a find/sort key, and whether the key is a known field.

        `correlated`: an `Assoc` key is tested with a correlated `EXISTS (… WHERE fk = parent
        AND …)` (a primary-key probe per row) instead of `parent IN (SELECT fk …)`. That is
        cheaper when other, indexed tests already narrow the rows (and the page can stop
        early in `_id` order), where the IN form would first build the set of every parent
        having the value. `correlated_negations`: the same for the negated tests only (`NOT
        EXISTS …` instead of `parent NOT IN (SELECT fk …)`, see `Target.for_negation`); the
        two forms select the same rows (`fk` and `parent` are never NULL)."""
        if not key or any(not part for part in key.split(".")):
            raise BadRequest(f"find: invalid field name {key!r}")
        spec = self.fields.get(key)
        if isinstance(spec, ScalarTarget):
            return ScalarTarget(spec.expr, spec.kind, key), True
        parts = key.split(".")
        head, rest = parts[0], parts[1:]
        spec = self.fields.get(head)
        if spec is None:
            if self.extra is None:
                return ScalarTarget(literal(None, String()), Kind.STR, key), False
            return JsonTarget(self.extra, parts, key), False
        if isinstance(spec, ScalarTarget):
            if rest:  # a scalar has no sub-fields: matches like a missing field
                return JsonTarget(literal(None, String()), rest, key), False
            return ScalarTarget(spec.expr, spec.kind, key), True
        if isinstance(spec, Assoc):
            element = ScalarTarget(spec.value, spec.kind, key)

            def in_set(clause: Clause, a: Assoc = spec) -> Clause:
                narrow = [a.where()] if a.where else []
                return a.parent.in_(select(a.fk).where(*narrow, clause))

            def probe(clause: Clause, a: Assoc = spec) -> Clause:
                narrow = [a.where()] if a.where else []
                return exists(select(literal(1)).where(a.fk == a.parent, *narrow, clause))

            def count(a: Assoc = spec) -> ColumnElement[Any]:
                narrow = [a.where()] if a.where else []
                return select(func.count()).where(a.fk == a.parent, *narrow).scalar_subquery()

            if rest:
                return JsonTarget(literal(None, String()), rest, key), False
            wrap = probe if correlated else in_set
            negated = probe if correlated or correlated_negations else in_set
            return AnyOf(element, wrap, count, key, negated_wrap=negated), True
        if isinstance(spec, SubDocs):
            child = spec.spec()
            link = spec.link()
            if not rest:
                return SubDocsTarget(child, link, key), True
            inner, known = child.resolve(".".join(rest))

            def wrap_child(clause: Clause, link: Clause = link) -> Clause:
                return exists().where(link, clause)

            return SubDocTarget(inner, wrap_child, key), known
        # a JSON column
        return JsonTarget(spec, rest, key) if rest else JsonTarget(spec, [], key), True


def json_document(doc: ColumnElement[Any]) -> Collection:
    """A JSON value treated as a document (for $elemMatch on arrays of objects)."""
    return Collection(name="element", fields={}, extra=doc)
