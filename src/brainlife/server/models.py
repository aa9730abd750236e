"""The archive's tables (SQLAlchemy 2.0).

Design: each brainlife collection is a table whose frequently filtered fields are real, indexed
columns (project, datatype, status, removed, meta.subject …); arrays that are filtered on
(tags, datatype_tags, publications, project roles) are association tables so that `$all`, `$in`
and `$nin` become indexed EXISTS sub-queries; free-form documents (`meta`, `prov`, `config`) and
the remaining fields (`extra`) are JSON columns. `brainlife.server.documents` turns rows back into
brainlife's wire documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from brainlife.server.db import Base

OID = String(24)


def _array(child: str) -> Any:
    """One of brainlife's arrays inside a document (a project's roles, a data object's tags, a
    publication's releases, …) as rows of `child`: in their `pos` order, saved and deleted with
    the parent, and loaded with it (`selectin`: one query per page of parents, not per row)."""
    return relationship(order_by=f"{child}.pos", cascade="all, delete-orphan", lazy="selectin")


class User(Base):
    __tablename__ = "users"

    sub: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(256), unique=True)
    fullname: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: brainlife scopes, e.g. {"warehouse": ["user", "admin"]}
    scopes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {public, private}
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# unique ignoring case, as `services.accounts` compares them (migration 0019)
Index("ux_users_username_lower", func.lower(User.username), unique=True)
Index("ux_users_email_lower", func.lower(User.email), unique=True)


class LoginFailure(Base):
    """One failed login (see `services.auth`): `username` holds the account it counts against
    (`sub:<n>` for an existing account, whether named by username or e-mail; `name:<typed>`
    otherwise) and `client` the address it came from."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(256), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True, server_default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuthToken(Base):
    """A token the archive signed (its `jti` claim): tokens can be listed and revoked before
    they expire (`services.accounts`). A token whose id is not here, or revoked, is refused."""

    __tablename__ = "auth_tokens"

    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    sub: Mapped[int] = mapped_column(Integer, index=True)
    issued: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: what it was made by ("login", "refresh", "signup")
    label: Mapped[str] = mapped_column(String(128), default="")


