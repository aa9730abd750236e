"""The JSON SQL of each engine: paths, rows of a JSON value, typed comparisons of JSON values.

Everything engine-specific about JSON is here, written for SQLite (`json_extract`,
`json_type`, `json_each`) and for PostgreSQL (`jsonb`: `#>`, `jsonb_typeof`, `jsonb_each`,
`jsonb_array_elements`) side by side; `brainlife.server.engines` renders the one the
statement is compiled for.

The two agree on a vocabulary so that the find compiler needs no engine of its own:

- a path is a tuple of segments (digits index arrays), `()` the whole document;
- the rows of a JSON value (`each`) have columns `key`, `value`, `type`: `type` speaks
  SQLite's `json_each` vocabulary on both engines ('null', 'true', 'false', 'integer' or
  'real', 'text', 'array', 'object'), `key` tells an object's members from an array's
  elements (`is_member`, `is_element`), and `value` is what the engine compares (an SQL value
  on SQLite, a `jsonb` on PostgreSQL), so values are only compared through the methods here.

Known differences (docs/decisions.md): on PostgreSQL a whole object compared for equality
ignores the order of its keys (SQLite compares canonical text, key order included); sorting
on a JSON path orders mixed types by `jsonb`'s rule (null, string, number, boolean, array,
object) instead of SQLite's (null, number, text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    any_,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from brainlife.server.engines import per_engine
from brainlife.server.query.values import OPS, Clause

#: a path inside a JSON document: its segments, `()` for the document itself
JsonPath = tuple[str, ...]


@dataclass(frozen=True)
class JsonRow:
    """One candidate value inside a JSON document: its SQL value and its JSON type."""

    value: ColumnElement[Any]
    type: ColumnElement[Any]


def _sqlite_path(path: JsonPath) -> str:
    out = "$"
    for seg in path:
        if seg.isdigit():
            out += f"[{seg}]"
        else:
            out += '."' + seg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return out


def _pg_at(doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
    """The `jsonb` at `path` (SQL NULL when there is none)."""
    value = sql_cast(doc, JSONB)
    if not path:
        return value
    return value.op("#>")(literal(list(path), ARRAY(Text)))


def _pg_type(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`jsonb_typeof` in SQLite's words (numbers are all 'real': both engines test for either)."""
    kind = func.jsonb_typeof(value)
    return case(
        (kind == "string", literal("text")),
        (kind == "number", literal("real")),
        (
            kind == "boolean",
            case((value == sql_cast(literal("true"), JSONB), "true"), else_="false"),
        ),
        else_=kind,
    )


def _pg_json(value: Any) -> ColumnElement[Any]:
    return sql_cast(literal(json.dumps(value, separators=(",", ":"), ensure_ascii=False)), JSONB)


def _pg_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A `jsonb` string's text, compared bytewise as SQLite compares text."""
    return value.op("#>>")(literal_column("'{}'")).collate("C")


class _Each(FunctionElement[Any]):
    """The rows of a JSON value: `json_each(*sqlite_args)` on SQLite; on PostgreSQL a
    subquery over the `jsonb` value (its members, its elements, or itself if a scalar), with
    the same three columns (`key`: a `jsonb` string for a member, number for an element)."""

    name = "json_each"
    inherit_cache = True


@compiles(_Each)
def _each_sqlite(element: _Each, compiler: Any, **kw: Any) -> str:
    args = list(element.clauses)[1:]
    return "json_each(" + ", ".join(compiler.process(a, **kw) for a in args) + ")"


@compiles(_Each, "postgresql")
def _each_postgresql(element: _Each, compiler: Any, **kw: Any) -> str:
    source = compiler.process(next(iter(element.clauses)), **kw)
    return (
        "(SELECT m.key, m.value, CASE jsonb_typeof(m.value) WHEN 'string' THEN 'text'"
        " WHEN 'number' THEN 'real' WHEN 'boolean' THEN"
        " CASE WHEN m.value = 'true'::jsonb THEN 'true' ELSE 'false' END"
        " ELSE jsonb_typeof(m.value) END AS type"
        f" FROM (SELECT {source} AS j) AS s CROSS JOIN LATERAL ("
        "SELECT to_jsonb(e.key) AS key, e.value AS value"
        " FROM jsonb_each(CASE WHEN jsonb_typeof(s.j) = 'object' THEN s.j END) AS e"
        " UNION ALL SELECT to_jsonb(a.n - 1), a.v FROM jsonb_array_elements("
        "CASE WHEN jsonb_typeof(s.j) = 'array' THEN s.j END) WITH ORDINALITY AS a(v, n)"
        " UNION ALL SELECT NULL::jsonb, s.j WHERE jsonb_typeof(s.j) NOT IN ('object', 'array')"
        ") AS m)"
    )


