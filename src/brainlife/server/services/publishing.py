"""Creating publications and freezing releases (brainlife-server.md §1.4, §2.4).

Routes: `POST /pub` (create), `PUT /pub/:id` (metadata; and new releases the way brainlife's
UI makes them: the entries of `releases` without an `_id`), and ours, `POST /pub/release/:id`
(one release, with `dry_run`: the exact set it would freeze, nothing written).

**Who.** The project's admins (brainlife's `isadmin`) and site admins (`warehouse: admin`),
decided in SQL (`access.administered_projects`). A project the caller cannot see answers 404
as an unknown one; a publication (they are public) or a project it sees but does not
administer, 403. The creator is recorded (`user_id`) and, unless `authors` are given, is the
one author.

**A release** is brainlife's `doRelease`: for each of its `sets`, the data objects of the
publication's project that are not removed and match the set's `datatype`, `datatype_tags`
(all of them; `!tag`: not that tag), `tags` (the same) and `subjects` (any of them) get the
release's id in `publications`. Where we differ, and why:

- only `stored` objects are released (brainlife does not look at the status, so a release could
  freeze an object still storing, or failed, that can then never be downloaded);
- a release is frozen when it is made: brainlife runs `doRelease` again for every release on
  each `PUT`, so an object uploaded later that matches an old release's sets silently joins
  it. Here only new releases run; an existing release sent back must keep its name, and
  nothing else of it is read;
- a release that would hold no object is refused (404, nothing written), a name already used
  in the publication (removed releases included) is refused (409): names are how the document
  and the UI tell releases apart;
- sets take more filters (ours): `sessions`, `runs` and `ids`; a set without `datatype` takes
  every datatype. The stored sets keep brainlife's shape: one per datatype found, each with its
  `datatype` document, `count` and `size`.

The objects are frozen by one `INSERT … SELECT` into `dataset_publications`, whose triggers keep
the release aggregates (`DatasetReleaseCount`, `DatasetCount.pub_*`) exact; the release's
totals are then read back from what was inserted, so they describe exactly what was frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brainlife.server.access import administered_projects, listable_projects
from brainlife.server.db import QUERY_TIMEOUT
from brainlife.server.errors import BadRequest, Conflict, Forbidden, NotFound
from brainlife.server.ids import MAX_INT_ID, new_object_id
from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetPublication,
    DatasetTag,
    Datatype,
    Project,
    Publication,
    Release,
    User,
)
from brainlife.server.principal import Principal
from brainlife.server.services.releases import lock_project_objects
from brainlife.wire import is_object_id
from brainlife.wire.tags import parse_tag

#: limits of a publication's fields (characters, items)
PUB_TEXT_LIMITS = {
    "name": 512,
    "desc": 65_536,
    "license": 64,
    "doi": 256,
    "paper_doi": 256,
    "readme": 200_000,
}
MAX_PEOPLE = 200
MAX_PUB_TAGS = 100
MAX_FUNDINGS = 100
#: limits of a release
RELEASE_NAME_CHARS = 256
RELEASE_DESC_CHARS = 65_536
MAX_SETS = 64
MAX_SET_TAGS = 64
TAG_CHARS = 256
META_CHARS = 128
#: subjects, sessions, runs and ids of all the sets of one release together
MAX_FILTER_VALUES = 10_000
#: new releases in one `PUT /pub/:id`
MAX_NEW_RELEASES = 8
#: releases of one publication in all (its pages and documents list every one)
MAX_RELEASES = 100
#: seconds each statement of a release may take, instead of the request budget meant for
#: queries: a release of a whole large project writes and counts a row per object (100,000
#: objects: 6 s in all), and only the project's admins can ask for one
RELEASE_BUDGET = 300.0
_LONG = {QUERY_TIMEOUT: RELEASE_BUDGET}

# --- who may publish ---------------------------------------------------------------------


def _project_for_publishing(session: Session, principal: Principal, project_id: Any) -> Project:
    if not isinstance(project_id, str) or not is_object_id(project_id.lower()):
        raise BadRequest("project: give the id of the project to publish from (24 hex digits).")
    row = session.execute(
        select(
            Project,
            administered_projects(principal).label("admin"),
            listable_projects(principal).label("visible"),
        ).where(Project.id == project_id.lower())
    ).first()
    if row is None or not (row.admin or row.visible):
        raise NotFound(f"No project {project_id} (or you cannot see it).")
    project: Project = row.Project
    if not row.admin:
        raise Forbidden(
            f"Only the admins of project '{project.name}' ({project.id}) can publish its data."
        )
    if project.removed:
        raise Conflict(f"Project '{project.name}' ({project.id}) is removed: it cannot publish.")
    return project


def _administered_pub(session: Session, principal: Principal, pub_id: str) -> Publication:
    row = session.execute(
        select(Publication, Project.name, administered_projects(principal).label("admin"))
        .join(Project, Project.id == Publication.project_id)
        .where(Publication.id == pub_id.lower())
    ).first()
    if row is None:
        raise NotFound(
            f"No publication {pub_id}: 'bl pub query' lists the publications you can see."
        )
    if not row.admin:
        raise Forbidden(
            f"Only the admins of project '{row.name}' ({row.Publication.project_id}) can "
            "change its publications."
        )
    pub: Publication = row.Publication
    return pub


# --- fields ------------------------------------------------------------------------------


def _text(value: Any, key: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{key}: must be a string.")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{key}: must not be empty.")
    if len(value) > limit:
        raise BadRequest(f"{key}: {len(value)} characters; at most {limit} are allowed.")
    if "\x00" in value:
        raise BadRequest(f"{key}: must not contain NUL characters.")
    return value


def _strings(value: Any, key: str, *, items: int, chars: int) -> list[str]:
    """A list of non-empty strings (numbers are taken as their text, as brainlife casts numeric
    subjects), in the order given, duplicates dropped."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{key}: must be a list.")
    if len(value) > items:
        raise BadRequest(f"{key}: {len(value)} values; at most {items} are allowed.")
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise BadRequest(f"{key}: every value must be a string.")
        out.append(_text(str(item), key, chars, required=True))
    return list(dict.fromkeys(out))


