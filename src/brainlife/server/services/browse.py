"""What the web pages (`brainlife.server.web`) show beyond the API's listings: one project with its
subjects × datatypes matrix, one data object with its files and releases, publications with their
releases, and the names behind ids.

Access is the API's (`brainlife.server.access`), decided in each query: a project page needs the
project to be listable (`listable_projects`); its counts and matrix count only the objects the
visitor may see (`browsable_datasets`: the API's rule, or for an anonymous visitor public and
published objects). A project or object the visitor may not see is a 404 with the same message as
an unknown id, so pages do not tell private ids from unknown ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brainlife.server.access import (
    browsable_datasets,
    listable_projects,
    readable_projects,
    writable_projects,
)
from brainlife.server.errors import NotFound
from brainlife.server.models import (
    Dataset,
    DatasetCount,
    DatasetFile,
    DatasetSubjectCount,
    Datatype,
    Project,
    Publication,
    Release,
    User,
)
from brainlife.server.principal import Principal
from brainlife.wire import is_object_id

PROJECT_NOT_FOUND = "There is no project with this id, or you may not see it."
DATASET_NOT_FOUND = "There is no data object with this id, or you may not see it."


#: subjects (rows of the matrix) one project page shows; `matrix_after` pages through the rest
MATRIX_SUBJECTS = 50
#: files of one data object its page lists (in tar order; the object's tar has them all)
FILES_SHOWN = 500


@dataclass
class ProjectPage:
    project: Project
    #: whether the visitor may read every object (public, or a role); otherwise only published
    readable: bool
    count: int
    size: int
    #: subject -> datatype id -> object count (subjects sorted; "" for objects without one), at
    #: most `MATRIX_SUBJECTS` subjects from `matrix_after` on
    matrix: dict[str, dict[str, int]]
    #: the datatypes of the project's objects, by name
    datatypes: list[Datatype]
    #: role ("admins", "members", "guests") -> [(sub, username, fullname)]
    people: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    #: the last subject shown when more follow (the next page's `matrix_after`)
    matrix_next: str | None = None
    #: whether the visitor may upload data objects into it (`access.writable_projects`)
    writable: bool = False
    #: how many subjects (named ones: not "") the visible objects have (`subject_count`)
    subjects: int = 0


def get_project(
    *,
    session: Session,
    principal: Principal | None,
    project_id: str,
    matrix: bool = True,
    matrix_after: str | None = None,
) -> ProjectPage:
    """A project the visitor may list, with the counts of the objects they may see and (with
    `matrix`) a page of its subjects × datatypes matrix."""
    found = None
    if is_object_id(project_id):
        # the visitor's rights come with the row (one statement, not three)
        found = session.execute(
            select(
                Project,
                readable_projects(principal).label("readable"),
                writable_projects(principal).label("writable"),
            ).where(Project.id == project_id, listable_projects(principal))
        ).first()
    if found is None:
        raise NotFound(PROJECT_NOT_FOUND)
    project, readable, writable = found[0], bool(found[1]), bool(found[2])
    count, size = _totals(session, project.id, readable)
    table: dict[str, dict[str, int]] = {}
    following = None
    subjects = 0
    if matrix:
        table, following = _matrix(session, principal, project.id, readable, matrix_after)
        subjects = subject_count(session, project.id, readable=readable)
    datatypes = datatype_rows(session, _datatype_ids(session, principal, project.id, readable))
    subs = [r.sub for r in project.roles]
    names = user_names(session, subs)
    people: dict[str, list[tuple[str, str, str]]] = {"admins": [], "members": [], "guests": []}
    for role in sorted(project.roles, key=lambda r: r.pos):
        username, fullname = names.get(role.sub, ("", ""))
        people.setdefault(role.role, []).append((role.sub, username, fullname))
    return ProjectPage(
        project, readable, count, size, table, datatypes, people, following, writable, subjects
    )


def upload_datatypes(session: Session) -> list[dict[str, Any]]:
    """Every datatype with the files an upload gives (`{id, name, files: [{id, filename |
    dirname, required, desc}]}`, by name), for the project page's upload form."""
    out = []
    for dt in session.scalars(select(Datatype).order_by(Datatype.name)):
        files = []
        for spec in (dt.extra or {}).get("files") or []:
            if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                continue
            entry = {k: spec[k] for k in ("id", "filename", "dirname", "desc") if k in spec}
            entry["required"] = bool(spec.get("required"))
            files.append(entry)
        out.append({"id": dt.id, "name": dt.name, "files": files})
    return out


