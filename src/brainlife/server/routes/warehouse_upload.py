"""The warehouse routes the official CLI's uploads use: `finalize-upload` (`bl data upload`),
and `POST /dataset` from a task output (`bl bids upload`; its `PUT /participant/:project` is
`routes.participants`). Thin: parse, call a service (`finalize`), render. The amaretti half is
`amaretti_upload`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from brainlife.server import documents
from brainlife.server.deps import ArchiveDep, Finalizer, JsonBody, SessionDep, User
from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import datasets, finalize
from brainlife.wire import Document, routes

router = APIRouter(route_class=OneCallRoute)

#: how long a finalize request waits for its job (a small upload is then answered `stored`,
#: and the official CLI's first poll finds it instead of sleeping 5 s); longer ones go on
FINALIZE_WAIT = 3.0


def _started(
    register: Callable[..., finalize.Finalized],
    body: JsonBody,
    session: SessionDep,
    user: User,
    archive: ArchiveDep,
    runner: Finalizer,
) -> finalize.Finalized:
    """The data object `register` records, its job started and waited for `FINALIZE_WAIT`."""
    done = register(session=session, archive=archive, principal=user, body=body)
    runner.kick()
    runner.wait_for(done.job_id, FINALIZE_WAIT)
    return done


@router.post(routes.DATASET_FINALIZE_UPLOAD.path)
def finalize_upload(
    body: JsonBody, session: SessionDep, user: User, archive: ArchiveDep, runner: Finalizer
) -> Document:
    done = _started(finalize.finalize_upload, body, session, user, archive, runner)
    return documents.archive_task_doc(finalize.job_of(session, done))


@router.post(routes.DATASETS.path)
def register_dataset(
    body: JsonBody, session: SessionDep, user: User, archive: ArchiveDep, runner: Finalizer
) -> Document:
    done = _started(finalize.register_output, body, session, user, archive, runner)
    row = finalize.dataset_of(session, done)
    return datasets.dataset_documents(session, [row])[0]
