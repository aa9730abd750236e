"""The trigger-kept count aggregates (migration 0002), the tag search index (migration 0003)
and the listing fast paths that read them must be exact: every fast `count`/`size` equals the
plain SQL count with the access rule, for many filters and callers, before and after every
kind of change."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from brainlife.server.access import readable_datasets
from brainlife.server.models import (
    Dataset,
    DatasetCount,
    DatasetDatatypeTag,
    DatasetPublication,
    DatasetReleaseCount,
    DatasetTag,
)
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams, compile_find
from brainlife.server.services import dataset_totals, datasets
from brainlife.server.specs import DATASETS
from tests.server import factories as f

MEMBER, GUEST, OUTSIDER, ADMIN = 11, 12, 13, 14

PRINCIPALS = {
    "member": Principal(sub=MEMBER, scopes={"warehouse": ["user"]}),
    "guest": Principal(sub=GUEST, scopes={"warehouse": ["user"]}),
    "outsider": Principal(sub=OUTSIDER, scopes={"warehouse": ["user"]}),
    "admin": Principal(sub=ADMIN, scopes={"warehouse": ["user", "admin"]}),
}


#: subjects of the world's objects ("" is a subject given as an empty string)
SUBJECTS = ("01", "02", "10", "")


class World:
    def __init__(self, session: Session) -> None:
        rng = random.Random(7)
        self.projects = [
            f.project(session, access="private", members=[MEMBER]),
            f.project(session, access="private", guests=[GUEST]),
            f.project(session, access="public"),
            f.project(session, access="private", admins=[99]),
        ]
        self.datatypes = [f.datatype(session, name=f"neuro/t{i}") for i in range(3)]
        pubs = [f.publication(session, p, releases=["1", "2"]) for p in self.projects[2:]]
        self.releases = [r.id for pub in pubs for r in pub.releases] + ["0" * 23 + "f"]
        self.ids: list[str] = []
        for _ in range(120):
            rels = rng.sample(self.releases, rng.choice((0, 0, 0, 1, 2)))
            row = f.dataset(
                session,
                rng.choice(self.projects),
                rng.choice(self.datatypes),
                removed=rng.random() < 0.2,
                size=rng.choice((None, 0, 5, 1000, 123_456_789_012)),
                tags=rng.sample(["a", "b", "c"], rng.randrange(3)),
                datatype_tags=rng.sample(["x", "y"], rng.randrange(3)),
                publications=rels,
                meta={"subject": rng.choice(SUBJECTS)} if rng.random() < 0.9 else None,
            )
            self.ids.append(row.id)
        session.commit()
        self.rng = rng

    def finds(self) -> list[dict[str, Any]]:
        p = [x.id for x in self.projects]
        t = [x.id for x in self.datatypes]
        r = self.releases
        out: list[dict[str, Any]] = [
            {},
            {"removed": False},
            {"removed": True},
            {"removed": {"$in": [True, False]}},
            {"removed": "false"},
            {"project": p[0]},
            {"project": p[3]},
            {"project": p[0].upper()},
            {"project": "not-an-id"},
            {"project": {"$in": [p[0], p[3], "junk"]}},
            {"project": {"$in": []}},
            {"project": {"$eq": p[1]}, "removed": False},
            {"removed": False, "$and": [{"project": p[0]}, {"datatype": t[0]}]},
            {"removed": False, "$and": [{"project": p[1]}, {"project": p[2]}]},
            {"$and": [{"project": {"$in": [p[1], p[2]]}}, {"project": p[2]}]},
            {"datatype": t[1]},
            {"datatype": {"$in": t[:2]}, "removed": False},
            {"publications": r[0]},
            {"publications": r[1], "removed": False},
            {"$and": [{"publications": r[2]}, {"datatype": t[0]}]},
            {"$and": [{"publications": r[3]}, {"project": p[3]}]},
            {"publications": {"$in": [r[0]]}},
            {"publications": {"$all": [r[2]]}},
            {"publications": {"$in": [r[0], r[1]]}},  # two releases: general path
            {"publications": "nope"},
            {"publications": r[-1]},  # a release nobody is in
            {"$and": [{"publications": r[0]}, {"publications": r[1]}]},  # general path
            {"tags": "a", "project": p[0]},  # tag index
            {"tags": {"$all": ["a", "b"]}, "project": {"$in": [p[0], p[1]]}, "removed": False},
            {
                "removed": False,
                "$and": [
                    {"tags": {"$all": ["b"]}},
                    {"tags": {"$nin": ["c"]}},
                    {"project": p[1]},
                    {"datatype": t[0]},
                ],
            },
            {"datatype_tags": {"$all": ["x"], "$nin": ["y"]}, "datatype": t[2]},
            {"datatype_tags": {"$in": ["y"]}, "project": p[3], "removed": True},
            {"datatype_tags": {"$eq": "y"}, "project": p[2], "meta.subject": "1"},
            {"tags": "a", "project": "junk"},
            {"tags": "zz", "project": p[0]},
            {"tags": "a"},  # no project/datatype: general path
            {"tags": {"$in": ["a", "b"]}, "project": p[0]},  # no single tag: general path
            {"$or": [{"project": p[0]}, {"project": p[1]}]},  # general path
            {"$and": [{"project": p[0]}, {"$or": [{"datatype": t[0]}]}]},  # general path
            {"tags": "b", "project": p[1], "$or": [{"datatype": t[1]}, {"removed": True}]},
            {"$nor": [{"project": p[0]}], "datatype": t[0]},  # general path
            {"$comment": "x", "project": p[2]},
            # PostgreSQL: the page read from one tag search range, the totals counted there
            # (services.dataset_plans), for readable and unreadable (published only) projects
            *(
                {
                    "removed": False,
                    "$and": [
                        {"tags": {"$all": ["a"]}},
                        {"tags": {"$nin": ["b"]}},
                        {"project": project},
                        {"datatype": t[0]},
                    ],
                }
                for project in p
            ),
            {"datatype_tags": "x", "project": p[3], "removed": True, "datatype": t[1]},
            {
                "datatype_tags": {"$eq": "y", "$ne": "x"},
                "project": p[0],
                "removed": False,
                "datatype": t[2],
            },
            {"tags": {"$in": ["c"]}, "project": p[1], "removed": False, "datatype": t[2]},
            {"tags": {"$all": ["a", "c"]}, "project": p[2], "removed": False, "datatype": t[0]},
            # a tag range, but a term the range cannot answer: the general totals
            {"tags": "a", "project": p[0], "removed": False, "datatype": t[1], "size": 5},
            {
                "tags": "b",
                "project": p[2],
                "removed": False,
                "datatype": t[2],
                "datatype_tags": "x",
            },
            {
                "tags": "b",
                "project": {"$ne": p[2]},
                "removed": False,
                "datatype": t[2],
                "$and": [{"project": p[2]}],
            },
            # the gate: pinned projects none of which is readable or has published objects
            {"project": p[3], "datatype": t[0], "removed": False},
            {"project": {"$in": [p[3], p[0]]}, "datatype": t[1]},
            {"project": p[3], "meta.subject": "01"},
            {"removed": False, "meta.subject": "01"},
        ]
        return out


def plain_totals(session: Session, principal: Principal, find: dict[str, Any]) -> tuple[int, int]:
    where = and_(readable_datasets(principal), compile_find(DATASETS, find))
    stmt = select(func.count(), func.coalesce(func.sum(Dataset.size), 0)).where(where)
    count, size = session.execute(stmt).one()
    return int(count), int(size)


def aggregates_from_scratch(session: Session) -> tuple[set[tuple], set[tuple]]:
    counts = session.execute(
        text(
            "SELECT project_id, datatype_id, removed, count(*), sum(coalesce(size, 0)),"
            " sum(p), sum(p * coalesce(size, 0)) FROM (SELECT d.*, CASE WHEN EXISTS (SELECT 1"
            " FROM dataset_publications x WHERE x.dataset_id = d.id) THEN 1 ELSE 0 END AS p"
            " FROM datasets d) AS r GROUP BY project_id, datatype_id, removed"
        )
    ).all()
    releases = session.execute(
        text(
            "SELECT x.release_id, d.project_id, d.datatype_id, d.removed, count(*),"
            " sum(coalesce(d.size, 0)) FROM dataset_publications x JOIN datasets d"
            " ON d.id = x.dataset_id GROUP BY 1, 2, 3, 4"
        )
    ).all()
    return {tuple(r) for r in counts}, {tuple(r) for r in releases}


def subject_counts_mismatch(session: Session) -> tuple[set[tuple], set[tuple]]:
    """(stored rows not in a recount, recounted rows not stored) of `dataset_subject_counts`
    (migration 0013_web_matrix): both empty when the triggers kept it exact."""
    stored = session.execute(
        text(
            "SELECT project_id, removed, subject, datatype_id, count, pub_count"
            " FROM dataset_subject_counts"
        )
    ).all()
    counted = session.execute(
        text(
            "SELECT project_id, removed, coalesce(subject, ''), datatype_id, count(*), sum(p)"
            " FROM (SELECT d.*, CASE WHEN EXISTS (SELECT 1 FROM dataset_publications x"
            " WHERE x.dataset_id = d.id) THEN 1 ELSE 0 END AS p FROM datasets d) AS r"
            " GROUP BY 1, 2, 3, 4"
        )
    ).all()
    a, b = {tuple(r) for r in stored}, {tuple(r) for r in counted}
    return a - b, b - a


def tag_search_mismatch(session: Session) -> list[tuple]:
    # the object's size too (migration 0017_pg_listing)
    recount = (
        "SELECT 't', x.tag, d.project_id, d.removed, d.datatype_id, d.id, d.size"
        " FROM dataset_tags x JOIN datasets d ON d.id = x.dataset_id UNION ALL SELECT 'd',"
        " x.tag, d.project_id, d.removed, d.datatype_id, d.id, d.size"
        " FROM dataset_datatype_tags x JOIN datasets d ON d.id = x.dataset_id"
    )
    stored = (
        "SELECT kind, tag, project_id, removed, datatype_id, dataset_id, size"
        " FROM dataset_tag_search"
    )
    missing = session.execute(text(f"SELECT * FROM ({recount}) AS r EXCEPT {stored}")).all()
    extra = session.execute(text(f"{stored} EXCEPT SELECT * FROM ({recount}) AS r")).all()
    total = session.scalar(text("SELECT count(*) FROM dataset_tag_search"))
    want = session.scalar(text(f"SELECT count(*) FROM ({recount}) AS r"))
    return (
        [tuple(r) for r in missing] + [tuple(r) for r in extra] + [(total, want)] * (total != want)
    )


def stored_aggregates(session: Session) -> tuple[set[tuple], set[tuple]]:
    c = DatasetCount
    counts = session.execute(
        select(
            c.project_id, c.datatype_id, c.removed, c.count, c.size, c.pub_count, c.pub_size
        ).where(c.count != 0)
    ).all()
    r = DatasetReleaseCount
    releases = session.execute(
        select(r.release_id, r.project_id, r.datatype_id, r.removed, r.count, r.size).where(
            r.count != 0
        )
    ).all()
    zero = session.scalar(
        select(func.count())
        .select_from(c)
        .where(and_(c.count == 0, (c.size != 0) | (c.pub_count != 0) | (c.pub_size != 0)))
    )
    assert zero == 0
    return {tuple(x) for x in counts}, {tuple(x) for x in releases}


def check(session: Session, world: World) -> int:
    """Stored aggregates and tag index equal a recount; every fast total equals the plain
    count."""
    session.expire_all()
    assert stored_aggregates(session) == aggregates_from_scratch(session)
    assert tag_search_mismatch(session) == []
    assert subject_counts_mismatch(session) == (set(), set())
    fast_used = 0
    arrays = frozenset({"tags", "datatype_tags"})
    for (_name, principal), find in itertools.product(PRINCIPALS.items(), world.finds()):
        want = plain_totals(session, principal, find)
        fast = dataset_totals.fast_totals(session, principal, find)
        if fast is not None:
            fast_used += 1
            assert fast == want, (_name, find)
        for correlate in (frozenset(), arrays):
            where = and_(
                readable_datasets(principal), compile_find(DATASETS, find, correlate=correlate)
            )
            tagged = dataset_totals.tag_totals(session, principal, find, where)
            if tagged is not None:
                fast_used += 1
                assert tagged == want, (_name, find)
    return fast_used


@pytest.fixture
def world(archive):
    with archive.session() as session:
        yield World(session), session


def test_fast_totals_match_plain_counts(world) -> None:
    w, session = world
    used = check(session, w)
    assert used >= 4 * 20  # the fast path is really taken for most of these finds


def test_general_finds_are_not_answered(world) -> None:
    w, session = world
    p = w.projects[0].id
    for find in (
        {"tags": "a", "project": p},
        {"$or": [{"project": p}]},
        {"project": {"$ne": p}},
        {"project": None},
        {"removed": {"$exists": True}},
        {"publications": {"$in": [w.releases[0], w.releases[1]]}},
        {"meta.subject": "1"},
    ):
        assert dataset_totals.fast_totals(session, PRINCIPALS["member"], find) is None
    assert dataset_totals.fast_totals(session, None, {"project": p}) is None


def test_exact_after_changes(world) -> None:
    w, session = world
    rng = w.rng
    p, t, r = w.projects, w.datatypes, w.releases
    # inserts through the ORM, with and without publications
    for i in range(10):
        row = f.dataset(
            session,
            p[i % 4],
            t[i % 3],
            size=None if i % 3 == 0 else i * 10,
            publications=[r[i % 4]] if i % 2 else [],
        )
        w.ids.append(row.id)
    session.commit()
    check(session, w)
    # removed = true, size changes, moves between projects/datatypes (ORM updates)
    for dataset_id in rng.sample(w.ids, 30):
        row = session.get(Dataset, dataset_id)
        assert row is not None
        choice = rng.randrange(4)
        if choice == 0:
            row.removed = not row.removed
        elif choice == 1:
            row.size = rng.choice((None, 7, 99_999))
        elif choice == 2:
            row.project_id = rng.choice(p).id
        else:
            row.datatype_id = rng.choice(t).id
    session.commit()
    check(session, w)
    # subjects changed, set and cleared (ORM), and a bulk SQL update of the subject
    for dataset_id in rng.sample(w.ids, 20):
        row = session.get(Dataset, dataset_id)
        assert row is not None
        row.subject = rng.choice((None, "03", *SUBJECTS))
    session.execute(update(Dataset).where(Dataset.id.in_(w.ids[60:70])).values(subject="99"))
    session.commit()
    check(session, w)
    # bulk SQL update touching several columns at once, and one that changes nothing
    session.execute(update(Dataset).where(Dataset.id.in_(w.ids[:15])).values(removed=True))
    session.execute(update(Dataset).where(Dataset.id.in_(w.ids[15:30])).values(size=Dataset.size))
    session.commit()
    check(session, w)
    # publications added and removed (ORM), including a second release of a published object
    for dataset_id in rng.sample(w.ids, 25):
        row = session.get(Dataset, dataset_id)
        assert row is not None
        have = {x.release_id for x in row.publications}
        if have and rng.random() < 0.5:
            row.publications = row.publications[1:]
        else:
            new = [x for x in r if x not in have]
            row.publications.append(DatasetPublication(release_id=rng.choice(new), pos=9))
    session.commit()
    check(session, w)
    # a publication row moved to another object / another release (raw SQL update)
    moved = session.execute(select(DatasetPublication).limit(2)).scalars().all()
    session.execute(
        update(DatasetPublication)
        .where(
            DatasetPublication.dataset_id == moved[0].dataset_id,
            DatasetPublication.release_id == moved[0].release_id,
        )
        .values(release_id="0" * 23 + "e")
    )
    target = next(i for i in w.ids if i != moved[1].dataset_id)
    session.execute(
        update(DatasetPublication)
        .where(
            DatasetPublication.dataset_id == moved[1].dataset_id,
            DatasetPublication.release_id == moved[1].release_id,
        )
        .values(dataset_id=target)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    check(session, w)
    # tags and datatype tags added, removed, renamed, moved (ORM and raw SQL)
    for dataset_id in rng.sample(w.ids, 25):
        row = session.get(Dataset, dataset_id)
        assert row is not None
        if row.tags and rng.random() < 0.5:
            row.tags = row.tags[1:]
        else:
            have = {x.tag for x in row.tags}
            new = [x for x in ("a", "b", "c", "d") if x not in have]
            row.tags.append(DatasetTag(tag=rng.choice(new), pos=5))
        if row.datatype_tags:
            row.datatype_tags = []
        else:
            row.datatype_tags = [DatasetDatatypeTag(tag="x", pos=0)]
    session.commit()
    check(session, w)
    one = session.execute(select(DatasetTag).limit(3)).scalars().all()
    session.execute(
        update(DatasetTag)
        .where(DatasetTag.dataset_id == one[0].dataset_id, DatasetTag.tag == one[0].tag)
        .values(tag="renamed")
    )
    elsewhere = next(
        i
        for i in w.ids
        if i != one[1].dataset_id
        and session.get(DatasetTag, {"dataset_id": i, "tag": one[1].tag}) is None
        and session.get(Dataset, i) is not None
    )
    session.execute(
        update(DatasetTag)
        .where(DatasetTag.dataset_id == one[1].dataset_id, DatasetTag.tag == one[1].tag)
        .values(dataset_id=elsewhere)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(DatasetDatatypeTag).where(DatasetDatatypeTag.tag == "y"))
    session.commit()
    session.expunge_all()
    check(session, w)
    # deletes: ORM (children first) and raw SQL (ON DELETE CASCADE after the parent)
    for dataset_id in w.ids[:10]:
        row = session.get(Dataset, dataset_id)
        if row is not None:
            session.delete(row)
    session.commit()
    check(session, w)
    published = session.scalars(select(DatasetPublication.dataset_id).distinct()).all()
    gone = list(published)[:5] + w.ids[40:45]
    session.execute(
        delete(Dataset).where(Dataset.id.in_(gone)).execution_options(synchronize_session=False)
    )
    session.commit()
    session.expunge_all()
    check(session, w)
    assert (
        session.scalar(
            select(func.count())
            .select_from(DatasetPublication)
            .where(DatasetPublication.dataset_id.in_(gone))
        )
        == 0
    )


def test_listing_uses_exact_totals(world) -> None:
    """Through `list_datasets`, on a page that does not hold every match (so the totals are
    not taken from the page): count/size equal the plain count; the rows are the plain
    query's rows in `_id` order (the release-driven page included)."""
    w, session = world
    for (name, principal), find in itertools.product(PRINCIPALS.items(), w.finds()):
        for skip in (0, 3):
            params = ListParams(find=find, skip=skip, limit=2)
            page = datasets.list_datasets(session=session, principal=principal, params=params)
            want = plain_totals(session, principal, find)
            assert (page.count, page.size) == want, (name, find)
            where = and_(readable_datasets(principal), compile_find(DATASETS, find))
            ids = session.scalars(
                select(Dataset.id).where(where).order_by(Dataset.id).offset(skip).limit(2)
            ).all()
            assert [row.id for row in page.rows] == list(ids), (name, find)
