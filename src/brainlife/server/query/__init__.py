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

Modules: `params` (parsing the raw parameters, `ListParams`, `Projection`), `limits` (the
documented bounds every parameter is checked against first), `values` (casting find values),
`regex` (`$regex` on RE2), `jsonpath` (the SQLite JSON SQL), `targets` (how each operator tests a
column, an array or a JSON path), `fields` (`Collection` specs and key resolution), `find`
(the compiler, ORDER BY and paging). The per-collection specs are in `brainlife.server.specs`.
"""

from __future__ import annotations

from typing import Any

from brainlife.server.query.fields import Assoc, Collection, SubDocs
from brainlife.server.query.find import compile_find, order_by, page
from brainlife.server.query.params import (
    ListParams,
    Projection,
    parse_find,
    parse_limit_skip,
    parse_list_params,
    parse_select,
    parse_sort,
)
from brainlife.server.query.targets import ScalarTarget
from brainlife.server.query.values import NOMATCH, Kind, cast

__all__ = [
    "NOMATCH",
    "Assoc",
    "Collection",
    "Kind",
    "ListParams",
    "Projection",
    "ScalarTarget",
    "SubDocs",
    "cast",
    "compile_find",
    "order_by",
    "page",
    "parse_find",
    "parse_limit_skip",
    "parse_list_params",
    "parse_select",
    "parse_sort",
]


def __getattr__(name: str) -> Any:
    """The collection specs (`PROJECTS`, `DATASETS`, … `PROFILES`) live in `specs`, which
    imports this package; they are re-exported here lazily."""
    if name.isupper():
        from brainlife.server import specs

        if hasattr(specs, name):
            return getattr(specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
