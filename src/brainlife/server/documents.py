"""Every document a route answers with, rendered here and nowhere else: rows → brainlife's
JSON objects, the list envelopes, the login and token answers, and our manifests (typed with
`brainlife.wire`'s documents where the client reads them too). Services decide what is in a
document (rows, access, the reasons of a batch manifest); this module decides its shape. Error
bodies are `errors`' (`wire.ErrorBody`), rendered by the one handler in `app`.

Field names and types follow brainlife (brainlife-server.md §1, §3.1): `_id`, `__v: 0`, ISO
dates, subs as strings in `admins`/`members`/`guests`/`user_id`, a dataset's `project` and
`datatype` as id strings, a task's `_group_id` as a number. Each row's `extra` JSON (the rest of
brainlife's document) is merged in without overriding the modelled fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

from brainlife.server.models import (
    App,
    AuthToken,
    Dataset,
    DatasetEvent,
    Datatype,
    FinalizeJob,
    Group,
    Instance,
    Project,
    Publication,
    Release,
    Resource,
    Task,
    Upload,
    User,
)
from brainlife.server.query import Projection
from brainlife.wire import (
    Document,
    Manifest,
    ManifestFile,
    ManifestMissing,
    Manifests,
    TaskManifest,
    UploadFileState,
    UploadSession,
    format_date,
)
from brainlife.wire.projectfiles import FileEntry, FileListing


@dataclass
class DatasetArrays:
    tags: list[str] = field(default_factory=list)
    datatype_tags: list[str] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)


def _merge(doc: Document, extra: dict[str, Any] | None, *, lists: Iterable[str] = ()) -> Document:
    """`extra` merged into `doc` without overriding it, then each of `lists` an empty list
    when neither holds it (fields brainlife always sends as arrays)."""
    for key, value in (extra or {}).items():
        doc.setdefault(key, value)
    for key in lists:
        doc.setdefault(key, [])
    return doc


def _columns(row: Any, *names: str) -> Document:
    """`{name: row.<name>}` for columns served as they are, in the order given (the order of
    brainlife's documents)."""
    return {name: getattr(row, name) for name in names}


def _dates(row: Any, *names: str) -> Document:
    return {name: format_date(getattr(row, name)) for name in names}


def project_doc(row: Project) -> Document:
    roles: dict[str, list[str]] = {"admins": [], "members": [], "guests": []}
    for role in sorted(row.roles, key=lambda r: r.pos):
        roles.setdefault(role.role, []).append(role.sub)
    doc: Document = {
        "_id": row.id,
        **_columns(row, "user_id", "name", "desc", "access", "listed", "group_id"),
        "admins": roles["admins"],
        "members": roles["members"],
        "guests": roles["guests"],
        "removed": row.removed,
        **_dates(row, "create_date", "update_date"),
        "__v": 0,
    }
    if doc["update_date"] is None:
        del doc["update_date"]
    return _merge(doc, row.extra)


#: The columns a data object's document is made of, in the order `dataset_values_doc` takes
#: them. A listing reads exactly these as plain rows (`services.datasets.DATASET_COLUMNS`):
#: building an ORM object per row and reading its attributes back cost more than the
#: rendering itself (issue #11).
DATASET_FIELDS = (
    "id",
    "user_id",
    "project_id",
    "datatype_id",
    "desc",
    "storage",
    "status",
    "status_msg",
    "removed",
    "size",
    "subject",
    "session",
    "run",
    "create_date",
    "update_date",
    "meta",
    "prov",
    "extra",
)
#: a `Dataset`'s `DATASET_FIELDS` values, as a tuple
dataset_fields = attrgetter(*DATASET_FIELDS)


def dataset_doc(row: Dataset, arrays: DatasetArrays | None = None) -> Document:
    """A data object's document. `arrays` (tags, datatype_tags, publications) may be given
    when they were fetched in bulk; otherwise they are read from the row's relationships."""
    if arrays is None:
        arrays = DatasetArrays(
            tags=[t.tag for t in sorted(row.tags, key=lambda t: t.pos)],
            datatype_tags=[t.tag for t in sorted(row.datatype_tags, key=lambda t: t.pos)],
            publications=[p.release_id for p in sorted(row.publications, key=lambda p: p.pos)],
        )
    return dataset_values_doc(
        dataset_fields(row), arrays.tags, arrays.datatype_tags, arrays.publications
    )


def dataset_values_doc(
    values: Sequence[Any], tags: list[str], datatype_tags: list[str], publications: list[str]
) -> Document:
    """A data object's document from its `DATASET_FIELDS` values (a row of a listing, in that
    order) and its arrays. Unpacked at once and the loops unrolled: 100 documents a page, where
    each attribute read of an ORM object or a SQLAlchemy row by name cost more than a
    tuple's unpacking (issue #11)."""
    (
        id_,
        user_id,
        project_id,
        datatype_id,
        desc,
        storage,
        status,
        status_msg,
        removed,
        size,
        subject,
        session,
        run,
        create_date,
        update_date,
        meta,
        prov,
        extra,
    ) = values
    meta = dict(meta or {})
    if subject is not None and "subject" not in meta:
        meta["subject"] = subject
    if session is not None and "session" not in meta:
        meta["session"] = session
    if run is not None and "run" not in meta:
        meta["run"] = run
    doc: Document = {
        "_id": id_,
        "user_id": user_id,
        "project": project_id,
        "datatype": datatype_id,
        "datatype_tags": datatype_tags,
        "tags": tags,
        "meta": meta,
        "desc": desc,
        "storage": storage,
        "status": status,
        "removed": removed,
        "size": size,
        "publications": publications,
        "create_date": format_date(create_date),
        "__v": 0,
    }
    if status_msg is not None:
        doc["status_msg"] = status_msg
    if update_date is not None:
        doc["update_date"] = format_date(update_date)
    if prov is not None:
        doc["prov"] = prov
    if storage is None:
        del doc["storage"]
    if extra:
        for key, value in extra.items():
            doc.setdefault(key, value)
    return doc


def datatype_doc(row: Datatype) -> Document:
    doc = {"_id": row.id, **_columns(row, "name", "desc"), **_dates(row, "create_date"), "__v": 0}
    return _merge(doc, row.extra, lists=("files", "datatype_tags", "admins", "uis"))


def release_doc(row: Release) -> Document:
    # Key order as brainlife.io serves releases (the document's `jq .[0].releases` shows it);
    # `desc` only when set, like mongoose leaves out unset fields.
    doc = {"removed": row.removed, "_id": row.id, "name": row.name, **_dates(row, "create_date")}
    if row.desc:
        doc["desc"] = row.desc
    return _merge(doc, row.extra)


def pub_doc(row: Publication) -> Document:
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "project": row.project_id,
        **_columns(row, "name", "desc", "doi", "license", "removed"),
        "create_date": format_date(row.create_date),
        "releases": [release_doc(r) for r in sorted(row.releases, key=lambda r: r.pos)],
        "__v": 0,
    }
    return _merge(doc, row.extra, lists=("authors", "contributors", "fundings", "tags"))


