"""Every route both sides use, as one table: the server's routers declare `Route.path`, the client
builds URLs with `Route.url(...)`. Nobody writes a route as a string literal elsewhere.

A `Route` is a prefix (`/api/warehouse`) and a path relative to it in Starlette's syntax
(`/dataset/download/{dataset_id}`, `{path:path}` for a parameter that may hold slashes), so the
server's parameter names and the client's keyword arguments are the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

API_AUTH: Final = "/api/auth"
API_WAREHOUSE: Final = "/api/warehouse"
API_AMARETTI: Final = "/api/amaretti"

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class Route:
    prefix: str
    #: relative to `prefix`, Starlette's syntax
    path: str
    #: False for the routes brainlife.io does not have (*ours*; off under `--no-extensions`)
    brainlife: bool = True

    @property
    def full(self) -> str:
        """The absolute path template (`/api/warehouse/dataset/download/{dataset_id}`)."""
        return self.prefix + self.path

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(m.group(1) for m in _PARAM.finditer(self.path))

    def url(self, **values: str) -> str:
        """The absolute path with every parameter filled in and quoted: a `{name:path}`
        parameter keeps its slashes (a leading one is dropped), any other is one segment."""
        missing = set(self.params) - set(values)
        extra = set(values) - set(self.params)
        if missing or extra:
            raise TypeError(f"{self.full}: missing {sorted(missing)}, unexpected {sorted(extra)}")

        def fill(match: re.Match[str]) -> str:
            value = str(values[match.group(1)])
            if match.group(2) == "path":
                return quote(value.lstrip("/"), safe="/")
            return quote(value, safe="")

        return self.prefix + _PARAM.sub(fill, self.path)

    def at(self, *values: object) -> str:
        """`url` with the parameters given in the order the path names them (`UPLOAD_FILE.at(
        upload_id, 3)`), for a caller that holds the values rather than their names."""
        if len(values) != len(self.params):
            raise TypeError(f"{self.full}: takes {len(self.params)} values, got {len(values)}")
        return self.url(**{name: str(v) for name, v in zip(self.params, values, strict=True)})

    def prefix_of(self, **values: str) -> str:
        """The URL up to (not including) the last parameter, which must be a `{…:path}`: the
        stem to which many quoted file paths are appended (`…/dataset/file/<id>/`)."""
        last = list(_PARAM.finditer(self.path))[-1]
        if last.group(2) != "path" or last.end() != len(self.path):
            raise TypeError(f"{self.full}: the last parameter is not a trailing path")
        head = Route(self.prefix, self.path[: last.start()], self.brainlife)
        return head.url(**values)


_extensions: list[Route] = []


def _ours(prefix: str, path: str) -> Route:
    """A route of `bl serve` that brainlife.io does not have (*ours*: off under
    `--no-extensions`), listed in `EXTENSIONS` as it is declared."""
    route = Route(prefix, path, brainlife=False)
    _extensions.append(route)
    return route


# /api/auth
LOGIN: Final = Route(API_AUTH, "/local/auth")
REFRESH: Final = Route(API_AUTH, "/refresh")
ME: Final = Route(API_AUTH, "/me")
PROFILES: Final = Route(API_AUTH, "/profile/list")
SIGNUP: Final = Route(API_AUTH, "/signup")
GROUPS: Final = Route(API_AUTH, "/groups")
GROUP_NEW: Final = Route(API_AUTH, "/group")
GROUP: Final = Route(API_AUTH, "/group/{group_id}")
#: ours: an archive admin's account management (brainlife's admin UI has its own routes)
USERS: Final = _ours(API_AUTH, "/users")
USER_NEW: Final = _ours(API_AUTH, "/user")
USER: Final = _ours(API_AUTH, "/user/{sub}")
#: ours: the caller's tokens (an admin's: anyone's), and revoking one
TOKENS: Final = _ours(API_AUTH, "/tokens")
TOKEN: Final = _ours(API_AUTH, "/token/{jti}")

# /api/warehouse
HEALTH: Final = Route(API_WAREHOUSE, "/health")
PROJECTS: Final = Route(API_WAREHOUSE, "/project")
PROJECT: Final = Route(API_WAREHOUSE, "/project/{project_id}")
PARTICIPANTS: Final = Route(API_WAREHOUSE, "/participant/{project_id}")
DATATYPES: Final = Route(API_WAREHOUSE, "/datatype")
DATASETS: Final = Route(API_WAREHOUSE, "/dataset")
PUBS: Final = Route(API_WAREHOUSE, "/pub")
RELEASE_DATASETS: Final = Route(API_WAREHOUSE, "/pub/datasets/{release_id}")
#: `PUT`: a publication's metadata, and new releases (brainlife's shape)
PUB: Final = Route(API_WAREHOUSE, "/pub/{pub_id}")
#: `POST`: one new release of a publication, or with `dry_run` what it would hold (ours)
PUB_RELEASE: Final = _ours(API_WAREHOUSE, "/pub/release/{pub_id}")
#: one data object: `PUT` (curation) and `DELETE` (soft delete)
DATASET: Final = Route(API_WAREHOUSE, "/dataset/{dataset_id}")
#: the changes of a data object (*ours*)
DATASET_HISTORY: Final = _ours(API_WAREHOUSE, "/dataset/history/{dataset_id}")
#: the official CLI's upload: the object is registered from the task's upload folder
DATASET_FINALIZE_UPLOAD: Final = Route(API_WAREHOUSE, "/dataset/finalize-upload")
DATASET_DOWNLOAD: Final = Route(API_WAREHOUSE, "/dataset/download/{dataset_id}")
DATASET_MANIFEST: Final = _ours(API_WAREHOUSE, "/dataset/manifest/{dataset_id}")
DATASET_MANIFESTS: Final = _ours(API_WAREHOUSE, "/dataset/manifests")
DATASET_FILE: Final = _ours(API_WAREHOUSE, "/dataset/file/{dataset_id}/{path:path}")
#: many data objects as one tar (`?ids=`, or `find`; POST: a JSON body of either)
DATASET_TAR: Final = _ours(API_WAREHOUSE, "/dataset/tar")
APPS: Final = Route(API_WAREHOUSE, "/app")
DATASET_STAGE: Final = Route(API_WAREHOUSE, "/dataset/stage")
DATASET_DOWNSCRIPT: Final = Route(API_WAREHOUSE, "/dataset/downscript")
#: resumable uploads (`brainlife.wire.uploads`)
UPLOADS: Final = _ours(API_WAREHOUSE, "/upload")
UPLOAD: Final = _ours(API_WAREHOUSE, "/upload/{upload_id}")
UPLOAD_FILE: Final = _ours(API_WAREHOUSE, "/upload/{upload_id}/file/{index}")
UPLOAD_FINALIZE: Final = _ours(API_WAREHOUSE, "/upload/{upload_id}/finalize")
UPLOAD_FILE_SHA256: Final = _ours(API_WAREHOUSE, "/upload/{upload_id}/file/{index}/sha256")
#: a project's plain files (brainlife's "S3 project files", official CLI 1.8.2): the listing of
#: its root or of a folder, one file, and folders as one tar (`?paths[]=<folder>`)
PROJECT_FILES: Final = Route(API_WAREHOUSE, "/files/{project_id}")
PROJECT_FILES_PREFIX: Final = Route(API_WAREHOUSE, "/files/{project_id}/{prefix:path}")
PROJECT_FILE_DOWNLOAD: Final = Route(API_WAREHOUSE, "/files/{project_id}/download/{path:path}")
PROJECT_FILES_TAR: Final = Route(API_WAREHOUSE, "/files/{project_id}/download-multiple")
#: ours: `PUT` (a streamed body) stores one project file, `DELETE` removes it
PROJECT_FILE: Final = _ours(API_WAREHOUSE, "/projectfile/{project_id}/{path:path}")

# /api/amaretti
TASKS: Final = Route(API_AMARETTI, "/task")
TASK: Final = Route(API_AMARETTI, "/task/{task_id}")
RESOURCES: Final = Route(API_AMARETTI, "/resource")
INSTANCES: Final = Route(API_AMARETTI, "/instance")
#: a raw upload into a task's folder (`?p=<path>&untar=true`)
TASK_UPLOAD: Final = Route(API_AMARETTI, "/task/upload/{task_id}")
TASK_DOWNLOAD: Final = Route(API_AMARETTI, "/task/download/{task_id}")
TASK_DOWNLOAD_PATH: Final = Route(API_AMARETTI, "/task/download/{task_id}/{path:path}")
TASK_MANIFEST: Final = _ours(API_AMARETTI, "/task/manifest/{task_id}")
#: the same, the path as a segment rather than `?p=` (as `TASK_DOWNLOAD_PATH` takes it)
TASK_MANIFEST_PATH: Final = _ours(API_AMARETTI, "/task/manifest/{task_id}/{path:path}")

#: the routes of `bl serve` that brainlife.io does not have (those declared by `_ours`)
EXTENSIONS: Final = tuple(_extensions)
