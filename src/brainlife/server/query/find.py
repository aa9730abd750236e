"""brainlife's list parameters (`find`, `sort`, `select`, `skip`, `limit`) translated to SQL.

`find` is a JSON Mongo filter. It is compiled into one SQLAlchemy boolean clause that runs inside
the database; rows are never loaded into Python to be filtered. Each collection has a
`Collection` spec that maps wire field names to SQL:

- `Scalar`: a real column (or a promoted expression such as `meta.subject` → `datasets.subject`)
  with a type used to cast values the way mongoose does (`"851"` → 851 for `_group_id`);
- `Assoc`: an array kept in an association table (tags, publications, project admins …):
  every test is `parent IN (SELECT fk … WHERE value …)` on an indexed table;
- `SubDocs`: an array of sub-documents kept in a child table (publication `releases`);
- JSON columns (`meta`, `prov`, `config`, and `extra` for every field we do not model) are
  searched with Mongo's path semantics: a path may cross arrays, and any element matches.

Negative operators (`$ne`, `$nin`, `$not`, `$nor`, `$exists: false`) are the negation of the
positive test, as in Mongo, so `{"tags": {"$ne": "a"}}` means "no tag is a".

The SQLite-specific JSON SQL lives in `_SqliteJson`; a PostgreSQL variant would replace it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from brainlife.server.errors import BadRequest
from brainlife.wire import DEFAULT_LIMIT, parse_date

Clause = ColumnElement[bool]
#: a column or mapped attribute (`Dataset.meta`): anything usable in a SQL expression
SqlExpr = Any

#: The largest `limit` accepted (besides 0, "everything").
MAX_LIMIT = 100_000


# ---------------------------------------------------------------------------------------------
# Parameters


class Kind(Enum):
    STR = "string"
    OID = "ObjectId"
    INT = "number"
    BOOL = "boolean"
    DATE = "date"


@dataclass(frozen=True)
class Projection:
    """A mongoose `select`: inclusion (`"name meta.subject"`) or exclusion (`"-config"`)."""

    include: bool
    paths: tuple[tuple[str, ...], ...]
    keep_id: bool = True

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.include:
            out = _include(doc, _tree(self.paths))
            if self.keep_id and "_id" in doc:
                out = {"_id": doc["_id"], **out}
            return out
        out = dict(doc)
        for path in self.paths:
            _exclude(out, path)
        if not self.keep_id:
            out.pop("_id", None)
        return out


@dataclass(frozen=True)
class ListParams:
    find: dict[str, Any] = field(default_factory=dict)
    sort: tuple[tuple[str, int], ...] = ()
    select: Projection | None = None
    skip: int = 0
    #: None means "no limit" (`limit=0`)
    limit: int | None = DEFAULT_LIMIT


def parse_list_params(
    *,
    find: str | None = None,
    sort: str | None = None,
    select: str | None = None,
    skip: str | None = None,
    limit: str | None = None,
    default_sort: str | None = None,
) -> ListParams:
    """Parse the raw query-string values of a brainlife list route."""
    lim, skp = parse_limit_skip(limit, skip)
    return ListParams(
        find=parse_find(find),
        sort=parse_sort(sort if sort not in (None, "") else default_sort),
        select=parse_select(select),
        skip=skp,
        limit=lim or None,
    )


def parse_int(name: str, text: str | None, default: int) -> int:
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative, not {value}")
    return value


def parse_find(text: str | None) -> dict[str, Any]:
    if text is None or text.strip() in ("", "null"):
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"find is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"find must be a JSON object, not {type(value).__name__}")
    return value


def parse_sort(text: str | None) -> tuple[tuple[str, int], ...]:
    """`{"name": 1}` / `{"create_date": -1}` (JSON) or mongoose's `"-create_date name"`."""
    if text is None or not text.strip():
        return ()
    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"sort is not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise BadRequest("sort must be a JSON object or a list of field names")
        return tuple((str(k), _direction(k, v)) for k, v in spec.items())
    out = []
    for word in text.split():
        if word.startswith("-"):
            out.append((word[1:], -1))
        else:
            out.append((word.lstrip("+"), 1))
    if any(not name for name, _ in out):
        raise BadRequest(f"sort has an empty field name: {text!r}")
    return tuple(out)


def _direction(name: str, value: Any) -> int:
    if value in (1, -1) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("asc", "ascending", "1"):
        return 1
    if isinstance(value, str) and value.lower() in ("desc", "descending", "-1"):
        return -1
    raise BadRequest(f"sort direction of {name!r} must be 1 or -1, not {value!r}")


