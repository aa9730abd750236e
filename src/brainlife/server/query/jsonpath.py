"""The JSON SQL of SQLite: paths, `json_each` rows, typed comparisons of JSON values.

Everything dialect-specific about JSON is in `_SqliteJson`; a PostgreSQL variant would
replace it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, or_

from brainlife.server.query.values import OPS, Clause


@dataclass(frozen=True)
class JsonRow:
    """One candidate value inside a JSON document: its SQL value and its JSON type."""

    value: ColumnElement[Any]
    type: ColumnElement[Any]


class _SqliteJson:
    STRING = ("text",)
    NUMBER = ("integer", "real")

    @staticmethod
    def path(segments: list[str]) -> str:
        out = "$"
        for seg in segments:
            if seg.isdigit():
                out += f"[{seg}]"
            else:
                out += '."' + seg.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return out

    @staticmethod
    def each(doc: ColumnElement[Any], path: str | None = None) -> Any:
        fn = func.json_each(doc, path) if path else func.json_each(doc)
        return fn.table_valued("key", "value", "type")

    def elements_of(self, doc: ColumnElement[Any], path: str) -> Any:
        """The value at `path` as a list: its elements if an array, else the value alone."""
        text = doc.op("->")(path)
        wrapped = case(
            (func.json_type(doc, path) == "array", text), else_=literal("[") + text + "]"
        )
        return self.each(wrapped)

    @staticmethod
    def is_member(row: Any) -> Clause:
        """Rows of json_each over an object are its members (keys are text)."""
        return func.typeof(row.c.key) == "text"

    @staticmethod
    def is_element(row: Any) -> Clause:
        return func.typeof(row.c.key) == "integer"

    @staticmethod
    def type_at(doc: ColumnElement[Any], path: str) -> ColumnElement[Any]:
        return func.json_type(doc, path)

    @staticmethod
    def text_at(doc: ColumnElement[Any], path: str) -> ColumnElement[Any]:
        return doc.op("->")(path)

    @staticmethod
    def scalar_at(doc: ColumnElement[Any], path: str) -> ColumnElement[Any]:
        return func.json_extract(doc, path)

    @staticmethod
    def array_length(doc: ColumnElement[Any], path: str) -> ColumnElement[Any]:
        return func.json_array_length(doc, path)

    @staticmethod
    def canonical(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def eq(self, row: JsonRow, value: Any) -> Clause:
        if value is None:
            return row.type == "null"
        if isinstance(value, bool):
            return row.type == ("true" if value else "false")
        if isinstance(value, int | float):
            return and_(row.type.in_(self.NUMBER), row.value == value)
        if isinstance(value, str):
            return and_(row.type.in_(self.STRING), row.value == value)
        kind = "array" if isinstance(value, list) else "object"
        return and_(row.type == kind, row.value == self.canonical(value))

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
            parts.append(and_(row.type.in_(self.NUMBER), row.value.in_(numbers)))
        if texts:
            parts.append(and_(row.type.in_(self.STRING), row.value.in_(texts)))
        return or_(false(), *parts)

    def compare(self, row: JsonRow, op: str, value: Any) -> Clause:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return false()
        types = self.STRING if isinstance(value, str) else self.NUMBER
        return and_(row.type.in_(types), OPS[op](row.value, value))

    def regex(self, row: JsonRow, pattern: str) -> Clause:
        return case((row.type == "text", row.value.regexp_match(pattern)), else_=false())


JSON = _SqliteJson()
