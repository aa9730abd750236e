"""Data-object downloads under /api/warehouse: the tar, our manifest, and single files.

The database work runs in a session that closes before the response starts (`ShortSession`),
so a long download holds no connection. Ranges, ETags and 304s are `ranges`'; bodies stream in
`settings.chunk_size` pieces (see `ranges.paced`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from brainlife.server import documents, ranges
from brainlife.server.deps import ArchiveDep, DownloadUser, JsonBody, ShortSession
from brainlife.server.errors import BadRequest
from brainlife.server.onecall import OneCallRoute
from brainlife.server.query import parse_find
from brainlife.server.routes import download, params
from brainlife.server.services import downloads, selection
from brainlife.wire import Manifest, Manifests, routes

router = APIRouter(route_class=OneCallRoute)


@download(router, routes.DATASET_DOWNLOAD)
def download_dataset(
    dataset_id: str,
    request: Request,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """Download a data object as an uncompressed tar of its files (Range supported)."""
    dl = downloads.open_dataset_download(session=session, principal=user, dataset_id=dataset_id)
    return ranges.ranged_response(
        request,
        dl,
        dl.body(archive.store, archive.settings.chunk_size),
        on_last_byte=lambda: downloads.count_download(archive, dl.dataset_id),
    )


# response_model=None: wire TypedDicts are plain typing.TypedDict (no pydantic on 3.11)
@router.get(routes.DATASET_MANIFEST.path, response_model=None, openapi_extra=params.DOWNLOAD)
def dataset_manifest(dataset_id: str, user: DownloadUser, session: ShortSession) -> Manifest:
    """The files of a data object (path, size, sha256) in tar order, and the tar's size."""
    dl = downloads.open_dataset_download(session=session, principal=user, dataset_id=dataset_id)
    return documents.manifest_doc(dl.dataset_id, dl.size, dl.layout.members)


@router.post(
    routes.DATASET_MANIFESTS.path,
    response_model=None,
    openapi_extra={**params.MANIFESTS, **params.DOWNLOAD},
)
def dataset_manifests(payload: JsonBody, user: DownloadUser, session: ShortSession) -> Manifests:
    """The manifests of many data objects (`{"ids": [...]}`, at most `MANIFESTS_MAX_IDS`); ids
    without one are listed in `missing` with the reason."""
    ids = downloads.manifest_ids(payload)
    batch = downloads.manifests_batch(session=session, principal=user, ids=ids)
    return documents.manifests_doc(batch.found, batch.missing)


@download(router, routes.DATASET_FILE)
def download_dataset_file(
    request: Request,
    dataset_id: str,
    path: str,
    archive: ArchiveDep,
    user: DownloadUser,
    session: ShortSession,
) -> Response:
    """Download one file of a data object (Range supported; the ETag is its sha256). With an
    object store (`bl serve --store s3://…`) a GET is redirected (307) to a presigned URL."""
    f = downloads.open_dataset_file(
        session=session, principal=user, dataset_id=dataset_id, path=path
    )
    chunk = archive.settings.chunk_size
    counted = (
        (lambda: downloads.count_download(archive, dataset_id)) if f.completes_object else None
    )
    return ranges.ranged_response(
        request,
        f,
        lambda start, end, nb: downloads.stream_blob(
            archive.store, f.sha256, start, end, chunk_size=chunk, nonblocking=nb
        ),
        on_last_byte=counted,
        presign=lambda: downloads.presign_file(archive, f),
    )


def _selection_response(
    request: Request, tar: selection.SelectionTar, archive: ArchiveDep
) -> Response:
    return ranges.ranged_response(
        request,
        tar,
        tar.body(archive.store, archive.settings.chunk_size),
    )


@router.get(routes.DATASET_TAR.path, openapi_extra=params.SELECTION_QUERY)
@router.head(routes.DATASET_TAR.path, openapi_extra=params.SELECTION_QUERY)
def download_selection(
    request: Request, user: DownloadUser, session: ShortSession, archive: ArchiveDep
) -> Response:
    """Many data objects as one tar (`?ids=<id>,<id>…` or `?find=<json>`; each object's files
    under `<id>/`; Range and a stable ETag, as for one object)."""
    q = request.query_params
    if q.getlist("ids"):
        ids = selection.parse_ids(q.getlist("ids"))
    elif q.get("find"):
        ids = selection.ids_of_find(session=session, principal=user, find=parse_find(q["find"]))
    else:
        raise BadRequest("Say which data objects: ?ids=<id>,<id>… or ?find=<query>.")
    tar = selection.open_selection(session=session, principal=user, ids=ids)
    return _selection_response(request, tar, archive)


@router.post(routes.DATASET_TAR.path, openapi_extra={**params.SELECTION, **params.DOWNLOAD})
def download_selection_post(
    request: Request,
    payload: JsonBody,
    user: DownloadUser,
    session: ShortSession,
    archive: ArchiveDep,
) -> Response:
    """The same, the set in a JSON body: `{"ids": [...]}` (up to `DATASET_TAR_MAX_OBJECTS`,
    more than a URL holds) or `{"find": {...}}`."""
    if not isinstance(payload, dict) or not ({"ids", "find"} & set(payload)):
        raise BadRequest('The body must be a JSON object {"ids": [...]} or {"find": {...}}.')
    if "ids" in payload:
        ids = selection.parse_ids(payload["ids"])
    else:
        if not isinstance(payload["find"], dict):
            raise BadRequest('"find" must be a JSON object (a query, as for GET /dataset).')
        ids = selection.ids_of_find(session=session, principal=user, find=payload["find"])
    tar = selection.open_selection(session=session, principal=user, ids=ids)
    return _selection_response(request, tar, archive)
