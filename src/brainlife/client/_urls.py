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
UPLOADS: Final = routes.UPLOADS.url()

# the others take their parameters in the route's order: `upload_file(upload_id, index)`
project: Final = routes.PROJECT.at
participants: Final = routes.PARTICIPANTS.at
token: Final = routes.TOKEN.at
dataset_manifest: Final = routes.DATASET_MANIFEST.at
#: the data object's tar archive (brainlife.io's route, and ours)
dataset_download: Final = routes.DATASET_DOWNLOAD.at
task_manifest: Final = routes.TASK_MANIFEST.at
#: a task's file, or a folder's .tar.gz
task_path: Final = routes.TASK_DOWNLOAD_PATH.at
#: a publication (`PUT`: its metadata and new releases)
pub: Final = routes.PUB.at
#: `bl serve`'s release route (`POST`): one release, or a dry run of it
pub_release: Final = routes.PUB_RELEASE.at
#: one data object: `PUT` changes it, `DELETE` removes it
dataset: Final = routes.DATASET.at
dataset_history: Final = routes.DATASET_HISTORY.at
upload: Final = routes.UPLOAD.at
upload_file: Final = routes.UPLOAD_FILE.at
upload_file_sha256: Final = routes.UPLOAD_FILE_SHA256.at
upload_finalize: Final = routes.UPLOAD_FINALIZE.at
project_file_download: Final = routes.PROJECT_FILE_DOWNLOAD.at
#: ours: `PUT` stores a project file, `DELETE` removes it
project_file: Final = routes.PROJECT_FILE.at


def dataset_files(dataset_id: str) -> str:
    """The stem of the data object's file routes: a file's is this + ``quote_path(rel)``."""
    return routes.DATASET_FILE.prefix_of(dataset_id=dataset_id)


def task_files(task_id: str, folder: str) -> str:
    """The stem of the file routes under ``folder`` of a task (ending in ``/``)."""
    stem = routes.TASK_DOWNLOAD_PATH.prefix_of(task_id=task_id)
    clean = folder.strip("/")
    return stem + (quote_path(clean) + "/" if clean else "")


def project_files(project_id: str, prefix: str = "") -> str:
    """A folder of a project's files (its root when ``prefix`` is empty)."""
    prefix = prefix.strip("/")
    if not prefix:
        return routes.PROJECT_FILES.url(project_id=project_id)
    return routes.PROJECT_FILES_PREFIX.url(project_id=project_id, prefix=prefix)
