"""PostgreSQL plans of the slow listing shapes at 10,000,000 objects (issue #11,
`services.dataset_plans`, migration 0017_pg_listing), and their results, equal to the general
query's:

- a project the caller cannot read, with nothing published: the gate is a one-time filter and
  no object of the project is visited;
- a tag listing pinned to project, removed and datatype: the page is read from one range of
  `dataset_tag_search`, its totals counted there without reading `datasets`;
- `meta.subject` across projects: page and totals from `(subject, removed, id)`;
- a sort by `meta.subject` with project and datatype pinned: the page comes in order from
  `ix_datasets_project_subject` (migration 0018_pg_sort), no sort of the project's objects;
- (either engine) a page's arrays are read in one statement (on PostgreSQL with the page's ids
  as one array parameter).

Against a real PostgreSQL (the `admin_url` of test_postgresql). The same finds run on both
engines, with results compared to the plain SQL, in test_dataset_totals.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import and_, event, func, select, text

from tests.server import factories as f
from tests.server.test_postgresql import admin_url, pg_archive  # noqa: F401  (fixtures)

MEMBER = 1


def _world(archive: Any) -> dict[str, Any]:
    with archive.session() as s:
        mine = f.project(s, name="Mine", access="private", members=[MEMBER], group_id=851)
        other = f.project(s, name="Other", access="private", admins=[2], group_id=900)
        hidden = f.project(s, name="Hidden", access="private", admins=[2], group_id=901)
        t1w = f.datatype(s, name="neuro/anat/t1w")
        dwi = f.datatype(s, name="neuro/dwi")
        pub = f.publication(s, other, name="Pub", releases=["1"], authors=["2"])
        release = pub.releases[0].id
        for i in range(160):
            f.dataset(
                s,
                mine,
                t1w if i % 4 else dwi,
                size=i,
                tags=["a", "b"] if i % 3 == 0 else ["a"] if i % 3 == 1 else ["c"],
                datatype_tags=["x"] if i % 2 else [],
                meta={"subject": f"{i % 16:04d}"},
            )
        for i in range(100):
            f.dataset(
                s,
                other,
                t1w,
                size=1000 + i,
                tags=["a"],
                meta={"subject": "0001"},
                publications=[release] if i % 5 == 0 else [],
            )
        for _ in range(60):
            f.dataset(s, hidden, t1w, tags=["a"], meta={"subject": "0001"})
        s.commit()
    with archive.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return {
        "mine": mine.id,
        "other": other.id,
        "hidden": hidden.id,
        "t1w": t1w.id,
        "dwi": dwi.id,
    }


def _list(
    archive: Any, find: dict[str, Any], limit: int = 10, sort: str | None = None
) -> tuple[Any, list[str]]:
    """(the page, the SQL statements it ran)."""
    from brainlife.server.principal import Principal
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets

    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((stmt, params))

    event.listen(archive.engine, "before_cursor_execute", record)
    try:
        with archive.session() as session:
            params = parse_list_params(find=json.dumps(find), limit=str(limit), skip="0", sort=sort)
            principal = Principal(sub=MEMBER, gids=(851,))
            page = datasets.list_datasets(session=session, principal=principal, params=params)
    finally:
        event.remove(archive.engine, "before_cursor_execute", record)
    return page, [
        _explain(archive, sql, p) for sql, p in seen if "datasets" in sql or "tag_search" in sql
    ]


def _explain(archive: Any, sql: str, params: Any, setting: str | None = None) -> str:
    with archive.engine.connect() as conn:
        cur = conn.connection.driver_connection.cursor()
        if setting:
            cur.execute(f"SET LOCAL {setting}")
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return "\n".join(row[0] for row in cur.fetchall())


def _plain(archive: Any, find: dict[str, Any], limit: int = 10) -> tuple[list[str], int, int]:
    """(first page ids, count, size) from the general SQL with the access rule."""
    from brainlife.server.access import readable_datasets
    from brainlife.server.models import Dataset
    from brainlife.server.principal import Principal
    from brainlife.server.query import compile_find
    from brainlife.server.specs import DATASETS

    where = and_(
        readable_datasets(Principal(sub=MEMBER, gids=(851,))), compile_find(DATASETS, find)
    )
    with archive.session() as s:
        ids = s.scalars(select(Dataset.id).where(where).order_by(Dataset.id).limit(limit)).all()
        count, size = s.execute(
            select(func.count(), func.coalesce(func.sum(Dataset.size), 0)).where(where)
        ).one()
    return list(ids), int(count), int(size)


def test_an_unreadable_project_visits_none_of_its_objects(pg_archive: Any) -> None:  # noqa: F811
    w = _world(pg_archive)
    find = {"removed": False, "$and": [{"project": w["hidden"]}, {"datatype": w["t1w"]}]}
    page, plans = _list(pg_archive, find)
    assert page.rows == [] and page.count == 0
    assert plans
    for plan in plans:
        assert "One-Time Filter" in plan, plan
        # the gate is false: the scan of the project's objects never runs
        for line in plan.splitlines():
            if " on datasets" in line:
                assert "never executed" in line, plan


def test_published_objects_of_an_unreadable_project_pass_the_gate(pg_archive: Any) -> None:  # noqa: F811
    w = _world(pg_archive)
    find = {"removed": False, "$and": [{"project": w["other"]}, {"datatype": w["t1w"]}]}
    page, _plans = _list(pg_archive, find, limit=100)
    ids, count, size = _plain(pg_archive, find, limit=100)
    assert count == 20
    assert ([r.id for r in page.rows], page.count, page.size) == (ids, count, size)


def _reads_index(plan: str, index: str) -> bool:
    """The plan reads `index`: as an index scan, an index-only scan or a bitmap index scan (which
    of them PostgreSQL picks on the tests' small tables depends on its statistics of the moment,
    as a CI run showed; what matters here is the index, not the access method)."""
    return re.search(rf"Index (Only )?Scan (using|on) {index}\b", plan) is not None


def test_a_tag_listing_reads_one_range_of_the_tag_index(pg_archive: Any) -> None:  # noqa: F811
    w = _world(pg_archive)
    find = {
        "removed": False,
        "$and": [
            {"tags": {"$all": ["a"]}},
            {"tags": {"$nin": ["b"]}},
            {"project": w["mine"]},
            {"datatype": w["t1w"]},
        ],
    }
    page, plans = _list(pg_archive, find)
    ids, count, size = _plain(pg_archive, find)
    assert count > 10
    assert ([r.id for r in page.rows], page.count, page.size) == (ids, count, size)
    page_plan, totals_plan = plans
    assert "dataset_tag_search" in page_plan.split("\n")[1] or "dataset_tag_search" in page_plan
    # the totals: ranges of the tag index (index-only at scale), no object row read
    assert " on datasets" not in totals_plan, totals_plan
    assert _reads_index(totals_plan, "pk_dataset_tag_search"), totals_plan
    # the range's project is tested once (an InitPlan on projects), not probed for each row of
    # the range through a hashed subplan (~7 ms of a 29,000-row count at 10,000,000 objects)
    assert "InitPlan" in totals_plan, totals_plan
    lines = totals_plan.splitlines()
    for i, line in enumerate(lines):
        if "Scan on dataset_tag_search" in line:
            for below in lines[i + 1 : i + 4]:
                if "Filter:" in below:
                    assert "hashed" not in below, totals_plan


def test_a_tag_listing_of_an_unreadable_project_counts_its_published_objects(
    pg_archive: Any,  # noqa: F811
) -> None:
    w = _world(pg_archive)
    find = {"removed": False, "tags": "a", "project": w["other"], "datatype": w["t1w"]}
    page, _plans = _list(pg_archive, find)
    ids, count, size = _plain(pg_archive, find)
    assert count == 20
    assert ([r.id for r in page.rows], page.count, page.size) == (ids, count, size)


def test_a_subject_across_projects_uses_the_subject_index(pg_archive: Any) -> None:  # noqa: F811
    w = _world(pg_archive)
    find = {"removed": False, "meta.subject": "0001"}
    page, plans = _list(pg_archive, find)
    ids, count, size = _plain(pg_archive, find)
    assert ([r.id for r in page.rows], page.count, page.size) == (ids, count, size)
    assert count == 10 + 20  # mine, and the published objects of `other`
    # the page walks the subject's objects in `_id` order (the totals' plan depends on size)
    assert _reads_index(plans[0], "ix_datasets_subject_removed_id"), plans
    assert w["hidden"]


def test_a_sort_by_subject_reads_the_project_subject_index_in_order(pg_archive: Any) -> None:  # noqa: F811
    """`sort=meta.subject` (NULLS FIRST on PostgreSQL, SQLite's order) with project and datatype
    pinned: the index gives the page in order. The plan is read with sorting disabled, so that
    it shows whether the index *can* give the order (on the tests' small table a sort may be
    cheaper anyway); before 0018_pg_sort the plan kept a Sort node."""
    from brainlife.server.models import Dataset

    w = _world(pg_archive)
    with pg_archive.session() as s:  # some objects without a subject: they come first
        for d in s.scalars(select(Dataset).where(Dataset.project_id == w["mine"]).limit(8)):
            d.meta, d.subject = {}, None
        s.commit()
    find = {"removed": False, "$and": [{"project": w["mine"]}, {"datatype": w["t1w"]}]}
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((stmt, params))

    from brainlife.server.principal import Principal
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets

    event.listen(pg_archive.engine, "before_cursor_execute", record)
    try:
        with pg_archive.session() as session:
            params = parse_list_params(
                find=json.dumps(find), limit="30", skip="0", sort="meta.subject"
            )
            principal = Principal(sub=MEMBER, gids=(851,))
            page = datasets.list_datasets(session=session, principal=principal, params=params)
    finally:
        event.remove(pg_archive.engine, "before_cursor_execute", record)
    with pg_archive.session() as s:
        rows = s.execute(
            select(Dataset.id, Dataset.subject)
            .where(Dataset.project_id == w["mine"], Dataset.datatype_id == w["t1w"])
            .where(Dataset.removed.is_(False))
        ).all()
    want = sorted(rows, key=lambda r: (r.subject is not None, r.subject or "", r.id))[:30]
    assert [r.id for r in page.rows] == [r.id for r in want]
    assert want[0].subject is None and want[-1].subject is not None
    sql, params = next((q, p) for q, p in seen if "ORDER BY datasets.subject" in q)
    plan = _explain(pg_archive, sql, params, setting="enable_sort = off")
    assert _reads_index(plan, "ix_datasets_project_subject"), plan
    assert "Sort" not in plan, plan


def test_a_page_reads_its_arrays_in_one_statement(archive: Any) -> None:
    """`dataset_documents` of a page: one round trip for the three arrays (each is a scheduler
    wake-up on a loaded machine), with every array in its stored order, on either engine."""
    from brainlife.server.services import datasets

    with archive.session() as s:
        mine = f.project(s, access="private", members=[MEMBER])
        t1w = f.datatype(s, name="neuro/anat/t1w")
        pub = f.publication(s, mine, releases=["1", "2"])
        releases = [r.id for r in pub.releases]
        rows = [
            f.dataset(
                s,
                mine,
                t1w,
                tags=["z", "a", "m"][: i % 4],
                datatype_tags=["y", "x"][: i % 3],
                publications=releases[::-1][: i % 3],
            )
            for i in range(12)
        ]
        s.commit()
        seen: list[str] = []

        def record(_c: Any, _cur: Any, stmt: str, *_rest: Any) -> None:
            seen.append(stmt)

        event.listen(archive.engine, "before_cursor_execute", record)
        try:
            docs = datasets.dataset_documents(s, rows)
        finally:
            event.remove(archive.engine, "before_cursor_execute", record)
    assert len(seen) == 1, seen
    if archive.engine.dialect.name == "postgresql":
        # the ids as one array parameter: a short statement, the same text for every page
        assert "= ANY (" in seen[0] and " IN (" not in seen[0], seen
    for i, doc in enumerate(docs):
        assert doc["tags"] == ["z", "a", "m"][: i % 4]
        assert doc["datatype_tags"] == ["y", "x"][: i % 3]
        assert doc["publications"] == releases[::-1][: i % 3]