class ReleaseFacts(Protocol):
    """A release made or previewed (`services.publishing.ReleaseOutcome`)."""

    @property
    def pub(self) -> Publication: ...
    @property
    def release(self) -> Release | None: ...
    @property
    def name(self) -> str: ...
    @property
    def desc(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def sets(self) -> list[dict[str, Any]]: ...
    @property
    def count(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def subjects(self) -> int: ...
    @property
    def sessions(self) -> int: ...


def release_outcome_doc(outcome: ReleaseFacts) -> Document:
    """Ours (`POST /pub/release/:id`): `{dry_run, pub, release, count, size, subjects,
    sessions}`; `release` is the release's document (for a dry run: what it would be, without
    `_id`)."""
    if outcome.release is not None:
        release = release_doc(outcome.release)
    else:
        release = {"removed": False, "name": outcome.name, "sets": outcome.sets}
        if outcome.desc:
            release["desc"] = outcome.desc
        release.update(subjects=outcome.subjects, sessions=outcome.sessions)
    return {
        "dry_run": outcome.dry_run,
        "pub": outcome.pub.id,
        "release": release,
        "count": outcome.count,
        "size": outcome.size,
        "subjects": outcome.subjects,
        "sessions": outcome.sessions,
    }


def task_doc(row: Task) -> Document:
    doc: Document = {
        "_id": row.id,
        "user_id": row.user_id,
        "_group_id": row.group_id,
        **_columns(row, "instance_id", "service", "service_branch", "name", "desc", "status"),
        **_columns(row, "status_msg", "config"),
        **_dates(row, "create_date", "start_date", "finish_date", "update_date"),
        "__v": 0,
    }
    for key in ("start_date", "finish_date", "update_date", "service_branch", "status_msg"):
        if doc[key] is None:
            del doc[key]
    return _merge(doc, row.extra)


def archive_task_doc(job: FinalizeJob) -> Document:
    """`finalize-upload`'s answer `{archive_task}`: brainlife names the task that archives the
    upload; ours is the finalize job (`state` as an amaretti status)."""
    status = {"pending": "requested", "running": "running"}.get(job.state, job.state)
    if status == "done":
        status = "finished"
    doc: Document = {
        "_id": job.id,
        "name": "finalize-upload",
        "service": "bl-serve/finalize",
        "status": status,
        "dataset_id": job.dataset_id,
        "deps_config": [{"task": job.task_id, "subdirs": [job.folder] if job.folder else []}],
        **_dates(job, "create_date", "update_date"),
    }
    if job.error:
        doc["status_msg"] = job.error
    return {"archive_task": doc}


def task_upload_doc(received: Any) -> Document:
    """`POST /task/upload/:id`'s answer (`services.taskupload.Received`)."""
    doc: Document = {
        "message": "File successfully uploaded",
        "task_id": received.task_id,
        "path": received.path,
        "bytes": received.bytes,
    }
    if received.unpacked is not None:
        u = received.unpacked
        doc["unpacked"] = {
            "files": u.files,
            "folders": u.folders,
            "links": u.links,
            "bytes": u.bytes,
        }
    return doc


def task_submitted_doc(row: Task) -> Document:
    """`POST /task`'s answer, as amaretti's."""
    return {"message": "Task successfully registered", "task": task_doc(row)}


def edited_dataset_doc(doc: Document) -> Document:
    """`PUT /dataset/:id`'s answer: the object's document with brainlife's `_canedit`."""
    return {**doc, "_canedit": True}


def removed_doc(count: int) -> Document:
    """`DELETE /dataset/:id`'s answer, as brainlife's."""
    return {"status": "ok", "removed": count}


def dataset_event_doc(row: DatasetEvent) -> Document:
    return {
        "dataset_id": row.dataset_id,
        "user_id": row.sub,
        "date": format_date(row.at),
        "action": row.action,
        "changes": row.changes,
    }


def render(
    rows: Iterable[Any], to_doc: Any, projection: Projection | None = None
) -> list[Document]:
    """Documents for rows, with a `select` projection applied."""
    docs = [to_doc(row) for row in rows]
    if projection is not None:
        docs = [projection.apply(d) for d in docs]
    return docs


def page(
    name: str, docs: list[Document], *, count: int | None = None, size: int | None = None
) -> Document:
    """A list route's envelope: `{<name>: [...], "count": n}` (and `size`, the total bytes of a
    data-object listing); amaretti's task list has no `count`."""
    doc: Document = {name: docs}
    if count is not None:
        doc["count"] = count
    if size is not None:
        doc["size"] = size
    return doc


class _Found(Protocol):
    rows: list[Any]
    count: int | None


def listing(
    name: str, found: _Found, to_doc: Any, projection: Projection | None, *, counted: bool = True
) -> Document:
    """A list route's answer: a service's page of rows as documents, `select` applied, in the
    envelope (with the number of all matches, unless the route has none: amaretti's lists)."""
    return page(
        name, render(found.rows, to_doc, projection), count=found.count if counted else None
    )


def health_doc() -> Document:
    return {"status": "ok", "messages": [], "reports": {}}


# --- accounts and tokens -----------------------------------------------------------------------


def claims_doc(user: User, gids: list[int]) -> Document:
    """A token's claims, as brainlife signs them (`gids`: see `services.auth.gids_for`)."""
    return {
        "scopes": user.scopes or {},
        "sub": user.sub,
        "gids": gids,
        "profile": {
            "username": user.username,
            "email": user.email,
            "fullname": user.fullname,
            "aup": True,
        },
    }


def login_doc(jwt: str, sub: int) -> Document:
    return {"message": "Login Success", "jwt": jwt, "sub": sub}


def refresh_doc(jwt: str) -> Document:
    return {"jwt": jwt}


def _account(user: User) -> Document:
    return _columns(user, "sub", "username", "fullname", "email", "active")


def user_doc(user: User, *, admin: bool) -> Document:
    """An account as an archive admin sees it (never the password hash)."""
    return {
        **_account(user),
        "admin": admin,
        "scopes": user.scopes or {},
        **_dates(user, "create_date"),
    }


def group_doc(group: Group, members: Any) -> Document:
    """brainlife's auth group: `admins` and `members` as subs (`services.accounts.Members`)."""
    return {
        **_columns(group, "id", "name", "desc", "active"),
        "admins": list(members.admins),
        "members": list(members.members),
    }


def group_created_doc(group: Document) -> Document:
    """`POST /group`'s answer."""
    return {"message": "group created", "group": group}


def participants_doc(table: Any) -> Document:
    """A project's participants table (`services.participants.Table`)."""
    return {
        "project": table.project,
        "subjects": table.subjects,
        "columns": table.columns,
        "update_date": format_date(table.update_date),
    }


def token_doc(row: AuthToken) -> Document:
    """A recorded token (its id and dates, never the token itself)."""
    return {
        **_columns(row, "jti", "sub", "label"),
        **_dates(row, "issued", "expires", "revoked"),
    }


def signup_doc(jwt: str, sub: int) -> Document:
    return {"message": "Successfully registered", "jwt": jwt, "sub": sub}


def me_doc(user: User) -> Document:
    """The caller's own account: whether a password is set, never its hash."""
    doc = _account(user)
    doc.update(
        scopes=user.scopes, profile=user.profile, password_hash=user.password_hash is not None
    )
    return doc


def profile_doc(user: User) -> Document:
    """The safe, public fields of a user (never the password hash or private profile)."""
    doc = _account(user)
    doc["profile"] = {"public": (user.profile or {}).get("public", {})}
    return doc


# --- our manifests -----------------------------------------------------------------------------


class FileFacts(Protocol):
    """A file as a manifest lists it (a stored tar member, a task file)."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


def manifest_files(files: Iterable[FileFacts]) -> list[ManifestFile]:
    return [ManifestFile(path=f.path, size=f.size, sha256=f.sha256) for f in files]


def manifest_doc(dataset_id: str, tar_size: int, files: Iterable[FileFacts]) -> Manifest:
    """`wire.Manifest`: a data object's files in tar order, and its tar's exact length."""
    return Manifest(_id=dataset_id, tar_size=tar_size, files=manifest_files(files))


class ObjectFacts(Protocol):
    """What a data object's manifest says (`services.downloads.ObjectFiles`)."""

    @property
    def dataset_id(self) -> str: ...
    @property
    def tar_size(self) -> int: ...
    @property
    def members(self) -> Sequence[FileFacts]: ...


class MissingFacts(Protocol):
    """An id without a manifest (`services.downloads.Missing`)."""

    @property
    def id(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...


def manifests_doc(found: Iterable[ObjectFacts], missing: Iterable[MissingFacts]) -> Manifests:
    """`wire.Manifests`: the manifests found, in the order asked, and every other id with the
    reason (`not-found`, `forbidden`, `not-stored`) and what the single route would answer."""
    return Manifests(
        manifests=[manifest_doc(o.dataset_id, o.tar_size, o.members) for o in found],
        missing=[ManifestMissing(_id=m.id, reason=m.reason, message=m.message) for m in missing],
    )


def task_manifest_doc(
    task_id: str, path: str, *, folder: bool, files: Iterable[FileFacts]
) -> TaskManifest:
    """`wire.TaskManifest`: what a download of a task path holds, and whether it is a file or a
    folder (said, never left to be guessed: a folder `out/x` holding one file `x` looks like a
    file otherwise)."""
    return TaskManifest(
        _id=task_id, path=path, type="folder" if folder else "file", files=manifest_files(files)
    )


# --- apps and resources ------------------------------------------------------------------------


def app_doc(row: App, *, canedit: bool = False) -> Document:
    """brainlife's App document (brainlife-server.md §1.5); `_canedit` is the caller's."""
    doc = {
        "_id": row.id,
        **_columns(row, "name", "desc", "github", "github_branch", "doi", "removed", "user_id"),
        **_dates(row, "create_date"),
        "inputs": row.inputs or [],
        "outputs": row.outputs or [],
        "config": row.config or {},
        "projects": [p.project_id for p in row.projects],
        "__v": 0,
        "_canedit": canedit,
    }
    return _merge(doc, row.extra, lists=("admins", "tags", "contributors"))


def resource_doc(row: Resource) -> Document:
    """amaretti's resource document, without any secret (this catalogue holds none)."""
    doc = {
        "_id": row.id,
        **_columns(row, "name", "type", "status", "status_msg", "active", "user_id"),
        "gids": sorted(g.gid for g in row.groups),
        "config": row.config or {},
        **_dates(row, "create_date"),
        "__v": 0,
    }
    return _merge(doc, row.extra)


def instance_doc(row: Instance) -> Document:
    doc = {
        "_id": row.id,
        **_columns(row, "user_id", "group_id", "name", "desc", "status", "config"),
        **_dates(row, "create_date", "update_date"),
        "__v": 0,
    }
    return doc


def upload_doc(upload: Upload, received: dict[int, int]) -> UploadSession:
    """An upload session and where each of its files stands (`received`: bytes held per file)."""
    files: list[UploadFileState] = []
    for f in upload.files:
        state: UploadFileState = {
            "name": f.path,
            "size": f.size,
            "sha256": f.sha256 or None,  # "" until declared (`services.uploads`)
            "state": "stored" if f.stored else "partial",
            "received": f.size if f.stored else received.get(f.pos, 0),
        }
        if f.file_id is not None:
            state["id"] = f.file_id
        files.append(state)
    return {
        "_id": upload.id,
        "project": upload.project_id,
        "datatype": upload.datatype_id,
        "status": "finalized" if upload.status == "finalized" else "open",
        "dataset": upload.dataset_id,
        "files": files,
        "expires": format_date(upload.expires) or "",
    }


# --- project files (brainlife's S3-shaped listing) ---------------------------------------------


def file_entry_doc(name: str, key: str, size: int, mtime: Any, sha256: str) -> FileEntry:
    """One file of a project's files listing (`Name` relative to the listed folder)."""
    return {
        "Name": name,
        "Key": key,
        "Size": size,
        "LastModified": format_date(mtime) or "",
        "ETag": sha256,
    }


def file_listing_doc(
    objects: list[FileEntry], folders: list[Any], truncated: bool, token: str, prefix: str
) -> FileListing:
    """A page of a project's files listing (`services.projectfiles.list_files`)."""
    return {
        "objects": objects,
        "folders": folders,
        "isTruncated": truncated,
        "nextContinuationToken": token,
        "prefix": prefix,
    }
