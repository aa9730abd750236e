"""Which data objects are released, and the rule that keeps them as they were released.

A data object is *released* when it belongs to at least one release of a publication (a
`dataset_publications` row: brainlife's `dataset.publications` is non-empty). That holds for
ever: nothing in the archive removes such a row, whether the release or its publication is
later marked `removed` (brainlife keeps a published object's bytes for ever too:
`remove_datasets.js` frees only objects with empty `publications`, brainlife-server.md §1.4).

The rule for every write path (curation, deletion, anything that changes what a download of
the object gives or whether it is listed): **a released object cannot be changed or removed**.
Use

- `dataset_is_released(session, dataset_id)` for one object,
- `released_among(session, ids)` for many (one query),
- `refuse_released(session, ids, action)` to raise the `Conflict` (409) with a message naming
  the objects and the releases that hold them,
- `released_clause()` inside a bulk statement (`UPDATE … WHERE NOT released_clause()`), so the
  rule is enforced in the same statement as the change, with no window between check and write.

A change checked with the first three must hold `lock_project_objects(session, project_id)`
from before the check until it commits, as a release does while it freezes: otherwise a release
committed between the check and the write freezes the object, and the write still lands (a
release and removals sent at once left released objects removed).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from brainlife.server.db import lock_writes
from brainlife.server.errors import Conflict
from brainlife.server.models import Dataset, DatasetPublication, Publication, Release


def released_clause() -> ColumnElement[bool]:
    """SQL: the `Dataset` row of the enclosing query is in at least one release."""
    return exists().where(DatasetPublication.dataset_id == Dataset.id)


def dataset_is_released(session: Session, dataset_id: str) -> bool:
    """Whether the data object belongs to a release (and so may no longer change)."""
    found = session.scalar(
        select(DatasetPublication.release_id).where(DatasetPublication.dataset_id == dataset_id)
    )
    return found is not None


def released_among(session: Session, ids: Iterable[str]) -> dict[str, list[str]]:
    """`{dataset id: [release ids]}` for those of `ids` that are released (one query)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(DatasetPublication.dataset_id, DatasetPublication.release_id)
        .where(DatasetPublication.dataset_id.in_(wanted))
        .order_by(DatasetPublication.dataset_id, DatasetPublication.pos)
    )
    out: dict[str, list[str]] = {}
    for dataset_id, release_id in rows:
        out.setdefault(dataset_id, []).append(release_id)
    return out


def refuse_released(session: Session, ids: Iterable[str], action: str = "changed") -> None:
    """Raise `Conflict` if any of `ids` is released, naming (up to 5 of) them and the release
    that holds each: "data object X is in release 2 of publication 'O3D' (<pub id>)"."""
    released = released_among(session, ids)
    if not released:
        return
    first = {dataset: releases[0] for dataset, releases in released.items()}
    rows = session.execute(
        select(Release.id, Release.name, Publication.name, Publication.id)
        .join(Publication, Publication.id == Release.pub_id)
        .where(Release.id.in_(set(first.values())))
    )
    names = {r[0]: (r[1], r[2], r[3]) for r in rows}
    parts = []
    for dataset, release in sorted(first.items())[:5]:
        rname, pname, pid = names.get(release, (release, "?", "?"))
        parts.append(f"{dataset} is in release {rname!r} of publication {pname!r} ({pid})")
    more = f" (and {len(released) - 5} more)" if len(released) > 5 else ""
    raise Conflict(
        f"Released data objects cannot be {action}: {'; '.join(parts)}{more}. A release is "
        "frozen for good: its objects stay exactly as they were published."
    )


def lock_project_objects(session: Session, project_id: str) -> None:
    """Hold, until the session's transaction ends, the lock that a release of the project and
    every change of its objects take before they read what they decide on (`db.lock_writes`)."""
    lock_writes(session, f"objects of project {project_id}")