class Group(Base):
    """An auth group; `projects.group_id` and `tasks._group_id` point here."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(256), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    sub: Mapped[int] = mapped_column(ForeignKey("users.sub"), primary_key=True)
    #: "admin" or "member"
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    __table_args__ = (Index("ix_group_members_sub", "sub"),)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, unique=True)
    user_id: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(512), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    #: "public" or "private"
    access: Mapped[str] = mapped_column(String(16), default="private")
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: everything else of brainlife's project document (avatar, agreements, stats, …)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    roles: Mapped[list[ProjectRole]] = _array("ProjectRole")


class ProjectRole(Base):
    """One entry of a project's `admins`, `members` or `guests` list (subs as strings)."""

    __tablename__ = "project_roles"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    #: "admins", "members" or "guests"
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    sub: Mapped[str] = mapped_column(String(32), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_project_roles_sub_project", "sub", "project_id"),)


class Participants(Base):
    """A project's participants table (brainlife's `participant` document): `subjects` is a
    list of rows (`{"subject": "01", "age": "30", …}`, values as strings), `columns` describes
    the columns (BIDS participants.json)."""

    __tablename__ = "participants"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    subjects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    update_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Datatype(Base):
    __tablename__ = "datatypes"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    desc: Mapped[str] = mapped_column(Text, default="")
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: files, datatype_tags, admins, validator, bids, …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Dataset(Base):
    """A data object."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    datatype_id: Mapped[str] = mapped_column(ForeignKey("datatypes.id"))
    user_id: Mapped[str] = mapped_column(String(32), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    storage: Mapped[str | None] = mapped_column(String(64))
    #: storing | stored | failed | removed
    status: Mapped[str] = mapped_column(String(16), default="storing")
    status_msg: Mapped[str | None] = mapped_column(Text)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: bytes of the object's tar (what /dataset/download sends)
    size: Mapped[int | None] = mapped_column(BigInteger)
    # meta.subject / session / run, promoted for indexes (brainlife keeps them as strings)
    subject: Mapped[str | None] = mapped_column(String(128))
    session: Mapped[str | None] = mapped_column(String(128))
    run: Mapped[str | None] = mapped_column(String(128))
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prov: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: storage_config, archive_task_id, download_count, product, …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    tags: Mapped[list[DatasetTag]] = _array("DatasetTag")
    datatype_tags: Mapped[list[DatasetDatatypeTag]] = _array("DatasetDatatypeTag")
    publications: Mapped[list[DatasetPublication]] = _array("DatasetPublication")

    __table_args__ = (
        # listing indexes: `id` orders the page after the equalities; `size` makes the
        # count/size of a listing index-only (brainlife.server.query)
        Index(
            "ix_datasets_project_removed_datatype",
            "project_id",
            "removed",
            "datatype_id",
            "id",
            "size",
        ),
        Index("ix_datasets_project_removed_id", "project_id", "removed", "id", "size"),
        # (SQLite also gets a partial expression index on json_extract(prov, '$.task_id'):
        # see migration 0001)
        # project + subject (+ datatype): more equalities than the index above, so that the
        # planner prefers it even without ANALYZE statistics; `id` orders the page
        Index(
            "ix_datasets_project_subject", "project_id", "subject", "removed", "datatype_id", "id"
        ),
        # `bl data query -d X` across projects: page order and count/size from the index
        Index("ix_datasets_datatype", "datatype_id", "removed", "id", "project_id", "size"),
        Index("ix_datasets_subject", "subject"),
        Index("ix_datasets_status", "status"),
        Index("ix_datasets_create_date", "create_date"),
    )


class _DatasetArray:
    """A row of one of a data object's filtered arrays: its value (a primary key column of the
    table) and its position in the array (`pos`); rows go with their object."""

    # first, as in the tables (migration 0001): the primary key is (dataset_id, value)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, sort_order=-1
    )
    pos: Mapped[int] = mapped_column(Integer, default=0, sort_order=1)


class DatasetTag(_DatasetArray, Base):
    __tablename__ = "dataset_tags"

    tag: Mapped[str] = mapped_column(String(256), primary_key=True)

    __table_args__ = (Index("ix_dataset_tags_tag", "tag", "dataset_id"),)


class DatasetDatatypeTag(_DatasetArray, Base):
    __tablename__ = "dataset_datatype_tags"

    tag: Mapped[str] = mapped_column(String(256), primary_key=True)

    __table_args__ = (Index("ix_dataset_datatype_tags_tag", "tag", "dataset_id"),)


class DatasetPublication(_DatasetArray, Base):
    """`dataset.publications`: the release ids the object belongs to."""

    __tablename__ = "dataset_publications"

    release_id: Mapped[str] = mapped_column(String(24), primary_key=True)

    __table_args__ = (Index("ix_dataset_publications_release", "release_id", "dataset_id"),)


class DatasetCount(Base):
    """How many data objects (and how many bytes) each (project, datatype, removed) holds, and
    how many of them are published (have at least one `dataset_publications` row).

    Maintained by database triggers (migration 0002: SQLite DDL; PostgreSQL would need its own
    trigger functions), never by application code. `count`/`size` of a listing whose `find`
    only pins project, datatype and removed are sums over these rows
    (`brainlife.server.services.dataset_totals`). `size` sums `coalesce(datasets.size, 0)`.
    """

    __tablename__ = "dataset_counts"

    project_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    datatype_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    removed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the objects of `count` that are published (readable through a release)
    pub_count: Mapped[int] = mapped_column(BigInteger, default=0)
    pub_size: Mapped[int] = mapped_column(BigInteger, default=0)


class DatasetReleaseCount(Base):
    """Per release: how many of its data objects (and bytes) each (project, datatype,
    removed) holds. Trigger-maintained like `DatasetCount`."""

    __tablename__ = "dataset_release_counts"

    release_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    datatype_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    removed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class DatasetSubjectCount(Base):
    """Per (project, removed, subject, datatype): how many data objects, and how many of them
    are published; a missing subject is "". The project page's subjects × datatypes matrix
    reads its pages from here (`brainlife.server.services.browse`). Trigger-maintained like
    `DatasetCount` (migrations 0013_web_matrix, 0015_pg_subject_counts), never by application
    code."""

    __tablename__ = "dataset_subject_counts"

    project_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    removed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    datatype_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    pub_count: Mapped[int] = mapped_column(BigInteger, default=0)


class DatasetTagSearch(Base):
    """Every tag (`kind` "t") and datatype tag (`kind` "d") of every data object, with the
    object's project, removed flag and datatype, in one index: the objects of a project (and
    datatype) having a tag are one index range, so a listing that pins project/datatype and
    a tag counts its matches without visiting every object of the project.

    Maintained by database triggers (migration 0003: SQLite DDL; PostgreSQL would need its own
    trigger functions), never by application code: its rows are exactly the join of
    `dataset_tags`/`dataset_datatype_tags` with `datasets`. Read by
    `brainlife.server.services.dataset_totals.tag_totals`.
    """

    __tablename__ = "dataset_tag_search"

    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    tag: Mapped[str] = mapped_column(String(256), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    removed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    datatype_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    #: the object's `size` (migration 0017_pg_listing): a tag listing's `size` from the range
    size: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = ({"sqlite_with_rowid": False},)


class _BlobFile:
    """A file of a tree whose bytes are a blob of the content store (a data object's manifest,
    a task's outputs in an object store, a project's files): its path in the tree, after the
    owner's id in the primary key (as in the tables: migrations 0001, 0011, 0014), and the
    blob's sha256 (indexed: which rows name a blob) and size."""

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class DatasetFile(_BlobFile, Base):
    """One file of a stored data object: the manifest. Bytes live in the content store."""

    __tablename__ = "dataset_files"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    pos: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[int] = mapped_column(Integer, default=0o644)