def _people(session: Session, value: Any, key: str, kept: Sequence[str] = ()) -> list[str]:
    """`authors` / `contributors`: subs (brainlife keeps them as strings) of existing accounts,
    or already in the list (`kept`: a document sent back may name people of brainlife.io
    whose accounts this archive does not have)."""
    subs = _strings(value, key, items=MAX_PEOPLE, chars=32)
    bad = [s for s in subs if not (s.isascii() and s.isdigit() and len(s) <= 18)]
    if bad:
        raise BadRequest(f"{key}: {bad[0]!r} is not a user id (a number, as 'bl profile query').")
    new = [int(s) for s in subs if str(int(s)) not in kept]
    if new:
        asked = [s for s in new if s <= MAX_INT_ID]  # a larger one is no account's sub
        known = {str(s) for s in session.scalars(select(User.sub).where(User.sub.in_(asked)))}
        unknown = [str(s) for s in new if str(s) not in known]
        if unknown:
            raise BadRequest(f"{key}: no user with id {', '.join(unknown[:5])}.")
    return [str(int(s)) for s in subs]


def _fundings(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FUNDINGS:
        raise BadRequest(f"fundings: must be a list of at most {MAX_FUNDINGS} {{funder, id}}.")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest("fundings: every entry must be an object {funder, id}.")
        out.append(
            {
                k: _text(item.get(k, ""), f"fundings.{k}", 256)
                for k in ("funder", "id")
                if k in item or k == "funder"
            }
        )
    return out


def _apply_pub_fields(session: Session, pub: Publication, body: dict[str, Any]) -> None:
    """Set the publication fields present in `body` (checked); others are left as they are.
    Server-kept fields (`_id`, `user_id`, `create_date`, `project`, `__v`) are not read."""
    for key, limit in PUB_TEXT_LIMITS.items():
        if key not in body:
            continue
        value = body[key]
        if value is None and key not in ("name",):
            text = None
        else:
            text = _text(value, key, limit, required=key == "name")
        if key in ("name", "desc"):
            setattr(pub, key, text or "")
        elif key in ("license", "doi"):
            setattr(pub, key, text or None)
        else:
            pub.extra = {**(pub.extra or {}), key: text or ""}
    extra = dict(pub.extra or {})
    for key in ("authors", "contributors"):
        if key in body:
            kept = [str(s) for s in extra.get(key) or []]
            extra[key] = _people(session, body[key], key, kept)
    if "tags" in body:
        extra["tags"] = _strings(body["tags"], "tags", items=MAX_PUB_TAGS, chars=TAG_CHARS)
    if "fundings" in body:
        extra["fundings"] = _fundings(body["fundings"])
    pub.extra = extra
    if "removed" in body:
        if not isinstance(body["removed"], bool):
            raise BadRequest("removed: must be true or false.")
        pub.removed = body["removed"]


# --- publications ------------------------------------------------------------------------


def create_pub(*, session: Session, principal: Principal, body: Any) -> Publication:
    """`POST /pub`: a new publication of a project the caller administers, and the releases
    its body brings (each frozen as by `release_pub`). Nothing is written on any error."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {project, name, desc, authors, ...}.")
    if "name" not in body:
        raise BadRequest("name: the publication needs a name.")
    project = _project_for_publishing(session, principal, body.get("project"))
    pub = Publication(
        id=new_object_id(),
        project_id=project.id,
        user_id=principal.sub_str,
        name="",
        desc="",
        removed=False,
        create_date=datetime.now(UTC),
        extra={"authors": [principal.sub_str], "contributors": [], "tags": [], "fundings": []},
    )
    _apply_pub_fields(session, pub, {k: v for k, v in body.items() if k != "removed"})
    session.add(pub)
    session.flush()
    _new_releases(session, principal, pub, body.get("releases"), existing_allowed=False)
    session.commit()
    return pub


def update_pub(*, session: Session, principal: Principal, pub_id: str, body: Any) -> Publication:
    """`PUT /pub/:id`: change the fields given, and freeze the new releases of `releases` (the
    entries without `_id`). Existing releases are never changed: one sent back with another
    name is a 409, one left out stays as it is."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object with the fields to change.")
    pub = _administered_pub(session, principal, pub_id)
    if "project" in body and str(body["project"]).lower() != pub.project_id:
        raise BadRequest("project: a publication cannot move to another project.")
    _apply_pub_fields(session, pub, body)
    session.flush()
    _new_releases(session, principal, pub, body.get("releases"), existing_allowed=True)
    session.commit()
    return pub


