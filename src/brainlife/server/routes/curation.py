"""Curation of data objects under /api/warehouse: `PUT /dataset/:id`, `DELETE /dataset/:id` and
our `GET /dataset/history/:id`. Thin: parse, call `services.curation`, render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import curation, datasets
from brainlife.wire import Document, routes

router = APIRouter(route_class=OneCallRoute)


@router.put(routes.DATASET.path)
def update_dataset(dataset_id: str, body: JsonBody, session: SessionDep, user: User) -> Document:
    """Replace desc, tags, datatype_tags and/or meta; `removed: false` restores (project
    admins), `removed: true` removes."""
    row = curation.update_dataset(session=session, principal=user, dataset_id=dataset_id, body=body)
    return documents.edited_dataset_doc(datasets.dataset_documents(session, [row])[0])


@router.delete(routes.DATASET.path)
def remove_dataset(dataset_id: str, session: SessionDep, user: User) -> Document:
    """brainlife's soft delete: `removed: true` (the bytes stay; a project admin can restore)."""
    count = curation.remove_dataset(session=session, principal=user, dataset_id=dataset_id)
    return documents.removed_doc(count)


@router.get(routes.DATASET_HISTORY.path)
def dataset_history(dataset_id: str, session: SessionDep, user: User) -> dict[str, Any]:
    """Who changed the object, when, and what (oldest first)."""
    rows = curation.history(session=session, principal=user, dataset_id=dataset_id)
    return documents.page("events", [documents.dataset_event_doc(r) for r in rows])
