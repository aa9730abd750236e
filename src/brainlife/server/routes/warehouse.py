"""Routes under the /api/warehouse prefix: the listing routes and /health.

Thin: parse the brainlife list parameters, call a service, render the documents. The download
routes (`/dataset/download`, `/dataset/manifest`, `/dataset/file`) live in `downloads.py`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request, Response

from brainlife.server import documents
from brainlife.server.deps import MaybeUser, ObjectReader, ReadSession, SessionDep
from brainlife.server.gate import QuerySlot
from brainlife.server.onecall import OneCallRoute
from brainlife.server.responses import JSONDocument
from brainlife.server.routes import params
from brainlife.server.routes.params import list_params
from brainlife.server.services import datasets, datatypes, projects, pubs
from brainlife.wire import routes
from brainlife.wire.routes import Route

router = APIRouter(route_class=OneCallRoute)


def _dataset_docs(request: Request, session: SessionDep, rows: Any, params: Any) -> list[Any]:
    """Data-object documents with `select` applied, then `populate` (ids of what `select` kept
    become documents)."""
    docs = datasets.dataset_documents(session, rows)
    if params.select:
        docs = [params.select.apply(d) for d in docs]
    datasets.populate(session, docs, datasets.populate_fields(request.query_params.get("populate")))
    return docs


@router.get(routes.HEALTH.path)
def health() -> dict[str, Any]:
    return documents.health_doc()


@router.get(routes.PROJECTS.path, openapi_extra=params.LIST)
def list_projects(
    _slot: QuerySlot, request: Request, session: ReadSession, user: MaybeUser
) -> dict[str, Any]:
    params = list_params(request)
    page = projects.list_projects(session=session, principal=user, params=params)
    return documents.listing("projects", page, documents.project_doc, params.select)


@router.get(routes.DATASETS.path, response_model=None, openapi_extra=params.DATASET_LIST)
def list_datasets(
    _slot: QuerySlot, request: Request, session: ReadSession, user: ObjectReader
) -> Any:
    q = request.query_params
    params = list_params(request)
    single = (q.get("single") or "").lower() in ("1", "true", "yes")
    tags = q.getlist("datatype_tags") + q.getlist("datatype_tags[]")
    page = datasets.list_datasets(
        session=session, principal=user, params=params, datatype_tags=tags
    )
    docs = _dataset_docs(request, session, page.rows, params)
    if single:
        if not docs:
            return Response(status_code=200, media_type="application/json")
        return docs[0]
    # the documents are plain JSON values already: skip FastAPI's jsonable_encoder walk
    # (about 3 ms for a 100-row page)
    return JSONDocument(documents.page("datasets", docs, count=page.count, size=page.size))


@router.get(routes.RELEASE_DATASETS.path, openapi_extra=params.RELEASE_DATASETS)
def list_release_datasets(
    _slot: QuerySlot, release_id: str, request: Request, session: ReadSession, _user: MaybeUser
) -> dict[str, Any]:
    params = list_params(request)
    page = pubs.list_release_datasets(session=session, release_id=release_id, params=params)
    docs = _dataset_docs(request, session, page.rows, params)
    return documents.page("datasets", docs, count=page.count)


def _public_listing(route: Route, key: str, service: ModuleType, to_doc: Any) -> None:
    """A list route anyone may read (datatypes, publications): parse, list with the service's
    `list_<key>` (looked up per request, like every route's service call), render."""

    def listing(
        _slot: QuerySlot, request: Request, session: ReadSession, _user: MaybeUser
    ) -> dict[str, Any]:
        params = list_params(request)
        page = getattr(service, f"list_{key}")(session=session, params=params)
        return documents.listing(key, page, to_doc, params.select)

    listing.__name__ = listing.__qualname__ = f"list_{key}"  # the OpenAPI operation's name
    router.get(route.path, openapi_extra=params.LIST)(listing)


_public_listing(routes.DATATYPES, "datatypes", datatypes, documents.datatype_doc)
_public_listing(routes.PUBS, "pubs", pubs, documents.pub_doc)
