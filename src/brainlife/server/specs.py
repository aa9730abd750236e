"""Per-collection field maps for `brainlife.server.query`: wire field name → SQL.

Wire names differ from column names in a few places: `_id` is `id`, a dataset's `project` and
`datatype` are `project_id`/`datatype_id`, a task's `_group_id` is `group_id`. `meta.subject`,
`meta.session` and `meta.run` of datasets are promoted, indexed columns; `prov.task_id` is read
with `JSON.text_field` (one expression per engine, so an expression index can serve it).
"""

from __future__ import annotations

from brainlife.server.models import (
    App,
    AppProject,
    Dataset,
    DatasetDatatypeTag,
    DatasetPublication,
    DatasetTag,
    Datatype,
    Instance,
    Project,
    ProjectRole,
    Publication,
    Release,
    Resource,
    ResourceGroup,
    Task,
    User,
)
from brainlife.server.query import Assoc, Collection, Kind, ScalarTarget, SubDocs
from brainlife.server.query.jsonpath import JSON

S = Kind.STR


def _col(expr: object, kind: Kind) -> ScalarTarget:
    return ScalarTarget(expr, kind)


def _columns(model: type, **names: str) -> dict[str, ScalarTarget]:
    """The wire fields that are `model`'s columns of the same name (`_id`: its `id`), listed
    by kind: `_columns(Release, OID="_id", STR="name desc")`."""
    return {
        name: _col(getattr(model, "id" if name == "_id" else name), Kind[kind])
        for kind, spaced in names.items()
        for name in spaced.split()
    }


def _role(role: str) -> Assoc:
    return Assoc(
        ProjectRole.sub, ProjectRole.project_id, Project.id, lambda: ProjectRole.role == role
    )


PROJECTS = Collection(
    name="projects",
    fields={
        **_columns(Project, OID="_id", INT="group_id", STR="user_id name desc access"),
        **_columns(Project, BOOL="listed removed", DATE="create_date update_date"),
        "admins": _role("admins"),
        "members": _role("members"),
        "guests": _role("guests"),
    },
    extra=Project.extra,
)

DATASETS = Collection(
    name="datasets",
    fields={
        **_columns(Dataset, OID="_id", STR="user_id desc storage status status_msg"),
        **_columns(Dataset, BOOL="removed", INT="size", DATE="create_date update_date"),
        "project": _col(Dataset.project_id, Kind.OID),
        "datatype": _col(Dataset.datatype_id, Kind.OID),
        "meta.subject": _col(Dataset.subject, S),
        "meta.session": _col(Dataset.session, S),
        "meta.run": _col(Dataset.run, S),
        "meta": Dataset.meta,
        "prov.task_id": _col(JSON.text_field(Dataset.prov, "task_id"), S),
        "prov": Dataset.prov,
        "tags": Assoc(DatasetTag.tag, DatasetTag.dataset_id, Dataset.id),
        "datatype_tags": Assoc(DatasetDatatypeTag.tag, DatasetDatatypeTag.dataset_id, Dataset.id),
        "publications": Assoc(
            DatasetPublication.release_id, DatasetPublication.dataset_id, Dataset.id, kind=Kind.OID
        ),
    },
    extra=Dataset.extra,
)

DATATYPES = Collection(
    name="datatypes",
    fields=_columns(Datatype, OID="_id", STR="name desc", DATE="create_date"),
    extra=Datatype.extra,
)

RELEASES = Collection(
    name="releases",
    fields=_columns(Release, OID="_id", STR="name desc", BOOL="removed", DATE="create_date"),
    extra=Release.extra,
)

PUBLICATIONS = Collection(
    name="publications",
    fields={
        **_columns(Publication, OID="_id", STR="user_id name desc doi license"),
        **_columns(Publication, BOOL="removed", DATE="create_date"),
        "project": _col(Publication.project_id, Kind.OID),
        "releases": SubDocs(lambda: RELEASES, lambda: Release.pub_id == Publication.id),
    },
    extra=Publication.extra,
)

TASKS = Collection(
    name="tasks",
    fields={
        **_columns(Task, OID="_id instance_id", STR="user_id service service_branch name desc"),
        **_columns(Task, STR="status status_msg", DATE="create_date start_date finish_date"),
        **_columns(Task, DATE="update_date"),
        "_group_id": _col(Task.group_id, Kind.INT),
        "config": Task.config,
    },
    extra=Task.extra,
)

#: auth users, for `GET /api/auth/profile/list` (public fields only: no password or private data)
PROFILES = Collection(
    name="profiles",
    fields=_columns(
        User, INT="sub", STR="username fullname email", BOOL="active", DATE="create_date"
    ),
    extra=None,
)

#: warehouse apps: `inputs`/`outputs` are JSON arrays of documents, searched with `$elemMatch`
#: (`{"inputs": {"$elemMatch": {"datatype": id}}}`, what `bl app query --input-datatype` sends);
#: `$text` searches name, description, service and DOI
APPS = Collection(
    name="apps",
    fields={
        **_columns(App, OID="_id", STR="name desc github github_branch doi user_id"),
        **_columns(App, BOOL="removed", DATE="create_date"),
        "inputs": App.inputs,
        "outputs": App.outputs,
        "config": App.config,
        "projects": Assoc(AppProject.project_id, AppProject.app_id, App.id, kind=Kind.OID),
    },
    extra=App.extra,
    text=(App.name, App.desc, App.github, App.doi),
)

#: amaretti compute resources (`config.services` is what `bl resource query -v` searches)
RESOURCES = Collection(
    name="resources",
    fields={
        **_columns(Resource, OID="_id", STR="name type status status_msg user_id"),
        **_columns(Resource, BOOL="active", DATE="create_date"),
        "config": Resource.config,
        "gids": Assoc(ResourceGroup.gid, ResourceGroup.resource_id, Resource.id, kind=Kind.INT),
    },
    extra=Resource.extra,
    text=(Resource.name, JSON.text_field(Resource.config, "desc")),
)

#: amaretti instances (the folders tasks run in), for `GET /api/amaretti/instance`
INSTANCES = Collection(
    name="instances",
    fields={
        **_columns(Instance, OID="_id", STR="user_id name desc status"),
        **_columns(Instance, INT="group_id", DATE="create_date update_date"),
        "config": Instance.config,
    },
    extra=None,
)