def _new_releases(
    session: Session, principal: Principal, pub: Publication, value: Any, *, existing_allowed: bool
) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise BadRequest("releases: must be a list.")
    known = {r.id: r for r in pub.releases}
    new = [entry for entry in value if not (isinstance(entry, dict) and "_id" in entry)]
    if len(new) > MAX_NEW_RELEASES:
        raise BadRequest(f"releases: {len(new)} new releases; at most {MAX_NEW_RELEASES} at once.")
    for entry in value:
        if not isinstance(entry, dict):
            raise BadRequest("releases: every entry must be an object {name, desc, sets}.")
        if "_id" not in entry:
            continue
        rid = str(entry["_id"]).lower()
        if not existing_allowed or rid not in known:
            raise BadRequest(f"releases: {entry['_id']} is not a release of this publication.")
        if "name" in entry and entry["name"] != known[rid].name:
            raise Conflict(
                f"Release {rid} is named {known[rid].name!r}: a release cannot be renamed or "
                "changed once made (its objects are frozen). Make a new release instead."
            )
    if pub.removed and new:
        raise Conflict(f"Publication {pub.id} is removed: it takes no new release.")
    for entry in new:
        _freeze(session, principal, pub, entry, dry_run=False)


# --- releases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseSet:
    """One set of a release: which objects of the project it takes."""

    datatype: Datatype | None
    datatype_tags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()

    def where(self) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.datatype is not None:
            clauses.append(Dataset.datatype_id == self.datatype.id)
        for table, values in ((DatasetDatatypeTag, self.datatype_tags), (DatasetTag, self.tags)):
            for value in values:
                tag, negated = parse_tag(value)
                has = exists().where(table.dataset_id == Dataset.id, table.tag == tag)
                clauses.append(~has if negated else has)
        for column, values in (
            (Dataset.subject, self.subjects),
            (Dataset.session, self.sessions),
            (Dataset.run, self.runs),
            (Dataset.id, self.ids),
        ):
            if values:
                clauses.append(column.in_(values))
        return and_(true(), *clauses)

    def filters(self) -> dict[str, Any]:
        """The set's filters as stored in the release document (brainlife's keys, and ours
        only when used)."""
        out: dict[str, Any] = {
            "datatype_tags": list(self.datatype_tags),
            "tags": list(self.tags),
            "subjects": list(self.subjects),
        }
        for key in ("sessions", "runs", "ids"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        return out


def _datatype(session: Session, value: Any, key: str) -> Datatype | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("_id")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: a datatype id, {{_id}} or name.")
    if is_object_id(value.lower()):
        found = session.get(Datatype, value.lower())
    else:
        found = session.scalar(select(Datatype).where(Datatype.name == value[:256]))
    if found is None:
        raise BadRequest(f"{key}: no datatype {value[:256]!r} ('bl datatype query' lists them).")
    return found


def parse_sets(session: Session, value: Any) -> list[ReleaseSet]:
    """A release's `sets`, checked and bounded (see the module docstring)."""
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "sets: a release needs at least one set {datatype, datatype_tags, tags, subjects}."
        )
    if len(value) > MAX_SETS:
        raise BadRequest(f"sets: {len(value)} sets; at most {MAX_SETS} are allowed.")
    out = []
    total = 0
    for i, item in enumerate(value):
        key = f"sets[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{key}: must be an object {{datatype, datatype_tags, tags, ...}}.")
        lists = {
            name: _strings(
                item.get(name), f"{key}.{name}", items=MAX_FILTER_VALUES, chars=META_CHARS
            )
            for name in ("subjects", "sessions", "runs", "ids")
        }
        total += sum(len(v) for v in lists.values())
        if total > MAX_FILTER_VALUES:
            raise BadRequest(
                f"sets: the filters hold more than {MAX_FILTER_VALUES} subjects, sessions, runs "
                "and ids together; release in several steps or with broader filters."
            )
        bad_ids = [v for v in lists["ids"] if not is_object_id(v.lower())]
        if bad_ids:
            raise BadRequest(f"{key}.ids: {bad_ids[0]!r} is not a data object id.")
        tags = {
            name: _strings(item.get(name), f"{key}.{name}", items=MAX_SET_TAGS, chars=TAG_CHARS)
            for name in ("datatype_tags", "tags")
        }
        for name, values in tags.items():
            if "!" in values:
                raise BadRequest(f"{key}.{name}: '!' alone names no tag.")
        out.append(
            ReleaseSet(
                datatype=_datatype(session, item.get("datatype"), f"{key}.datatype"),
                datatype_tags=tuple(tags["datatype_tags"]),
                tags=tuple(tags["tags"]),
                subjects=tuple(lists["subjects"]),
                sessions=tuple(lists["sessions"]),
                runs=tuple(lists["runs"]),
                ids=tuple(v.lower() for v in lists["ids"]),
            )
        )
    return out


