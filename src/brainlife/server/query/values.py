"""Find values: cast to a field's type as mongoose does, comparisons. (`$regex`: `regex`.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement

from brainlife.server.errors import BadRequest
from brainlife.wire import parse_date

Clause = ColumnElement[bool]
#: a column or mapped attribute (`Dataset.meta`): anything usable in a SQL expression
SqlExpr = Any


class Kind(Enum):
    STR = "string"
    OID = "ObjectId"
    INT = "number"
    BOOL = "boolean"
    DATE = "date"


class _NoMatch:
    """A value that cannot equal anything in a field (e.g. "abc" for an ObjectId)."""


NOMATCH = _NoMatch()
_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")


def cast(kind: Kind, value: Any, name: str) -> Any:
    """Cast a find value to a field's type as mongoose does; NOMATCH if it can match nothing."""
    if kind is Kind.OID:
        if isinstance(value, dict) and set(value) == {"$oid"}:
            value = value["$oid"]
        return value.lower() if isinstance(value, str) and _HEX24.match(value) else NOMATCH
    if isinstance(value, dict | list):
        return NOMATCH
    if kind is Kind.STR:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if kind is Kind.INT:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise BadRequest(f"find: {name} is a number; {value!r} is not one") from None
        return int(number) if number.is_integer() else number
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise BadRequest(f"find: {name} is true or false; {value!r} is neither")
    if kind is Kind.DATE:
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value / 1000, tz=UTC)
            if isinstance(value, dict) and set(value) == {"$date"}:
                return cast(kind, value["$date"], name)
            return parse_date(str(value))
        except (ValueError, OverflowError, OSError):
            raise BadRequest(f"find: {name} is a date; {value!r} is not an ISO date") from None
    raise AssertionError(kind)  # pragma: no cover


#: the comparison operators, on SQL expressions
OPS: dict[str, Callable[[Any, Any], Clause]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