def _datatype_ids(
    session: Session, principal: Principal | None, project_id: str, readable: bool
) -> list[str]:
    """The datatypes the project's visible objects have, from the aggregates (`DatasetCount`,
    trigger-kept on every engine: migrations 0002 and 0012)."""
    c = DatasetCount
    having = c.count if readable else c.pub_count
    rows = session.scalars(
        select(c.datatype_id)
        .where(c.project_id == project_id, c.removed.is_(False), having > 0)
        .distinct()
    )
    return list(rows)


def _totals(session: Session, project_id: str, readable: bool) -> tuple[int, int]:
    """(count, bytes) of the project's objects the visitor sees, from the trigger-kept
    aggregates (`DatasetCount`)."""
    c = DatasetCount
    count_col, size_col = (c.count, c.size) if readable else (c.pub_count, c.pub_size)
    row = session.execute(
        select(func.coalesce(func.sum(count_col), 0), func.coalesce(func.sum(size_col), 0))
        .where(c.project_id == project_id)
        .where(c.removed.is_(False))
    ).one()
    return int(row[0]), int(row[1])


def subject_count(session: Session, project_id: str, *, readable: bool) -> int:
    """How many distinct subjects the project's visible objects (all of them when `readable`,
    else the published ones) have, not counting objects without a subject. One COUNT DISTINCT
    in SQL over the trigger-kept per-subject counts (`DatasetSubjectCount`: one primary-key
    range of subjects × datatypes rows), whatever the number of objects."""
    c = DatasetSubjectCount
    n = c.count if readable else c.pub_count
    found = session.scalar(
        select(func.count(func.distinct(c.subject))).where(
            c.project_id == project_id, c.removed.is_(False), n > 0, c.subject != ""
        )
    )
    return int(found or 0)


def _matrix(
    session: Session,
    principal: Principal | None,
    project_id: str,
    readable: bool,
    after: str | None,
) -> tuple[dict[str, dict[str, int]], str | None]:
    """brainlife's subjects × datatypes table for `MATRIX_SUBJECTS` subjects after `after`: how
    many objects of each datatype each subject has, and the last subject when more follow.

    Read from the trigger-kept per-subject counts (`_matrix_from_counts`; migrations
    0013_web_matrix and 0015_pg_subject_counts) instead of the objects, so a project of 300,000
    objects costs what a page of it holds. When the whole project is readable every object
    counts (the access test is the project's, decided once in `get_project`); otherwise the
    published ones."""
    return _matrix_from_counts(session, project_id, readable, after)


def _matrix_from_counts(
    session: Session, project_id: str, readable: bool, after: str | None
) -> tuple[dict[str, dict[str, int]], str | None]:
    """`_matrix` from `DatasetSubjectCount`: a page is about (subjects × datatypes) rows of one
    primary-key range, whatever the number of objects behind them. A not readable project
    shows its published objects (`pub_count`), as `_totals` counts them.

    One statement (the page's subjects, one more to know whether others follow, as a
    subquery) read as plain rows in key order: this is the project page's largest read, about
    a thousand rows, and the ORM's row handling cost more than SQLite's walk."""
    c = DatasetSubjectCount
    n = c.count if readable else c.pub_count
    where = [c.project_id == project_id, c.removed.is_(False), n > 0]
    first = select(c.subject).where(*where)
    if after is not None:
        first = first.where(c.subject > after)
    page = first.group_by(c.subject).order_by(c.subject).limit(MATRIX_SUBJECTS + 1)
    rows = session.connection().execute(
        select(c.subject, c.datatype_id, n)
        .where(*where, c.subject.in_(page.scalar_subquery()))
        .order_by(c.subject, c.datatype_id)
    )
    matrix: dict[str, dict[str, int]] = {}
    for subject, datatype_id, count in rows:
        counts = matrix.get(subject)
        if counts is None:
            if len(matrix) == MATRIX_SUBJECTS:  # the one more: others follow
                return matrix, list(matrix)[-1]
            counts = matrix[subject] = {}
        counts[datatype_id] = int(count)
    return matrix, None


