"""`POST /api/warehouse/dataset/downscript`: the download script of the official
`bl bids download` (`services.downscript`). Thin: the body, the service, a text response."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from brainlife.server.deps import ArchiveDep, JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.routes import params
from brainlife.server.services import downscript
from brainlife.wire import routes

router = APIRouter(route_class=OneCallRoute)


@router.post(
    routes.DATASET_DOWNSCRIPT.path, response_class=Response, openapi_extra=params.DOWNSCRIPT
)
def dataset_downscript(
    payload: JsonBody, request: Request, session: SessionDep, archive: ArchiveDep, user: User
) -> Response:
    script = downscript.downscript(
        session=session,
        archive=archive,
        principal=user,
        body=payload,
        base_url=str(request.base_url),
    )
    return Response(script, media_type="text/x-shellscript; charset=utf-8")
