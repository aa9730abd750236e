"""Data-object downloads: the tar (`GET /dataset/download/:id`), the manifest and single files.

Each request does its database work first (`open_*` functions return plain objects holding
everything the stream needs) so that no session is held while bytes flow.

Access (brainlife-server.md §2.3), checked in this order:

1. unknown id → 404 "couldn't find the dataset specified";
2. not readable (project not readable and not published; `access.browsable_datasets`, which
   for a token is `readable_datasets`: only the web pages call without one) → 403. Unknown and
   forbidden are told apart, as brainlife does: ids are 64 random bits, so existence cannot
   be enumerated, and a 403 tells a user to ask for access rather than to check the id;
3. removed (soft-deleted, `DELETE /dataset/:id`) and in no release → 410 (brainlife serves it
   still; a release keeps serving its objects, removed or not);
4. status other than `stored` → 409 naming the status (brainlife answers 500 here).

The batch manifest (`manifests_batch`) applies the same rules per id and reports each failing id
in `missing` with its reason, in two queries whatever the number of ids.
"""

from __future__ import annotations

import logging
import mimetypes
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from brainlife.server.access import browsable_datasets
from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from brainlife.server.models import Dataset, DatasetFile, DatasetPublication
from brainlife.server.principal import Principal
from brainlife.server.services.ingest import dataset_members
from brainlife.server.tarstream import (
    BlobSource,
    Chunk,
    NamedTar,
    TarLayout,
    TarMember,
    blob_chunks,
    epoch_seconds,
    tar_size,
)
from brainlife.wire import MANIFESTS_MAX_IDS, is_object_id

log = logging.getLogger("brainlife.server.downloads")

NOT_FOUND = "couldn't find the dataset specified"
FORBIDDEN = "you don't have access to the project that the dataset belongs"


# --- access ------------------------------------------------------------------------------------


def _not_stored(status: str | None) -> str:
    return (
        f"status is not stored: {status} (a data object can only be downloaded "
        "once the archive has stored it)"
    )


def _removed(dataset_id: str) -> str:
    return (
        f"The data object {dataset_id} was removed; a project admin can restore it "
        "(bl data update --restore)."
    )


def _published() -> Any:
    return exists().where(DatasetPublication.dataset_id == Dataset.id)


def _readable_dataset(session: Session, principal: Principal | None, dataset_id: str) -> Dataset:
    row = session.execute(
        select(
            Dataset, browsable_datasets(principal).label("readable"), _published().label("pub")
        ).where(Dataset.id == dataset_id)
    ).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    dataset, readable, published = row
    if not readable:
        raise Forbidden(FORBIDDEN)
    if dataset.removed and not published:  # a release keeps serving its objects
        raise Gone(_removed(dataset.id))
    if dataset.status != "stored":
        raise Conflict(_not_stored(dataset.status))
    return dataset


def download_refusal(dataset: Dataset) -> str:
    """Why a readable data object cannot be downloaded (rules 3 and 4: the message its
    download would answer), or "" when it can: for a page, to not offer what would fail."""
    if dataset.removed and not dataset.publications:
        return _removed(dataset.id)
    if dataset.status != "stored":
        return _not_stored(dataset.status)
    return ""


# --- the tar -----------------------------------------------------------------------------------


class TarDownload(NamedTar):
    """A data object's tar, saved as `<id>.tar`."""

    @property
    def dataset_id(self) -> str:
        return self.name


def open_dataset_download(
    *, session: Session, principal: Principal | None, dataset_id: str
) -> TarDownload:
    """Check access and lay out the data object's tar (no bytes are read yet)."""
    dataset = _readable_dataset(session, principal, dataset_id)
    layout = TarLayout(dataset_members(session, dataset.id), epoch_seconds(dataset.create_date))
    if dataset.size is not None and dataset.size != layout.size:
        log.warning(
            "dataset %s: recorded size %s differs from its tar layout (%s bytes)",
            dataset.id,
            dataset.size,
            layout.size,
        )
    return TarDownload(layout, dataset.id)


def count_download(archive: Archive, dataset_id: str) -> None:
    """Add one to the data object's `download_count` (never raises: bookkeeping only).

    A download of a data object is complete when a response has delivered its last byte, on
    either route: the tar's last byte (a 200, or a 206 that resumes up to the end), or the last
    byte of the object's last non-empty file in tar order on the per-file route (the file a
    client fetching the manifest's files gets to last; `bl` fetches files of several objects
    at once, so no order across files can be assumed beyond that one). So a download that
    resumes counts once, when it ends, and one cut short is not counted."""
    try:
        with archive.session() as session:
            if session.get_bind().dialect.name == "sqlite":
                # one atomic statement: concurrent downloads never lose an increment
                session.execute(
                    update(Dataset)
                    .where(Dataset.id == dataset_id)
                    .values(
                        extra=func.json_set(
                            func.coalesce(Dataset.extra, "{}"),
                            "$.download_count",
                            func.coalesce(func.json_extract(Dataset.extra, "$.download_count"), 0)
                            + 1,
                        )
                    )
                )
            else:
                dataset = session.get(Dataset, dataset_id, with_for_update=True)
                if dataset is not None:
                    extra = dict(dataset.extra or {})
                    extra["download_count"] = int(extra.get("download_count") or 0) + 1
                    dataset.extra = extra
            session.commit()
    except Exception:
        log.warning("could not count a download of %s", dataset_id, exc_info=True)


# --- manifest and single files -----------------------------------------------------------------


