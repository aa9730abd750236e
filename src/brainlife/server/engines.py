"""The one seam where SQL differs between the engines: `per_engine(sqlite=…, postgresql=…)`.

Queries are built once, without knowing the engine they will run on (the find compiler, the
field specs and the services build plain SQLAlchemy expressions); the few expressions that
must be written differently for SQLite and PostgreSQL (JSON paths and types, REGEXP, an
in-place JSON update) are built in both forms and wrapped in a `PerEngine` element, which the
statement compiler renders in the form of the engine it compiles for. Both forms are part of
the statement's cache key, so SQLAlchemy's compiled cache stays valid on either engine.

A form may also be an error: a `$regex` whose RE2 syntax has no faithful PostgreSQL
equivalent compiles on SQLite and is refused with a 400 (`BadRequest`) on PostgreSQL.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from brainlife.server.errors import BadRequest

ENGINES = ("sqlite", "postgresql")


class PerEngine(ColumnElement[Any]):
    """An expression written once per engine; `postgresql_error` refuses it there."""

    inherit_cache = True
    _traverse_internals: ClassVar[list[tuple[str, Any]]] = [  # type: ignore[misc]
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("postgresql_error", InternalTraversal.dp_string),
    ]

    def __init__(
        self,
        sqlite: ColumnElement[Any],
        postgresql: ColumnElement[Any],
        postgresql_error: str | None = None,
    ) -> None:
        self.sqlite = sqlite
        self.postgresql = postgresql
        self.postgresql_error = postgresql_error
        self.type = sqlite.type

    @property
    def _from_objects(self) -> list[Any]:
        return [*self.sqlite._from_objects, *self.postgresql._from_objects]


def per_engine(
    *,
    sqlite: ColumnElement[Any],
    postgresql: ColumnElement[Any],
    postgresql_error: str | None = None,
) -> ColumnElement[Any]:
    return PerEngine(sqlite, postgresql, postgresql_error)


@compiles(PerEngine)
def _sqlite_form(element: PerEngine, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.sqlite, **kw))


@compiles(PerEngine, "postgresql")
def _postgresql_form(element: PerEngine, compiler: Any, **kw: Any) -> str:
    if element.postgresql_error:
        raise BadRequest(element.postgresql_error)
    return str(compiler.process(element.postgresql, **kw))
