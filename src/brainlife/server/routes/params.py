"""The query parameters of brainlife's routes, declared for /api/openapi.json.

The list routes read `find`, `sort`, `select`, … from the raw query string (`query.parse_*`
knows brainlife's spellings: JSON or mongoose strings), so FastAPI would declare none of them and
schema-driven clients and fuzzers would never send them. These declarations (`openapi_extra`)
give each its name and shape; they change nothing in how a request is read. `list_params` is how
every list route reads them, so the names declared here and the names read are one list.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from brainlife.server.query import ListParams, parse_list_params


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _json_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


FIND = _json_param(
    "find",
    'A MongoDB-style filter as JSON, e.g. {"name": {"$regex": "^hcp"}}.',
    {"type": "object"},
)
SORT = _param("sort", 'Mongoose "-create_date name", or JSON {"create_date": -1}.')
SELECT = _param("select", 'Fields to keep ("name desc") or drop ("-files"), or JSON {"name": 1}.')
SKIP = _param("skip", "Rows to skip.", {"type": "integer", "minimum": 0})
LIMIT = _param(
    "limit", "Rows to return (0: the route's default).", {"type": "integer", "minimum": 0}
)
POPULATE = _param("populate", 'Ids to replace by their documents: "datatype project", or JSON.')
SINGLE = _param(
    "single", "Answer the first document alone (or an empty body).", {"type": "boolean"}
)
DATATYPE_TAGS = {
    **_param(
        "datatype_tags",
        "Datatype tags the objects must have (!tag: must not have); repeatable.",
        {"type": "array", "items": {"type": "string"}},
    ),
    "explode": True,
}
AT = _param("at", "A token, for download links (instead of an Authorization header).")


def list_params(request: Request, *, default_sort: str | None = None) -> ListParams:
    """The list parameters (`LIST`) of a request, parsed."""
    q = request.query_params
    return parse_list_params(
        find=q.get("find"),
        sort=q.get("sort"),
        select=q.get("select"),
        skip=q.get("skip"),
        limit=q.get("limit"),
        default_sort=default_sort,
    )


#: `openapi_extra` of the list routes
LIST = {"parameters": [FIND, SORT, SELECT, SKIP, LIMIT]}
DATASET_LIST = {"parameters": [FIND, SORT, SELECT, SKIP, LIMIT, POPULATE, SINGLE, DATATYPE_TAGS]}
RELEASE_DATASETS = {"parameters": [FIND, SORT, SELECT, SKIP, LIMIT, POPULATE]}
#: `openapi_extra` of the download routes (the token may come as `?at=`)
DOWNLOAD = {"parameters": [AT]}


def _body(schema: dict[str, Any], *, form: bool = False, required: bool = True) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"requestBody": {"required": required, "content": content}}


#: `openapi_extra` of the routes that read their body themselves (`routes.auth._body`)
LOGIN = _body(
    {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "description": "A username or an e-mail address."},
            "password": {"type": "string"},
            "ttl": {"type": "number", "description": "Token lifetime in milliseconds."},
        },
    },
    form=True,
)
REFRESH = _body(
    {
        "type": "object",
        "properties": {
            "ttl": {"type": "number"},
            "scopes": {"type": "object"},
            "gids": {"type": "array", "items": {"type": "integer"}},
            "clearProfile": {"type": "boolean"},
        },
    },
    required=False,
)
MANIFESTS = _body(
    {
        "type": "object",
        "required": ["ids"],
        "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
    }
)

_PEOPLE = {"type": "array", "items": {"type": "string"}, "description": "User ids (subs)."}
_RELEASE_SET = {
    "type": "object",
    "properties": {
        "datatype": {"type": "string", "description": "A datatype id or name (or {_id})."},
        "datatype_tags": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "subjects": {"type": "array", "items": {"type": "string"}},
        "sessions": {"type": "array", "items": {"type": "string"}},
        "runs": {"type": "array", "items": {"type": "string"}},
        "ids": {"type": "array", "items": {"type": "string"}},
    },
}
_RELEASE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "sets"],
    "properties": {
        "name": {"type": "string"},
        "desc": {"type": "string"},
        "sets": {"type": "array", "items": _RELEASE_SET},
    },
}
_PUB_FIELDS = {
    "name": {"type": "string"},
    "desc": {"type": "string"},
    "license": {"type": "string"},
    "doi": {"type": "string"},
    "readme": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "authors": _PEOPLE,
    "contributors": _PEOPLE,
    "releases": {"type": "array", "items": _RELEASE},
}
#: `openapi_extra` of the publishing routes (`routes.publishing`)
PUB_CREATE = _body(
    {
        "type": "object",
        "required": ["project", "name"],
        "properties": {"project": {"type": "string"}, **_PUB_FIELDS},
    }
)
PUB_UPDATE = _body(
    {"type": "object", "properties": {**_PUB_FIELDS, "removed": {"type": "boolean"}}}
)
PUB_RELEASE = {
    **_body({**_RELEASE, "properties": {**_RELEASE["properties"], "dry_run": {"type": "boolean"}}}),
}
#: `openapi_extra` of the selection tar (`routes.DATASET_TAR`): GET's parameters, POST's body
IDS = _param("ids", "Data object ids, comma-separated or repeated.")
SELECTION_QUERY = {"parameters": [IDS, FIND, AT]}
SELECTION = _body(
    {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {"type": "string"}},
            "find": {"type": "object"},
        },
    }
)
#: POST /warehouse/app: an App document (checked field by field by `services.apps`)
APP = _body(
    {
        "type": "object",
        "required": ["name", "github"],
        "properties": {
            "name": {"type": "string"},
            "github": {"type": "string"},
            "desc": {"type": "string"},
            "doi": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "config": {"type": "object"},
            "projects": {"type": "array", "items": {"type": "string"}},
        },
    }
)
#: POST /warehouse/dataset/downscript: what the official `bl bids download` sends
DOWNSCRIPT = _body(
    {
        "type": "object",
        "properties": {
            "find": {"type": "object"},
            "limit": {"type": "integer"},
            "skip": {"type": "integer"},
        },
    }
)