def manifest_ids(payload: Any) -> list[str]:
    """The ids of a batch manifest request body `{"ids": [...]}`, once each in the order given;
    a body of another shape, or more than `MANIFESTS_MAX_IDS` ids, is a `BadRequest`."""
    if not isinstance(payload, dict) or "ids" not in payload:
        raise BadRequest('The body must be a JSON object {"ids": ["<data object id>", ...]}.')
    ids = payload["ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest('"ids" must be a list of data object ids (strings).')
    unique = list(dict.fromkeys(ids))
    if len(unique) > MANIFESTS_MAX_IDS:
        raise BadRequest(
            f"Too many ids: {len(unique)}; ask for at most {MANIFESTS_MAX_IDS} per request."
        )
    return unique


@dataclass(frozen=True)
class ObjectFiles:
    """A data object's files in tar order and its tar's length (`documents.manifest_doc`)."""

    dataset_id: str
    tar_size: int
    members: list[TarMember]


@dataclass(frozen=True)
class Missing:
    """An id of a batch without a manifest: `reason` `not-found`, `forbidden`, `removed` or
    `not-stored`,
    and the `message` the single manifest route would answer."""

    id: str
    reason: str
    message: str


@dataclass(frozen=True)
class ManifestBatch:
    found: list[ObjectFiles]
    missing: list[Missing]


def manifests_batch(
    *, session: Session, principal: Principal | None, ids: list[str]
) -> ManifestBatch:
    """The files of each of `ids` (as the single manifest route gives them), and every id that
    has none in `missing` with the reason the single route would give. Two queries: the objects
    with their readability (access decided in SQL), then the files of the readable stored ones."""
    wanted = [i for i in ids if is_object_id(i)]
    found: dict[str, tuple[str | None, Any, bool, bool]] = {}
    if wanted:
        rows = session.execute(
            select(
                Dataset.id,
                Dataset.status,
                Dataset.create_date,
                browsable_datasets(principal).label("readable"),
                (Dataset.removed & ~_published()).label("gone"),
            ).where(Dataset.id.in_(wanted))
        )
        found = {r.id: (r.status, r.create_date, bool(r.readable), bool(r.gone)) for r in rows}
    ok = [
        i
        for i in wanted
        if i in found and found[i][2] and not found[i][3] and found[i][0] == "stored"
    ]
    members: dict[str, list[TarMember]] = defaultdict(list)
    if ok:
        files = session.execute(
            select(
                DatasetFile.dataset_id,
                DatasetFile.path,
                DatasetFile.size,
                DatasetFile.sha256,
                DatasetFile.mode,
            )
            .where(DatasetFile.dataset_id.in_(ok))
            .order_by(DatasetFile.dataset_id, DatasetFile.pos)
        )
        for f in files:
            members[f.dataset_id].append(TarMember(f.path, f.size, f.sha256, f.mode))
    batch = ManifestBatch(found=[], missing=[])
    for oid in ids:
        if oid not in found:
            batch.missing.append(Missing(oid, "not-found", NOT_FOUND))
            continue
        status, create_date, readable, gone = found[oid]
        if not readable:
            batch.missing.append(Missing(oid, "forbidden", FORBIDDEN))
        elif gone:
            batch.missing.append(Missing(oid, "removed", _removed(oid)))
        elif status != "stored":
            batch.missing.append(Missing(oid, "not-stored", _not_stored(status)))
        else:
            got = members.get(oid, [])
            batch.found.append(ObjectFiles(oid, tar_size(got, epoch_seconds(create_date)), got))
    return batch


@dataclass(frozen=True)
class FileDownload:
    """One stored file (of a data object)."""

    sha256: str
    size: int
    filename: str
    media_type: str
    #: whether serving this file's last byte completes a download of its data object (see
    #: `count_download`)
    completes_object: bool

    @property
    def etag(self) -> str:
        """The file's validator (unquoted): its sha256."""
        return self.sha256


def guess_media_type(name: str) -> str:
    """A media type from the file name (`.gz` files are `application/gzip`, as node's `mime`
    says), default `application/octet-stream`."""
    media_type, encoding = mimetypes.guess_type(name, strict=False)
    if encoding == "gzip":
        return "application/gzip"
    if encoding is not None:
        return "application/octet-stream"
    return media_type or "application/octet-stream"


def open_dataset_file(
    *, session: Session, principal: Principal | None, dataset_id: str, path: str
) -> FileDownload:
    dataset = _readable_dataset(session, principal, dataset_id)
    row = session.get(DatasetFile, (dataset.id, path))
    if row is None:
        raise NotFound(f"The data object {dataset.id} has no file {path!r}.")
    name = path.rsplit("/", 1)[-1]
    last = session.scalar(
        select(DatasetFile.path)
        .where(DatasetFile.dataset_id == dataset.id)
        .order_by((DatasetFile.size > 0).desc(), DatasetFile.pos.desc())
        .limit(1)
    )
    return FileDownload(row.sha256, row.size, name, guess_media_type(name), last == path)


def presign_file(archive: Archive, f: FileDownload) -> str | None:
    """A short-lived URL of the store for the file's bytes, named as the file (None: the
    store has none, we send the bytes). Asked only after access was checked (`open_*`)."""
    return archive.store.presign(
        f.sha256, filename=f.filename, expires_in=archive.settings.presign_seconds
    )


def stream_blob(
    store: BlobSource,
    sha256: str,
    start: int,
    end: int,
    *,
    chunk_size: int,
    nonblocking: bool = False,
) -> Iterator[Chunk | None]:
    """Bytes `[start, end)` of a blob, `chunk_size` at a time (`None` items: see
    `tarstream.read_range`)."""
    return blob_chunks(store, sha256, start, end, chunk_size=chunk_size, nonblocking=nonblocking)
