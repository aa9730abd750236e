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


def _role(role: str) -> Assoc:
    return Assoc(
        ProjectRole.sub, ProjectRole.project_id, Project.id, lambda: ProjectRole.role == role
    )


PROJECTS = Collection(
    name="projects",
    fields={
        "_id": _col(Project.id, Kind.OID),
        "group_id": _col(Project.group_id, Kind.INT),
        "user_id": _col(Project.user_id, S),
        "name": _col(Project.name, S),
        "desc": _col(Project.desc, S),
        "access": _col(Project.access, S),
        "listed": _col(Project.listed, Kind.BOOL),
        "removed": _col(Project.removed, Kind.BOOL),
        "create_date": _col(Project.create_date, Kind.DATE),
        "update_date": _col(Project.update_date, Kind.DATE),
        "admins": _role("admins"),
        "members": _role("members"),
        "guests": _role("guests"),
    },
    extra=Project.extra,
)

DATASETS = Collection(
    name="datasets",
    fields={
        "_id": _col(Dataset.id, Kind.OID),
        "project": _col(Dataset.project_id, Kind.OID),
        "datatype": _col(Dataset.datatype_id, Kind.OID),
        "user_id": _col(Dataset.user_id, S),
        "desc": _col(Dataset.desc, S),
        "storage": _col(Dataset.storage, S),
        "status": _col(Dataset.status, S),
        "status_msg": _col(Dataset.status_msg, S),
        "removed": _col(Dataset.removed, Kind.BOOL),
        "size": _col(Dataset.size, Kind.INT),
        "create_date": _col(Dataset.create_date, Kind.DATE),
        "update_date": _col(Dataset.update_date, Kind.DATE),
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
    fields={
        "_id": _col(Datatype.id, Kind.OID),
        "name": _col(Datatype.name, S),
        "desc": _col(Datatype.desc, S),
        "create_date": _col(Datatype.create_date, Kind.DATE),
    },
    extra=Datatype.extra,
)

RELEASES = Collection(
    name="releases",
    fields={
        "_id": _col(Release.id, Kind.OID),
        "name": _col(Release.name, S),
        "desc": _col(Release.desc, S),
        "removed": _col(Release.removed, Kind.BOOL),
        "create_date": _col(Release.create_date, Kind.DATE),
    },
    extra=Release.extra,
)

PUBLICATIONS = Collection(
    name="publications",
    fields={
        "_id": _col(Publication.id, Kind.OID),
        "project": _col(Publication.project_id, Kind.OID),
        "user_id": _col(Publication.user_id, S),
        "name": _col(Publication.name, S),
        "desc": _col(Publication.desc, S),
        "doi": _col(Publication.doi, S),
        "license": _col(Publication.license, S),
        "removed": _col(Publication.removed, Kind.BOOL),
        "create_date": _col(Publication.create_date, Kind.DATE),
        "releases": SubDocs(lambda: RELEASES, lambda: Release.pub_id == Publication.id),
    },
    extra=Publication.extra,
)

TASKS = Collection(
    name="tasks",
    fields={
        "_id": _col(Task.id, Kind.OID),
        "user_id": _col(Task.user_id, S),
        "_group_id": _col(Task.group_id, Kind.INT),
        "instance_id": _col(Task.instance_id, Kind.OID),
        "service": _col(Task.service, S),
        "service_branch": _col(Task.service_branch, S),
        "name": _col(Task.name, S),
        "desc": _col(Task.desc, S),
        "status": _col(Task.status, S),
        "status_msg": _col(Task.status_msg, S),
        "create_date": _col(Task.create_date, Kind.DATE),
        "start_date": _col(Task.start_date, Kind.DATE),
        "finish_date": _col(Task.finish_date, Kind.DATE),
        "update_date": _col(Task.update_date, Kind.DATE),
        "config": Task.config,
    },
    extra=Task.extra,
)

INSTANCES = Collection(
    name="instances",
    fields={
        "_id": _col(Instance.id, Kind.OID),
        "user_id": _col(Instance.user_id, S),
        "group_id": _col(Instance.group_id, Kind.INT),
        "name": _col(Instance.name, S),
        "desc": _col(Instance.desc, S),
        "status": _col(Instance.status, S),
        "create_date": _col(Instance.create_date, Kind.DATE),
        "update_date": _col(Instance.update_date, Kind.DATE),
        "config": Instance.config,
    },
)

#: auth users, for `GET /api/auth/profile/list` (public fields only: no password or private data)
PROFILES = Collection(
    name="profiles",
    fields={
        "sub": _col(User.sub, Kind.INT),
        "username": _col(User.username, S),
        "fullname": _col(User.fullname, S),
        "email": _col(User.email, S),
        "active": _col(User.active, Kind.BOOL),
        "create_date": _col(User.create_date, Kind.DATE),
    },
    extra=None,
)

#: warehouse apps: `inputs`/`outputs` are JSON arrays of documents, searched with `$elemMatch`
#: (`{"inputs": {"$elemMatch": {"datatype": id}}}`, what `bl app query --input-datatype` sends);
#: `$text` searches name, description, service and DOI
APPS = Collection(
    name="apps",
    fields={
        "_id": _col(App.id, Kind.OID),
        "name": _col(App.name, S),
        "desc": _col(App.desc, S),
        "github": _col(App.github, S),
        "github_branch": _col(App.github_branch, S),
        "doi": _col(App.doi, S),
        "removed": _col(App.removed, Kind.BOOL),
        "user_id": _col(App.user_id, S),
        "create_date": _col(App.create_date, Kind.DATE),
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
        "_id": _col(Resource.id, Kind.OID),
        "name": _col(Resource.name, S),
        "type": _col(Resource.type, S),
        "status": _col(Resource.status, S),
        "status_msg": _col(Resource.status_msg, S),
        "active": _col(Resource.active, Kind.BOOL),
        "user_id": _col(Resource.user_id, S),
        "create_date": _col(Resource.create_date, Kind.DATE),
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
        "_id": _col(Instance.id, Kind.OID),
        "user_id": _col(Instance.user_id, S),
        "group_id": _col(Instance.group_id, Kind.INT),
        "name": _col(Instance.name, S),
        "desc": _col(Instance.desc, S),
        "status": _col(Instance.status, S),
        "config": Instance.config,
        "create_date": _col(Instance.create_date, Kind.DATE),
        "update_date": _col(Instance.update_date, Kind.DATE),
    },
    extra=None,
)
