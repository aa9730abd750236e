"""PostgreSQL plans of the data-object listing (issue #11, listing at scale): the access rule's
"published" branch is probed per candidate row, never hashed over every publication of the
archive, and still lets a caller see the published objects of projects they cannot read.

Against a real PostgreSQL (the `admin_url` of test_postgresql: BL_TEST_DATABASE_URL's server,
else a private one from scripts/pg-start).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from tests.server import factories as f
from tests.server.test_postgresql import admin_url, pg_archive  # noqa: F401  (fixtures)

MEMBER = 1


def _world(archive: Any) -> dict[str, Any]:
    with archive.session() as s:
        mine = f.project(s, name="Mine", access="private", members=[MEMBER], group_id=851)
        other = f.project(s, name="Other", access="private", admins=[2], group_id=900)
        t1w = f.datatype(s, name="neuro/anat/t1w")
        pub = f.publication(s, other, name="Pub", releases=["1"], authors=["2"])
        release = pub.releases[0].id
        for i in range(300):
            f.dataset(s, mine, t1w, meta={"subject": f"{i % 30:04d}"})
        published = [
            f.dataset(s, other, t1w, meta={"subject": "0001"}, publications=[release]).id
            for _ in range(40)
        ]
        for _ in range(300):
            f.dataset(s, other, t1w, meta={"subject": "0001"})
        s.commit()
    with archive.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return {"other": other.id, "published": published}


def _listing_sql(archive: Any, find: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The statements `GET /dataset` runs for `find`, as (SQL, parameters)."""
    from sqlalchemy import event

    from brainlife.server.principal import Principal
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets

    seen: list[tuple[str, dict[str, Any]]] = []

    def record(_c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
        if "FROM datasets" in stmt:
            seen.append((stmt, params))

    event.listen(archive.engine, "before_cursor_execute", record)
    try:
        with archive.session() as session:
            params = parse_list_params(find=json.dumps(find), limit="10", skip="0")
            principal = Principal(sub=MEMBER, gids=(851,))
            datasets.list_datasets(session=session, principal=principal, params=params)
    finally:
        event.remove(archive.engine, "before_cursor_execute", record)
    return seen


def _subplans_over(plan: list[str], table: str) -> list[tuple[str, str]]:
    """(number, text) of the plan's SubPlan blocks that read `table`."""
    found = []
    for i, line in enumerate(plan):
        head = line.strip()
        if not head.startswith("SubPlan "):
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for below in plan[i + 1 :]:
            if len(below) - len(below.lstrip()) <= indent:
                break
            block.append(below)
        text_ = "\n".join(block)
        if table in text_:
            found.append((head.split()[1], text_))
    return found


def test_the_published_branch_is_probed_per_row_on_postgresql(pg_archive: Any) -> None:  # noqa: F811
    world = _world(pg_archive)
    statements = _listing_sql(pg_archive, {"removed": False, "meta.subject": "0001"})
    assert statements
    with pg_archive.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for sql, params in statements:
            cur = raw.cursor()
            cur.execute("EXPLAIN " + sql, params)
            plan = [row[0] for row in cur.fetchall()]
            blocks = _subplans_over(plan, "dataset_publications")
            assert blocks, "\n".join(plan)
            for number, block in blocks:
                # per row: the subplan looks up the row's own id; hashed: it reads them all
                assert f"hashed SubPlan {number}" not in "\n".join(plan), "\n".join(plan)
                assert "datasets.id" in block, "\n".join(plan)
    assert world["published"]


def test_published_objects_of_an_unreadable_project_stay_readable_on_postgresql(
    pg_archive: Any,  # noqa: F811
) -> None:
    from brainlife.server.principal import Principal
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets

    world = _world(pg_archive)
    with pg_archive.session() as session:
        params = parse_list_params(
            find=json.dumps({"project": world["other"]}), limit="100", skip="0"
        )
        page = datasets.list_datasets(
            session=session, principal=Principal(sub=MEMBER, gids=(851,)), params=params
        )
    assert sorted(r.id for r in page.rows) == sorted(world["published"])
    assert page.count == 40
