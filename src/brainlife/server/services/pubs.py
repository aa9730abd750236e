"""Publications (`GET /api/warehouse/pub`) and a release's data objects
(`GET /api/warehouse/pub/datasets/:releaseid`). Both are public, as on brainlife.io."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, true
from sqlalchemy.orm import Session

from brainlife.server.models import Dataset, DatasetPublication, Publication
from brainlife.server.query import ListParams
from brainlife.server.services.datasets import DATASET_COLUMNS
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import DATASETS, PUBLICATIONS
from brainlife.wire import is_object_id


def list_pubs(*, session: Session, params: ListParams) -> Listing[Publication]:
    """Every publication matching `find`, removed ones included unless `find` excludes them."""
    return run_listing(session, Publication, PUBLICATIONS, true(), params)


def list_release_datasets(*, session: Session, release_id: str, params: ListParams) -> Listing[Any]:
    """Data objects of one release (`{$and: [find, {publications: releaseid}]}`), for anyone,
    as plain rows of `datasets.DATASET_COLUMNS` (what `datasets.dataset_documents` renders).

    Removed objects stay listed: a release keeps the objects it published.
    """
    release = release_id.lower() if is_object_id(release_id.lower()) else None
    in_release = exists().where(
        DatasetPublication.dataset_id == Dataset.id, DatasetPublication.release_id == release
    )
    return run_listing(
        session,
        Dataset,
        DATASETS,
        in_release,
        params,
        size_column=Dataset.size,
        columns=DATASET_COLUMNS,
    )