class Publication(Base):
    __tablename__ = "publications"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(512), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    doi: Mapped[str | None] = mapped_column(String(256))
    license: Mapped[str | None] = mapped_column(String(64))
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: authors, contributors, fundings, tags, readme, paper_doi, relatedPapers …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    releases: Mapped[list[Release]] = _array("Release")


class Release(Base):
    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    pub_id: Mapped[str] = mapped_column(ForeignKey("publications.id"), index=True)
    pos: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(256), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: sets, apps, subjects, sessions, gaarchives
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        # a release's name is used once in its publication (`services.publishing`, which also
        # refuses the names of removed releases); releases removed on brainlife.io may share a
        # name (often ""), so the index leaves them out
        Index(
            "ix_releases_pub_name",
            "pub_id",
            "name",
            unique=True,
            sqlite_where=text("removed = 0"),
            postgresql_where=text("removed = false"),
        ),
    )


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), default="")
    group_id: Mapped[int | None] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(512), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str | None] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Task(Base):
    """An amaretti task. Its working folder is `<data_dir>/tasks/<id>/`."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), default="")
    #: brainlife's `_group_id` (= the project's group_id)
    group_id: Mapped[int | None] = mapped_column(Integer)
    instance_id: Mapped[str | None] = mapped_column(String(24), index=True)
    service: Mapped[str] = mapped_column(String(256), default="")
    service_branch: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512), default="")
    desc: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="requested")
    status_msg: Mapped[str | None] = mapped_column(Text)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finish_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    update_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: gids, deps_config, resource_id, commit_id, remove_date, …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_tasks_group_service_status", "group_id", "service", "status"),
        Index("ix_tasks_user", "user_id"),
        Index("ix_tasks_create_date", "create_date"),
    )


class App(Base):
    """A brainlife App (brainlife-server.md §1.5): what a task runs. `inputs`, `outputs` and
    `config` are kept as brainlife's documents (JSON), searched with `$elemMatch`; `projects`
    (who may see a private app) is an association table so that access is one indexed test."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    desc: Mapped[str] = mapped_column(Text, default="")
    #: "org/repo": amaretti's `service`
    github: Mapped[str] = mapped_column(String(256), index=True)
    github_branch: Mapped[str | None] = mapped_column(String(128))
    doi: Mapped[str | None] = mapped_column(String(256), index=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[str] = mapped_column(String(32), default="")
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: admins, tags, avatar, stats, contributors, deprecated_by, …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    projects: Mapped[list[AppProject]] = _array("AppProject")

    __table_args__ = (
        # one live app per service (`services.apps.create_app`; migration 0019)
        Index(
            "ux_apps_github_live",
            "github",
            unique=True,
            sqlite_where=text("NOT removed"),
            postgresql_where=text("NOT removed"),
        ),
    )


class AppProject(Base):
    """One entry of an app's `projects` list: an app with none is public."""

    __tablename__ = "app_projects"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    project_id: Mapped[str] = mapped_column(OID, primary_key=True, index=True)
    pos: Mapped[int] = mapped_column(Integer, default=0)


class Resource(Base):
    """An amaretti compute resource (where tasks run). This archive runs no tasks: the
    catalogue says where the archived tasks ran and answers `bl resource query`."""

    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    #: "ssh" (brainlife's only kind today)
    type: Mapped[str] = mapped_column(String(32), default="ssh")
    status: Mapped[str | None] = mapped_column(String(32))
    status_msg: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the owner; the groups allowed to use it are in `resource_groups`
    user_id: Mapped[str] = mapped_column(String(32), default="")
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: {hostname, username, services: [{name, score}], maxtask, desc, …}: never a secret
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: citation, avatar, stats, …
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    groups: Mapped[list[ResourceGroup]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class ResourceGroup(Base):
    """One of a resource's `gids` (group 1 is everybody's)."""

    __tablename__ = "resource_groups"

    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    gid: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


class FinalizeJob(Base):
    """Storing an uploaded data object's files (`services.finalize`): recorded in the same
    transaction as the object (status `storing`), run by the server's job runner, resumed after
    a restart until it is `done` (the object `stored`) or `failed` (the object `failed`, with
    `status_msg` saying why). `id` is what `finalize-upload` answers as its `archive_task`."""

    __tablename__ = "finalize_jobs"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), unique=True
    )
    #: one job per task (a task's upload is finalized once: `services.finalize._existing`)
    task_id: Mapped[str] = mapped_column(String(24), index=True, unique=True)
    #: the folder of the task holding the object's files ("" for the whole task folder)
    folder: Mapped[str] = mapped_column(String(1024), default="")
    #: pending | running | done | failed
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatasetEvent(Base):
    """One change of a data object by a user (`services.curation`), appended, never updated:
    who (`sub`), when (`at`), what (`action`: update | remove | restore) and `changes`
    (`{field: {"from": old, "to": new}}`). The object's `prov` is never touched by curation."""

    __tablename__ = "dataset_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    sub: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Upload(Base):
    """A resumable upload session (`services.uploads`): a data object declared with its files,
    whose bytes are staged under `<data_dir>/uploads/<id>/` until it is finalized.

    `status`: `open`, then `finalized` (`dataset_id` set, in the same commit as the object).
    Open sessions idle past `expires` are removed with their staged bytes at start-up."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(OID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    datatype_id: Mapped[str] = mapped_column(ForeignKey("datatypes.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    dataset_id: Mapped[str | None] = mapped_column(String(24))
    #: desc, meta, tags, datatype_tags of the object to create
    doc: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    create_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    files: Mapped[list[UploadFile]] = _array("UploadFile")

    __table_args__ = (Index("ix_uploads_user", "user_id", "status"),)


class TaskOutputFile(_BlobFile, Base):
    """One file of a task's outputs when bytes live in an object store (`bl serve --store
    s3://…`, `storetaskfiles`): a path of the task folder naming a content-store blob. Folders
    are implied by the paths. With the local store, task outputs are plain folders instead."""

    __tablename__ = "task_output_files"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[int] = mapped_column(Integer, default=0o644)
    #: the file's mtime in nanoseconds (tar headers carry whole seconds)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)


class ArchiveMigration(Base):
    """A database that `bl admin migrate` copies an embedded archive into (`migrate_archive`):
    which archive (its signing key's sha256), so an interrupted run may be resumed on it and no
    other archive's migration lands in it."""

    __tablename__ = "archive_migrations"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class UploadFile(Base):
    """One declared file of an upload; `stored` once its bytes, checked against `sha256`, are
    in the content store (`received` bytes are otherwise in its staged file)."""

    __tablename__ = "upload_files"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True
    )
    pos: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[str | None] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    stored: Mapped[bool] = mapped_column(Boolean, default=False)


class ProjectFile(_BlobFile, Base):
    """One plain file of a project's file tree (brainlife's "S3 project files"), beside its data
    objects: a relative path naming a blob of the content store (`services.projectfiles`)."""

    __tablename__ = "project_files"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    mtime: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: who put it (a user's sub)
    user_id: Mapped[str] = mapped_column(String(32), default="")