def datatype_rows(session: Session, ids: Iterable[str]) -> list[Datatype]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    return list(
        session.scalars(select(Datatype).where(Datatype.id.in_(wanted)).order_by(Datatype.name))
    )


def datatype_by_name(session: Session, name_or_id: str) -> Datatype | None:
    """A datatype by its name (`neuro/anat/t1w`) or id, as `bl data query -d` takes it."""
    if is_object_id(name_or_id):
        found = session.get(Datatype, name_or_id)
        if found is not None:
            return found
    return session.scalars(select(Datatype).where(Datatype.name == name_or_id)).first()


def datatype_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    return {d.id: d.name for d in datatype_rows(session, ids)}


def user_names(session: Session, subs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """sub (as a string) -> (username, fullname) of existing accounts."""
    numbers = sorted({int(s) for s in subs if str(s).isdigit()})
    if not numbers:
        return {}
    rows = session.execute(
        select(User.sub, User.username, User.fullname).where(User.sub.in_(numbers))
    )
    return {str(sub): (username, fullname) for sub, username, fullname in rows}


def project_names(
    session: Session, principal: Principal | None, ids: Iterable[str]
) -> dict[str, str]:
    """The names of the projects among `ids` the visitor may list (`listable_projects`): a
    publication or a published object is public, the unlisted private project it comes from
    stays unnamed (and unlinked) to outsiders."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Project.id, Project.name).where(Project.id.in_(wanted), listable_projects(principal))
    )
    return {pid: name for pid, name in rows}


@dataclass
class DatasetPage:
    dataset: Dataset
    datatype: Datatype | None
    #: the project's name, None when the visitor may not list the project (`project_names`)
    project_name: str | None
    files: list[DatasetFile]
    #: (publication, release) of each release the object belongs to
    releases: list[tuple[Publication, Release]]
    #: how many files the object has (`files` holds the first `FILES_SHOWN`)
    file_count: int = 0


def get_dataset(*, session: Session, principal: Principal | None, dataset_id: str) -> DatasetPage:
    """A data object the visitor may see, with its files (tar order) and releases."""
    dataset = None
    if is_object_id(dataset_id):
        dataset = session.scalars(
            select(Dataset).where(Dataset.id == dataset_id, browsable_datasets(principal))
        ).first()
    if dataset is None:
        raise NotFound(DATASET_NOT_FOUND)
    files = list(
        session.scalars(
            select(DatasetFile)
            .where(DatasetFile.dataset_id == dataset.id)
            .order_by(DatasetFile.pos)
            .limit(FILES_SHOWN)
        )
    )
    file_count = len(files)
    if file_count == FILES_SHOWN:
        file_count = (
            session.scalar(
                select(func.count())
                .select_from(DatasetFile)
                .where(DatasetFile.dataset_id == dataset.id)
            )
            or 0
        )
    release_ids = [p.release_id for p in dataset.publications]
    releases: list[tuple[Publication, Release]] = []
    if release_ids:
        rows = session.execute(
            select(Publication, Release)
            .join(Release, Release.pub_id == Publication.id)
            .where(Release.id.in_(release_ids))
            .order_by(Publication.create_date, Release.pos)
        )
        releases = [(pub, rel) for pub, rel in rows]
    return DatasetPage(
        dataset,
        session.get(Datatype, dataset.datatype_id),
        project_names(session, principal, [dataset.project_id]).get(dataset.project_id),
        files,
        releases,
        file_count,
    )


def get_pub(*, session: Session, pub_id: str) -> Publication:
    """A publication (public, as on brainlife.io) with its releases."""
    pub = session.get(Publication, pub_id) if is_object_id(pub_id) else None
    if pub is None:
        raise NotFound("There is no publication with this id.")
    return pub


def get_release(*, session: Session, release_id: str) -> tuple[Publication, Release]:
    row = None
    if is_object_id(release_id):
        row = session.execute(
            select(Publication, Release)
            .join(Release, Release.pub_id == Publication.id)
            .where(Release.id == release_id)
        ).first()
    if row is None:
        raise NotFound("There is no release with this id.")
    return row[0], row[1]


def summary(value: Any, limit: int = 200) -> str:
    """A short one-line text of a value (a description in a list)."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
