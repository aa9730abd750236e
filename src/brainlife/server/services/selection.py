"""Many data objects as one tar (`routes.DATASET_TAR`, and the web pages' "download selected" and
"download all"): one request instead of one per object, resumable like a single object's tar.

The tar holds each object's files under `<object id>/`, objects in id order, files in their
object's tar order. Like a single object's tar (`tarstream`), it is a pure function of the
manifests: headers carry one mtime (the newest object's create date), so the same set answers the
same bytes and the same ETag on every request, and `Range`/`If-Range` resume it.

Access is the single download's (`downloads.manifests_batch`: `browsable_datasets`, in SQL). An
id that is unknown, not readable or not stored fails the whole request with the reason (a tar
silently missing an object would look complete); a filtered list takes only stored objects. At
most `DATASET_TAR_MAX_OBJECTS` objects: the layout is built in memory before the first byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brainlife.server.errors import BadRequest, Forbidden, NotFound
from brainlife.server.models import Dataset
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams
from brainlife.server.services import datasets, downloads
from brainlife.server.tarstream import (
    NamedTar,
    TarLayout,
    TarMember,
    epoch_seconds,
)
from brainlife.wire import DATASET_TAR_MAX_OBJECTS, is_object_id


@dataclass(frozen=True)
class SelectionTar(NamedTar):
    """Several data objects as one tar, and which (in id order)."""

    ids: list[str]


def parse_ids(values: Any) -> list[str]:
    """Ids from a JSON list or from query values (each may hold several, comma-separated), once
    each in the order given; bounded by `DATASET_TAR_MAX_OBJECTS`."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadRequest('"ids" must be a list of data object ids (strings).')
    ids: list[str] = []
    for value in values:
        ids += [part.strip().lower() for part in value.split(",") if part.strip()]
    unique = list(dict.fromkeys(ids))
    if len(unique) > DATASET_TAR_MAX_OBJECTS:
        raise BadRequest(
            f"Too many data objects: {len(unique)}; one tar holds at most "
            f"{DATASET_TAR_MAX_OBJECTS} (use 'bl data download' for more)."
        )
    bad = [i for i in unique if not is_object_id(i)]
    if bad:
        raise BadRequest(f"Not a data object id: {bad[0][:40]!r}.")
    return unique


def ids_of_find(
    *, session: Session, principal: Principal | None, find: dict[str, Any]
) -> list[str]:
    """The ids of the stored objects matching `find` that the caller may read (in id order);
    a `BadRequest` naming the count when there are more than `DATASET_TAR_MAX_OBJECTS`."""
    find = {"$and": [find, {"status": "stored"}]}
    params = ListParams(find=find, limit=DATASET_TAR_MAX_OBJECTS + 1)
    page = datasets.list_datasets(session=session, principal=principal, params=params, count=False)
    if len(page.rows) > DATASET_TAR_MAX_OBJECTS:
        raise BadRequest(
            f"More than {DATASET_TAR_MAX_OBJECTS} data objects match; narrow the filters or use "
            "'bl data download' with the same filters."
        )
    return [row.id for row in page.rows]


def open_selection(
    *, session: Session, principal: Principal | None, ids: list[str], name: str = "selection"
) -> SelectionTar:
    """Check every id (`downloads.manifests_batch`) and lay the tar out."""
    if not ids:
        raise BadRequest(
            "No data objects selected: give at least one id (or a filter matching one)."
        )
    ids = sorted(ids)
    batch = downloads.manifests_batch(session=session, principal=principal, ids=ids)
    if batch.missing:
        first = batch.missing[0]
        more = f" (and {len(batch.missing) - 1} more)" if len(batch.missing) > 1 else ""
        message = f"Data object {first.id}: {first.message}{more}."
        if first.reason == "not-found":
            raise NotFound(message)
        if first.reason == "forbidden":
            raise Forbidden(message)
        raise BadRequest(message)
    newest = session.scalar(select(func.max(Dataset.create_date)).where(Dataset.id.in_(ids)))
    members = [
        TarMember(f"{obj.dataset_id}/{m.path}", m.size, m.sha256, m.mode)
        for obj in batch.found
        for m in obj.members
    ]
    return SelectionTar(TarLayout(members, epoch_seconds(newest)), name, ids)