@dataclass
class ReleaseOutcome:
    """A release made (or, for a dry run, what it would be): its documented totals are those
    of the objects it holds."""

    pub: Publication
    name: str
    desc: str
    dry_run: bool
    sets: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    size: int = 0
    subjects: int = 0
    sessions: int = 0
    release: Release | None = None


def release_pub(
    *, session: Session, principal: Principal, pub_id: str, body: Any
) -> ReleaseOutcome:
    """Ours, `POST /pub/release/:id {name, desc, sets, dry_run}`: freeze one new release (see
    the module docstring), or with `dry_run` say exactly what it would hold, writing nothing."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object {name, desc, sets}.")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dry_run: must be true or false.")
    pub = _administered_pub(session, principal, pub_id)
    if pub.removed:
        raise Conflict(f"Publication {pub.id} is removed: it takes no new release.")
    outcome = _freeze(session, principal, pub, body, dry_run=dry_run)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return outcome


def _freeze(
    session: Session,
    principal: Principal,
    pub: Publication,
    entry: dict[str, Any],
    *,
    dry_run: bool,
) -> ReleaseOutcome:
    name = _text(entry.get("name"), "name", RELEASE_NAME_CHARS, required=True)
    desc = _text(entry.get("desc") or "", "desc", RELEASE_DESC_CHARS)
    if not dry_run:  # no change of the project's objects between what is read and frozen
        lock_project_objects(session, pub.project_id)
    held = session.scalar(select(func.count()).where(Release.pub_id == pub.id)) or 0
    if held >= MAX_RELEASES:
        raise Conflict(
            f"Publication {pub.id} has {held} releases, the most one publication holds; "
            "publish further releases in a new publication ('bl pub create')."
        )
    taken = session.scalar(select(Release.id).where(Release.pub_id == pub.id, Release.name == name))
    if taken is not None:
        raise Conflict(
            f"Publication {pub.id} already has a release named {name!r} ({taken}); release "
            "names cannot be reused. Choose another name."
        )
    sets = parse_sets(session, entry.get("sets"))
    base = and_(
        Dataset.project_id == pub.project_id,
        Dataset.removed.is_(False),
        Dataset.status == "stored",
    )
    selected = and_(base, or_(*(s.where() for s in sets)))
    _check_ids(session, pub, sets, base)
    outcome = ReleaseOutcome(pub=pub, name=name, desc=desc, dry_run=dry_run)
    if dry_run:
        scope = selected
    else:
        release = Release(
            id=new_object_id(),
            pub_id=pub.id,
            pos=(session.scalar(select(func.max(Release.pos)).where(Release.pub_id == pub.id)) or 0)
            + 1,
            name=name,
            desc=desc,
            removed=False,
            create_date=datetime.now(UTC),
            extra={},
        )
        pub.releases.append(release)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise Conflict(
                f"Publication {pub.id} already has a release named {name!r}; release names "
                "cannot be reused. Choose another name."
            ) from None
        already = (
            select(func.count())
            .where(DatasetPublication.dataset_id == Dataset.id)
            .scalar_subquery()
        )
        session.execute(
            insert(DatasetPublication).from_select(
                ["dataset_id", "release_id", "pos"],
                select(Dataset.id, literal(release.id), already).where(selected),
            ),
            execution_options=_LONG,
        )
        # from the release's own index rows: what was frozen, however large the project
        scope = Dataset.id.in_(
            select(DatasetPublication.dataset_id).where(DatasetPublication.release_id == release.id)
        )
        outcome.release = release
    _totals(session, outcome, scope, sets)
    if outcome.count == 0:
        session.rollback()
        raise NotFound(
            f"Nothing to release: no stored data object of the project ({pub.project_id}) "
            f"matches {_describe(sets)}. A release of no objects is refused: see what it holds "
            f"with 'bl data query -p {pub.project_id}', and try filters with 'bl pub release "
            "--dry-run'."
        )
    if outcome.release is not None:
        outcome.release.extra = {
            "sets": outcome.sets,
            "subjects": outcome.subjects,
            "sessions": outcome.sessions,
            "count": outcome.count,
            "size": outcome.size,
            "user_id": principal.sub_str,
        }
        session.flush()
    return outcome


def _check_ids(
    session: Session, pub: Publication, sets: Sequence[ReleaseSet], base: ColumnElement[bool]
) -> None:
    """Ids named in a set must be releasable objects of the project: a release never quietly
    leaves out an object asked for by id."""
    asked = sorted({i for s in sets for i in s.ids})
    if not asked:
        return
    ok = set(
        session.scalars(
            select(Dataset.id).where(base, Dataset.id.in_(asked)), execution_options=_LONG
        )
    )
    bad = [i for i in asked if i not in ok]
    if bad:
        raise BadRequest(
            f"ids: {len(bad)} of the ids given are not stored data objects of the publication's "
            f"project ({pub.project_id}) that can be released (unknown, in another project, "
            f"removed or not stored): {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}."
        )


def _totals(
    session: Session, outcome: ReleaseOutcome, scope: ColumnElement[bool], sets: list[ReleaseSet]
) -> None:
    """The outcome's totals over the objects in `scope`, and each set's count and size per
    datatype (an object matched by two sets is counted in each set, once in the totals)."""
    # the distinct (subject, session) pairs of objects that have both, counted as pairs: no
    # separator character (PostgreSQL text cannot hold the NUL that used to join them)
    pairs = (
        select(Dataset.subject, Dataset.session)
        .where(scope, Dataset.subject.is_not(None), Dataset.session.is_not(None))
        .distinct()
        .subquery()
    )
    totals = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Dataset.size), 0),
            func.count(func.distinct(Dataset.subject)),
            select(func.count()).select_from(pairs).scalar_subquery(),
        ).where(scope),
        execution_options=_LONG,
    ).one()
    outcome.count, outcome.size, outcome.subjects, outcome.sessions = (int(v or 0) for v in totals)
    for s in sets:
        rows: list[Any] = list(
            session.execute(
                select(
                    Datatype.id,
                    Datatype.name,
                    Datatype.desc,
                    Datatype.extra,
                    func.count(),
                    func.coalesce(func.sum(Dataset.size), 0),
                )
                .join(Datatype, Datatype.id == Dataset.datatype_id)
                .where(scope, s.where())
                .group_by(Datatype.id)
                .order_by(Datatype.name),
                execution_options=_LONG,
            )
        )
        if not rows and s.datatype is not None:
            d = s.datatype
            rows = [(d.id, d.name, d.desc, d.extra, 0, 0)]
        for dt_id, dt_name, dt_desc, dt_extra, n, total in rows:
            datatype = {"_id": dt_id, "name": dt_name, "desc": dt_desc}
            datatype["groupAnalysis"] = bool((dt_extra or {}).get("groupAnalysis", False))
            outcome.sets.append(
                {"datatype": datatype, **s.filters(), "count": int(n), "size": int(total)}
            )


def _describe(sets: Sequence[ReleaseSet]) -> str:
    parts = []
    for s in sets:
        words = [s.datatype.name if s.datatype is not None else "any datatype"]
        for label, values in (
            ("datatype tags", s.datatype_tags),
            ("tags", s.tags),
            ("subjects", s.subjects),
            ("sessions", s.sessions),
            ("runs", s.runs),
            ("ids", s.ids),
        ):
            if values:
                shown = ", ".join(values[:5]) + (" …" if len(values) > 5 else "")
                words.append(f"{label} {shown}")
        parts.append("(" + "; ".join(words) + ")")
    return " or ".join(parts)
