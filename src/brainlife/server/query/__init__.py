"""brainlife's list parameters (`find`, `sort`, `select`, `skip`, `limit`) translated to SQL.

The compiler lives in `find`; this package re-exports the names the routes, services and
specs use.
"""

from __future__ import annotations

from typing import Any

from brainlife.server.query.find import (
    NOMATCH,
    Assoc,
    Collection,
    Kind,
    ListParams,
    Projection,
    ScalarTarget,
    SubDocs,
    cast,
    compile_find,
    order_by,
    page,
    parse_find,
    parse_limit_skip,
    parse_list_params,
    parse_select,
    parse_sort,
)

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
