"""Every URL path the client sends, and the only client module that reads the route table
(:mod:`brainlife.wire.routes`, shared with the server): a route renamed there is renamed here,
and nowhere else in the client is a route written out."""

from __future__ import annotations

from typing import Final

from brainlife.client._http import quote_path
from brainlife.wire import routes

# fixed paths
LOGIN: Final = routes.LOGIN.url()
REFRESH: Final = routes.REFRESH.url()
PROFILES: Final = routes.PROFILES.url()
PROJECTS: Final = routes.PROJECTS.url()
DATATYPES: Final = routes.DATATYPES.url()
PUBS: Final = routes.PUBS.url()
DATASETS: Final = routes.DATASETS.url()
DATASET_MANIFESTS: Final = routes.DATASET_MANIFESTS.url()
TASKS: Final = routes.TASKS.url()
TOKENS: Final = routes.TOKENS.url()
APPS: Final = routes.APPS.url()
RESOURCES: Final = routes.RESOURCES.url()
INSTANCES: Final = routes.INSTANCES.url()


def project(project_id: str) -> str:
    return routes.PROJECT.url(project_id=project_id)


def participants(project_id: str) -> str:
    return routes.PARTICIPANTS.url(project_id=project_id)


def token(jti: str) -> str:
    return routes.TOKEN.url(jti=jti)


UPLOADS: Final = routes.UPLOADS.url()


def dataset_manifest(dataset_id: str) -> str:
    return routes.DATASET_MANIFEST.url(dataset_id=dataset_id)


def dataset_download(dataset_id: str) -> str:
    """The data object's tar archive (brainlife.io's route, and ours)."""
    return routes.DATASET_DOWNLOAD.url(dataset_id=dataset_id)


def dataset_files(dataset_id: str) -> str:
    """The stem of the data object's file routes: a file's is this + ``quote_path(rel)``."""
    return routes.DATASET_FILE.prefix_of(dataset_id=dataset_id)


def task_manifest(task_id: str) -> str:
    return routes.TASK_MANIFEST.url(task_id=task_id)


def task_path(task_id: str, path: str) -> str:
    """A task's file, or a folder's .tar.gz."""
    return routes.TASK_DOWNLOAD_PATH.url(task_id=task_id, path=path)


def task_files(task_id: str, folder: str) -> str:
    """The stem of the file routes under ``folder`` of a task (ending in ``/``)."""
    stem = routes.TASK_DOWNLOAD_PATH.prefix_of(task_id=task_id)
    clean = folder.strip("/")
    return stem + (quote_path(clean) + "/" if clean else "")


def pub(pub_id: str) -> str:
    """A publication (``PUT``: its metadata and new releases)."""
    return routes.PUB.url(pub_id=pub_id)


def pub_release(pub_id: str) -> str:
    """``bl serve``'s release route (``POST``): one release, or a dry run of it."""
    return routes.PUB_RELEASE.url(pub_id=pub_id)


def dataset(dataset_id: str) -> str:
    """One data object: `PUT` changes it, `DELETE` removes it."""
    return routes.DATASET.url(dataset_id=dataset_id)


def dataset_history(dataset_id: str) -> str:
    return routes.DATASET_HISTORY.url(dataset_id=dataset_id)


def upload(upload_id: str) -> str:
    return routes.UPLOAD.url(upload_id=upload_id)


def upload_file(upload_id: str, index: int) -> str:
    return routes.UPLOAD_FILE.url(upload_id=upload_id, index=str(index))


def upload_file_sha256(upload_id: str, index: int) -> str:
    return routes.UPLOAD_FILE_SHA256.url(upload_id=upload_id, index=str(index))


def upload_finalize(upload_id: str) -> str:
    return routes.UPLOAD_FINALIZE.url(upload_id=upload_id)


def project_files(project_id: str, prefix: str = "") -> str:
    """A folder of a project's files (its root when ``prefix`` is empty)."""
    prefix = prefix.strip("/")
    if not prefix:
        return routes.PROJECT_FILES.url(project_id=project_id)
    return routes.PROJECT_FILES_PREFIX.url(project_id=project_id, prefix=prefix)


def project_file_download(project_id: str, path: str) -> str:
    return routes.PROJECT_FILE_DOWNLOAD.url(project_id=project_id, path=path)


def project_file(project_id: str, path: str) -> str:
    """Ours: ``PUT`` stores a project file, ``DELETE`` removes it."""
    return routes.PROJECT_FILE.url(project_id=project_id, path=path)