def parse_select(text: str | None) -> Projection | None:
    """A mongoose select string (`"name -_id"`), or a JSON object `{"name": 1}`."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    items: list[tuple[str, bool]] = []
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"select is not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise BadRequest("select must be a JSON object or a list of field names")
        items = [(str(k), bool(v)) for k, v in spec.items()]
    else:
        for word in text.replace(",", " ").split():
            if word.startswith("+"):
                continue  # "+field": un-hide a hidden field; nothing is hidden here
            items.append((word[1:], False) if word.startswith("-") else (word, True))
    keep_id = True
    paths_in, paths_out = [], []
    for name, inc in items:
        if not name or any(not part for part in name.split(".")):
            raise BadRequest(f"select has an invalid field name: {name!r}")
        if name == "_id":
            keep_id = inc
        elif inc:
            paths_in.append(tuple(name.split(".")))
        else:
            paths_out.append(tuple(name.split(".")))
    if paths_in and paths_out:
        raise BadRequest("select cannot mix included and excluded fields (except -_id)")
    if paths_in:
        return Projection(include=True, paths=tuple(paths_in), keep_id=keep_id)
    if paths_out or not keep_id:
        return Projection(include=False, paths=tuple(paths_out), keep_id=keep_id)
    return Projection(include=True, paths=(), keep_id=True)


def _tree(paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if child is True:
                break
            node = node.setdefault(part, {})
        else:
            node[path[-1]] = True
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_include(v, tree) for v in value if isinstance(v, dict | list)]
    out = {}
    for key, sub in tree.items():
        if key not in value:
            continue
        if sub is True:
            out[key] = value[key]
        elif isinstance(value[key], dict | list):
            out[key] = _include(value[key], sub)
    return out


def _exclude(value: Any, path: tuple[str, ...]) -> None:
    if isinstance(value, list):
        for v in value:
            _exclude(v, path)
    elif isinstance(value, dict) and path[0] in value:
        if len(path) == 1:
            del value[path[0]]
        else:
            value[path[0]] = child = _copy(value[path[0]])
            _exclude(child, path[1:])


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Values


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


def regex_pattern(pattern: Any, options: Any) -> str:
    """A Mongo `$regex` + `$options` as a Python pattern with inline flags (`g` is ignored)."""
    if not isinstance(pattern, str):
        raise BadRequest(f"find: $regex needs a string, not {pattern!r}")
    if options is None:
        options = ""
    if not isinstance(options, str):
        raise BadRequest(f"find: $options needs a string, not {options!r}")
    flags = ""
    for letter in options:
        if letter in "imsx":
            flags += letter if letter not in flags else ""
        elif letter != "g":
            raise BadRequest(f"find: unknown $options flag {letter!r} (allowed: i, m, s, x)")
    full = f"(?{flags}){pattern}" if flags else pattern
    try:
        re.compile(full)
    except re.error as exc:
        raise BadRequest(f"find: invalid $regex {pattern!r}: {exc}") from None
    return full


# ---------------------------------------------------------------------------------------------
# JSON SQL (SQLite). Everything dialect-specific about JSON is in this class.


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

    def compare(self, row: JsonRow, op: str, value: Any) -> Clause:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return false()
        types = self.STRING if isinstance(value, str) else self.NUMBER
        return and_(row.type.in_(types), _OPS[op](row.value, value))

    def regex(self, row: JsonRow, pattern: str) -> Clause:
        return case((row.type == "text", row.value.regexp_match(pattern)), else_=false())


JSON = _SqliteJson()

_OPS: dict[str, Callable[[Any, Any], Clause]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


# ---------------------------------------------------------------------------------------------
# Field specs and targets: what a find key refers to, and how each operator tests it


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
        return false() if v is NOMATCH else self._known(_OPS[op](self.expr, v))

    def regex(self, pattern: str) -> Clause:
        if self.kind is not Kind.STR:
            return false()
        return self._known(self.expr.regexp_match(pattern))

    def exists(self) -> Clause:
        return self.expr.is_not(None)


@dataclass
class AnyOf(Target):
    """An array field whose elements are tested by `element` inside `wrap` (an EXISTS)."""

    element: ScalarTarget
    wrap: Callable[[Clause], Clause]
    count: Callable[[], ColumnElement[Any]]
    name: str = ""

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
        return self._exists(Compiler(self.spec).document(query))

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

    def _at(self, terminal: Callable[[ColumnElement[Any], str], Clause]) -> Clause:
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
        terminal: Callable[[ColumnElement[Any], str], Clause],
    ) -> Clause:
        if not groups:  # the whole document
            return terminal(doc, "$")
        path = JSON.path(groups[0])
        if len(groups) == 1:
            return terminal(doc, path)
        row = JSON.elements_of(doc, path)
        inner = self._walk(row.c.value, groups[1:], terminal)
        return exists(select(literal(1)).select_from(row).where(row.c.type == "object", inner))

    def _values(self, test: Callable[[JsonRow], Clause]) -> Clause:
        def terminal(doc: ColumnElement[Any], path: str) -> Clause:
            row = JSON.each(doc, path)
            cond = and_(not_(JSON.is_member(row)), test(JsonRow(row.c.value, row.c.type)))
            return exists(select(literal(1)).select_from(row).where(cond))

        return self._at(terminal)

    def eq(self, value: Any) -> Clause:
        if value is None:
            return or_(not_(self.exists()), self._values(lambda r: JSON.eq(r, None)))
        if isinstance(value, list | dict):
            whole = self._at(
                lambda d, p: and_(
                    JSON.type_at(d, p).is_not(None), JSON.text_at(d, p) == JSON.canonical(value)
                )
            )
            return or_(whole, self._values(lambda r: JSON.eq(r, value)))
        return self._values(lambda r: JSON.eq(r, value))

    def in_(self, values: list[Any]) -> Clause:
        scalars = [v for v in values if not isinstance(v, list | dict) and v is not None]
        parts = [self.eq(v) for v in values if isinstance(v, list | dict) or v is None]
        if scalars:
            parts.append(self._values(lambda r: or_(*(JSON.eq(r, v) for v in scalars))))
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

        def terminal(doc: ColumnElement[Any], path: str) -> Clause:
            row = JSON.each(doc, path)
            if operators:
                cond = compiler.operators(JsonValueTarget(JsonRow(row.c.value, row.c.type)), query)
            else:
                cond = and_(
                    row.c.type == "object", Compiler(json_document(row.c.value)).document(query)
                )
            cond = and_(JSON.is_element(row), cond)
            return exists(select(literal(1)).select_from(row).where(cond))

        return self._at(terminal)


# ---------------------------------------------------------------------------------------------
# Collections


@dataclass(frozen=True)
class Assoc:
    """An array of strings kept in an association table: `value` is the element column, `fk`
    points at the parent's `parent` key, `where` narrows the table (e.g. one project role).

    Tests compile to `parent IN (SELECT fk FROM table WHERE value …)`: the planner may then
    drive the query from the association table's index (a release's 10,000 objects among a
    million) or probe a set built once, which beats a correlated EXISTS per row over many
    rows. A caller whose find already narrows the rows through an index asks for the
    correlated EXISTS instead (`compile_find(correlate=…)`, `Collection.resolve`)."""

    value: SqlExpr
    fk: SqlExpr
    parent: SqlExpr
    where: Callable[[], Clause] | None = None
    kind: Kind = Kind.STR


@dataclass(frozen=True)
class SubDocs:
    spec: Callable[[], Collection]
    link: Callable[[], Clause]


FieldSpec = ScalarTarget | Assoc | SubDocs | ColumnElement[Any]


@dataclass(frozen=True)
class Collection:
    """How a collection's wire fields map to SQL.

    `fields` values: a `ScalarTarget` template (column + kind), an `Assoc`, a `SubDocs`, or a
    JSON column (sub-paths allowed). Keys may be dotted (`meta.subject`) to promote a path.
    Anything else falls into the `extra` JSON column.
    """

    name: str
    fields: Mapping[str, Any]
    extra: SqlExpr | None = None

    def resolve(self, key: str, *, correlated: bool = False) -> tuple[Target, bool]:
        """The target of a find/sort key, and whether the key is a known field.

        `correlated`: an `Assoc` key is tested with a correlated `EXISTS (… WHERE fk = parent
        AND …)` (a primary-key probe per row) instead of `parent IN (SELECT fk …)`. That is
        cheaper when other, indexed tests already narrow the rows (and the page can stop
        early in `_id` order), where the IN form would first build the set of every parent
        having the value."""
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
                return ScalarTarget(literal(None), Kind.STR, key), False
            return JsonTarget(self.extra, parts, key), False
        if isinstance(spec, ScalarTarget):
            if rest:  # a scalar has no sub-fields: matches like a missing field
                return JsonTarget(literal(None), rest, key), False
            return ScalarTarget(spec.expr, spec.kind, key), True
        if isinstance(spec, Assoc):
            element = ScalarTarget(spec.value, spec.kind, key)

            def wrap(clause: Clause, a: Assoc = spec) -> Clause:
                narrow = [a.where()] if a.where else []
                if correlated:
                    return exists(select(literal(1)).where(a.fk == a.parent, *narrow, clause))
                return a.parent.in_(select(a.fk).where(*narrow, clause))

            def count(a: Assoc = spec) -> ColumnElement[Any]:
                narrow = [a.where()] if a.where else []
                return select(func.count()).where(a.fk == a.parent, *narrow).scalar_subquery()

            if rest:
                return JsonTarget(literal(None), rest, key), False
            return AnyOf(element, wrap, count, key), True
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


# ---------------------------------------------------------------------------------------------
# The compiler


_LOGICAL = ("$and", "$or", "$nor")
_IGNORED_TOP = ("$comment",)


class Compiler:
    def __init__(self, spec: Collection, correlate: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        #: keys whose `Assoc` tests compile to correlated EXISTS (`Collection.resolve`)
        self.correlate = correlate

    def document(self, query: Any) -> Clause:
        if not isinstance(query, dict):
            raise BadRequest(f"find: expected an object, got {json.dumps(query)}")
        clauses: list[Clause] = []
        for key, value in query.items():
            if key in _LOGICAL:
                if not isinstance(value, list) or not value:
                    raise BadRequest(f"find: {key} needs a non-empty list of objects")
                subs = [self.document(v) for v in value]
                if key == "$and":
                    clauses.append(and_(*subs))
                elif key == "$or":
                    clauses.append(or_(*subs))
                else:
                    clauses.append(not_(or_(*subs)))
            elif key in _IGNORED_TOP:
                continue
            elif key.startswith("$"):
                raise BadRequest(f"find: unknown or unsupported top-level operator {key}")
            else:
                clauses.append(self.field(key, value))
        return and_(true(), *clauses)

    def field(self, key: str, value: Any) -> Clause:
        target, _known = self.spec.resolve(key, correlated=key in self.correlate)
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
                clauses.append(not_(target.eq(arg)))
            elif op in ("$in", "$nin", "$all"):
                if not isinstance(arg, list):
                    raise BadRequest(f"find: {name}: {op} needs a list, not {json.dumps(arg)}")
                if op == "$in":
                    clauses.append(target.in_(arg))
                elif op == "$nin":
                    clauses.append(not_(target.in_(arg)))
                else:
                    clauses.append(
                        and_(*(self._all_item(target, v) for v in arg)) if arg else false()
                    )
            elif op == "$exists":
                clauses.append(target.exists() if _truthy(arg) else not_(target.exists()))
            elif op in _OPS:
                clauses.append(target.compare(op, arg))
            elif op == "$regex":
                clauses.append(target.regex(regex_pattern(arg, ops.get("$options"))))
            elif op == "$options":
                continue
            elif op == "$not":
                if isinstance(arg, dict) and arg and all(k.startswith("$") for k in arg):
                    clauses.append(not_(self.operators(target, arg)))
                elif isinstance(arg, str):  # a regex given directly
                    clauses.append(not_(target.regex(regex_pattern(arg, None))))
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
) -> Clause:
    """The SQL clause for a `find` document (parsed, or the raw JSON text of the parameter).

    `correlate`: array keys to test with correlated EXISTS (see `Collection.resolve`)."""
    if find is None or isinstance(find, str):
        find = parse_find(find)
    return Compiler(spec, correlate).document(find)


def parse_limit_skip(limit: str | None, skip: str | None) -> tuple[int, int]:
    """`(limit, skip)` from raw parameters; limit defaults to 100 and 0 means everything."""
    lim = parse_int("limit", limit, DEFAULT_LIMIT)
    if lim > MAX_LIMIT:
        raise BadRequest(f"limit must be at most {MAX_LIMIT} (or 0 for everything), not {lim}")
    return lim, parse_int("skip", skip, 0)


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
        out.append(expr.desc() if direction < 0 else expr.asc())
    if not has_id:
        out.append(id_column.asc())
    return out


def page(stmt: Select[Any], params: ListParams) -> Select[Any]:
    if params.skip:
        stmt = stmt.offset(params.skip)
    if params.limit is not None:
        stmt = stmt.limit(params.limit)
    return stmt