class _Json:
    STRING = ("text",)
    NUMBER = ("integer", "real")

    @staticmethod
    def path(segments: list[str]) -> JsonPath:
        return tuple(segments)

    @staticmethod
    def each(doc: ColumnElement[Any], path: JsonPath = ()) -> Any:
        sqlite = (doc, literal(_sqlite_path(path))) if path else (doc,)
        return _Each(_pg_at(doc, path), *sqlite).table_valued("key", "value", "type")

    @staticmethod
    def elements_of(doc: ColumnElement[Any], path: JsonPath) -> Any:
        """The value at `path` as a list: its elements if an array, else the value alone."""
        sqlite_path = literal(_sqlite_path(path))
        text = doc.op("->")(sqlite_path)
        wrapped = case(
            (func.json_type(doc, sqlite_path) == "array", text), else_=literal("[") + text + "]"
        )
        at = _pg_at(doc, path)
        pg = case(
            (at.is_(None), at),
            (func.jsonb_typeof(at) == "array", at),
            else_=func.jsonb_build_array(at),
        )
        return _Each(pg, wrapped).table_valued("key", "value", "type")

    @staticmethod
    def is_member(row: Any) -> Clause:
        """Members of an object (SQLite: text keys), not elements of an array or a scalar."""
        return per_engine(
            sqlite=func.typeof(row.c.key) == "text",
            # never NULL (a scalar's key is): the compiler negates it
            postgresql=func.coalesce(func.jsonb_typeof(row.c.key), "null") == "string",
        )

    @staticmethod
    def is_element(row: Any) -> Clause:
        return per_engine(
            sqlite=func.typeof(row.c.key) == "integer",
            postgresql=func.coalesce(func.jsonb_typeof(row.c.key), "null") == "number",
        )

    @staticmethod
    def type_at(doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        return per_engine(
            sqlite=func.json_type(doc, _sqlite_path(path)),
            postgresql=_pg_type(_pg_at(doc, path)),
        )

    def whole_eq(self, doc: ColumnElement[Any], path: JsonPath, value: Any) -> Clause:
        """The value at `path` is the array or object `value` (itself, not one element)."""
        sqlite_path = _sqlite_path(path)
        return per_engine(
            sqlite=and_(
                func.json_type(doc, sqlite_path).is_not(None),
                doc.op("->")(sqlite_path) == self.canonical(value),
            ),
            # never NULL (a missing value is): the compiler negates it
            postgresql=func.coalesce(_pg_at(doc, path) == _pg_json(value), false()),
        )

    @staticmethod
    def scalar_at(doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        return per_engine(
            sqlite=func.json_extract(doc, _sqlite_path(path)), postgresql=_pg_at(doc, path)
        )

    @staticmethod
    def text_field(doc: Any, key: str) -> ColumnElement[Any]:
        """A top-level string member as SQL text: the exact expression the engines' expression
        indexes are built on (`ix_datasets_prov_task_id`, migrations 0001 and 0005)."""
        return per_engine(
            sqlite=func.json_extract(doc, literal_column(f"'$.{key}'")),
            postgresql=doc.op("->>")(literal_column(f"'{key}'")),
        )

    @staticmethod
    def array_length(doc: ColumnElement[Any], path: JsonPath) -> ColumnElement[Any]:
        at = _pg_at(doc, path)
        return per_engine(
            sqlite=func.json_array_length(doc, _sqlite_path(path)),
            postgresql=case(
                (func.jsonb_typeof(at) == "array", func.jsonb_array_length(at)), else_=None
            ),
        )

    @staticmethod
    def canonical(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def _same(self, row: JsonRow, value: Any) -> Clause:
        sqlite = row.value == (
            value if isinstance(value, int | float | str) else self.canonical(value)
        )
        return per_engine(sqlite=sqlite, postgresql=row.value == _pg_json(value))

    def eq(self, row: JsonRow, value: Any) -> Clause:
        if value is None:
            return row.type == "null"
        if isinstance(value, bool):
            return row.type == ("true" if value else "false")
        if isinstance(value, int | float):
            return and_(row.type.in_(self.NUMBER), self._same(row, value))
        if isinstance(value, str):
            return and_(row.type.in_(self.STRING), self._same(row, value))
        kind = "array" if isinstance(value, list) else "object"
        return and_(row.type == kind, self._same(row, value))

    def _any_of(self, row: JsonRow, values: list[Any]) -> Clause:
        texts = [self.canonical(v) for v in values]
        return per_engine(
            sqlite=row.value.in_(values),
            postgresql=row.value == any_(sql_cast(literal(texts, ARRAY(Text)), ARRAY(JSONB))),
        )

    def in_(self, row: JsonRow, values: list[Any]) -> Clause:
        """Any of scalar `values`: one IN per JSON type (an OR per value would nest as deep
        as the list is long, and SQLite refuses expression trees deeper than 1,000)."""
        bools = {v for v in values if isinstance(v, bool)}
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        texts = [v for v in values if isinstance(v, str)]
        parts: list[Clause] = []
        if bools:
            parts.append(row.type.in_(["true" if b else "false" for b in sorted(bools)]))
        if numbers:
            parts.append(and_(row.type.in_(self.NUMBER), self._any_of(row, numbers)))
        if texts:
            parts.append(and_(row.type.in_(self.STRING), self._any_of(row, texts)))
        return or_(false(), *parts)

    def compare(self, row: JsonRow, op: str, value: Any) -> Clause:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return false()
        if isinstance(value, str):
            pg = OPS[op](_pg_text(row.value), value)
            types: tuple[str, ...] = self.STRING
        else:
            pg = OPS[op](row.value, _pg_json(value))
            types = self.NUMBER
        return and_(
            row.type.in_(types), per_engine(sqlite=OPS[op](row.value, value), postgresql=pg)
        )

    def regex(self, row: JsonRow, pattern: str) -> Clause:
        from brainlife.server.query.regex import regex_match

        text = per_engine(sqlite=row.value, postgresql=row.value.op("#>>")(literal_column("'{}'")))
        return case((row.type == "text", regex_match(text, pattern)), else_=false())


JSON = _Json()
