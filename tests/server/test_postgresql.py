"""PostgreSQL, for real: the SQL every find compiles to there, `$regex` translated from RE2 to
PostgreSQL's syntax with RE2's meaning, the query time budget as a 400, the aggregate tables
kept by the PL/pgSQL triggers of migration 0005.

These run against a real PostgreSQL on every run: the one of BL_TEST_DATABASE_URL (the
PostgreSQL pass of scripts/test), else a private one started here with scripts/pg-start.
The rest of the server suite runs on PostgreSQL in that second pass (tests/pgdb.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import re2
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from brainlife.server.errors import BadRequest
from brainlife.server.query import compile_find
from brainlife.server.query.regex import mongo_pattern, postgresql_pattern
from tests import pgdb
from tests.server import factories as f
from tests.server.test_query import CASES, SPECS

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pgdb.postgresql(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
def pg_archive(admin_url: str, tmp_path: Path) -> Iterator[Any]:
    """An empty archive whose database is a fresh PostgreSQL database."""
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir = tmp_path / "data"
    arch = open_archive(
        Settings(
            data_dir=data_dir,
            database_url=pgdb.database_url(data_dir, admin_url),
            query_timeout=5.0,
        )
    )
    yield arch
    arch.engine.dispose()
    pgdb.drop_under(tmp_path)


def _auth(archive: Any) -> dict[str, str]:
    claims = {"sub": 1, "gids": [], "scopes": {}, "profile": {"username": "alice"}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def _pg_sql(coll: str, find: str) -> str:
    find = re.sub(r'"\{\w+\}"', '"650000000000000000000000"', find)  # the world's ids
    clause = compile_find(SPECS[coll], json.loads(find))
    return str(select(text("1")).where(clause).compile(dialect=postgresql.dialect()))


#: SQLite's JSON functions and REGEXP (PostgreSQL's are jsonb_…)
SQLITE_ONLY = re.compile(r"\b(json_extract|json_each|json_type|typeof|json_array_length|REGEXP)\b")


@pytest.mark.parametrize(("coll", "find"), [(c, q) for c, q, _ in CASES])
def test_finds_compile_to_postgresql_sql(coll: str, find: str) -> None:
    """No SQLite function reaches PostgreSQL, whatever the operator or path."""
    sql = _pg_sql(coll, find)
    assert not SQLITE_ONLY.findall(sql), sql


def test_json_paths_compile_to_jsonb() -> None:
    sql = _pg_sql("ds", '{"meta.nums": {"$elemMatch": {"$gt": 6}}, "prov.task_id": "T1"}')
    assert "jsonb_each" in sql and "jsonb_array_elements" in sql
    assert "->>" in sql  # prov.task_id: the exact expression of ix_datasets_prov_task_id


#: (pattern, $options): what RE2 and PostgreSQL read differently unless translated
PATTERNS = [
    ("a.c", ""),  # `.` never matches a newline in RE2 without `s`
    ("a.c", "s"),
    ("^b$", ""),  # ^ $: the whole text without `m`
    ("^b$", "m"),
    ("^b.c$", "ms"),
    ("\\d+", ""),  # ASCII digits only in RE2
    ("\\w+x", ""),
    ("[\\w-]+!", ""),
    ("\\bcat\\b", ""),  # \b is a word boundary in RE2, a backspace in PostgreSQL
    ("\\Bat", ""),
    ("\\s", ""),
    ("[^\\s]z", ""),
    ("CAT", "i"),
    ("(?i)cat", ""),
    ("\\x41", ""),
    ("\\x{e9}", ""),
    ("x{2,3}", ""),
    ("[[.]", ""),  # a `[` inside a class is a literal in RE2
    ("(?P<n>ab)+", ""),
    ("a\\.b", ""),
    ("colou?r$", ""),
    ("\\Aab", ""),
    ("ab\\z", ""),
    ("[[:digit:]]x", ""),
]
SUBJECTS = [
    "abc",
    "a\nc",
    "a\nb\nc",
    "b",
    "x\nb\ny",
    "x\nb\nc\n",
    "١٢٣",  # Arabic-Indic digits: not \d in RE2
    "é",
    "éx",
    "--x!",
    "a cat!",
    "concatenate",
    "bat",
    "\t",
    "yz",
    " z",
    "CAT",
    "Cat",
    "A",
    "xxx",
    "x",
    "[",
    ".",
    "abab",
    "a.b",
    "axb",
    "color",
    "colours",
    "ab",
    "cab",
    "abc\n",
    "1x",
]


def test_regex_on_postgresql_matches_what_re2_matches(pg_archive: Any) -> None:
    with pg_archive.engine.connect() as conn:
        for pattern, options in PATTERNS:
            full = mongo_pattern(pattern, options)
            translated = postgresql_pattern(full)
            for subject in SUBJECTS:
                want = re2.search(full, subject) is not None
                got = conn.execute(text("SELECT :s ~ :p"), {"s": subject, "p": translated}).scalar()
                assert got == want, (pattern, options, subject, translated)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("\\pL", "escape \\p"),
        ("\\Qa.b\\E", "escape \\Q"),
        ("a(?i)b", "flag group"),
        ("x{300}", "over 255"),
        ("[\\D]", "\\D inside"),
    ],
)
def test_regex_without_a_postgresql_spelling_is_refused_there(
    pg_archive: Any, pattern: str, reason: str
) -> None:
    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app

    find = json.dumps({"desc": {"$regex": pattern}})
    with pytest.raises(BadRequest, match="PostgreSQL"):
        postgresql_pattern(mongo_pattern(pattern, ""))
    with TestClient(create_app(archive=pg_archive)) as http:
        r = http.get("/api/warehouse/dataset", params={"find": find}, headers=_auth(pg_archive))
    assert r.status_code == 400, r.text
    assert reason in r.json()["message"] and "PostgreSQL" in r.json()["message"]


def test_query_budget_stops_a_statement_on_postgresql_with_a_400(pg_archive: Any) -> None:
    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app

    with pg_archive.session() as s:
        p = f.project(s, access="public")
        t = f.datatype(s)
        f.dataset(s, p, t, meta={"subject": "1", "n": list(range(200_000))})
        s.commit()
    pg_archive.settings.query_timeout = 0.001
    slow = json.dumps({"meta.n": {"$elemMatch": {"$regex": "^(a|b)*c$"}}})
    with TestClient(create_app(archive=pg_archive)) as http:
        r = http.get("/api/warehouse/dataset", params={"find": slow}, headers=_auth(pg_archive))
        assert r.status_code == 400, r.text
        assert "took longer than" in r.json()["message"]
        pg_archive.settings.query_timeout = 5.0
        pg_archive.request_sessions = None
        again = http.get(
            "/api/warehouse/dataset",
            params={"find": '{"meta.subject": "1"}'},
            headers=_auth(pg_archive),
        )
    assert again.status_code == 200 and again.json()["count"] == 1


def test_the_budget_is_the_connections_setting_made_once(pg_archive: Any) -> None:
    """The budget is the connection's `statement_timeout`, set when a session with another
    budget takes it from the pool, not a `SET LOCAL` per transaction (one round trip fewer per
    request, issue #11); a session without a budget gets its connection back without one."""
    from sqlalchemy import event

    pg_archive.engine.pool.dispose()
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    def timeout(session: Any) -> str:
        return str(session.execute(text("SHOW statement_timeout")).scalar())

    event.listen(pg_archive.engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            with pg_archive.request_session() as s:
                assert timeout(s) == "5s"
            with pg_archive.read_session() as s:
                assert timeout(s) == "5s"
        with pg_archive.session() as s:
            assert timeout(s) == "0"
        with pg_archive.request_session() as s:
            assert timeout(s) == "5s"
    finally:
        event.remove(pg_archive.engine, "before_cursor_execute", record)
    # the SHOWs only: the setting is made on the driver's connection, outside any transaction
    assert seen == ["SHOW statement_timeout"] * 8


def test_connections_plan_without_jit_and_parallel_only_when_it_pays(pg_archive: Any) -> None:
    """Set at connect time (no round trip): no JIT, and parallel workers priced as they cost
    on these machines (db.make_engine: a page's arrays took 10-23 ms in a Gather Merge at
    10,000,000 objects, 2.5 ms without)."""
    pg_archive.engine.pool.dispose()
    for make in (pg_archive.request_session, pg_archive.read_session, pg_archive.session):
        with make() as s:
            assert s.execute(text("SHOW jit")).scalar() == "off"
            assert s.execute(text("SHOW parallel_setup_cost")).scalar() == "10000"


def test_a_connection_whose_server_went_away_is_replaced(pg_archive: Any) -> None:
    """Setting a connection's budget on a connection whose backend is gone raises SQLAlchemy's
    error for it and invalidates the connection: the next session connects again."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    pg_archive.engine.pool.dispose()
    with pg_archive.session() as s:  # no budget: the connection's SET is not needed
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
    url = pg_archive.engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))  # not through the pool
    with pytest.raises(DBAPIError) as caught, pg_archive.request_session() as s:
        s.execute(text("SELECT 1"))
    assert caught.value.connection_invalidated
    with pg_archive.request_session() as s:
        assert s.execute(text("SHOW statement_timeout")).scalar() == "5s"
        assert s.execute(text("SELECT pg_backend_pid()")).scalar() != pid


def _recount(conn: Any) -> tuple[list[Any], list[Any], list[Any]]:
    counts = conn.execute(
        text(
            "SELECT project_id, datatype_id, removed, count(*), sum(coalesce(size, 0)),"
            " sum(p::int), sum(p::int * coalesce(size, 0)) FROM (SELECT d.*, EXISTS (SELECT 1"
            " FROM dataset_publications x WHERE x.dataset_id = d.id) AS p FROM datasets d) AS r"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
    ).all()
    kept = conn.execute(
        text(
            "SELECT project_id, datatype_id, removed, count, size, pub_count, pub_size"
            " FROM dataset_counts WHERE count <> 0 ORDER BY 1, 2, 3"
        )
    ).all()
    tags = conn.execute(
        text(
            "SELECT 't', tag, d.project_id, d.removed, d.datatype_id, d.id, d.size"
            " FROM dataset_tags x JOIN datasets d ON d.id = x.dataset_id"
            " EXCEPT SELECT * FROM dataset_tag_search"
        )
    ).all()
    return [tuple(r) for r in counts], [tuple(r) for r in kept], tags


def test_aggregates_are_kept_by_triggers_on_postgresql(pg_archive: Any) -> None:
    from brainlife.server.models import Dataset

    with pg_archive.session() as s:
        p1, p2 = f.project(s, access="public"), f.project(s, access="private")
        t = f.datatype(s)
        pub = f.publication(s, p1, releases=["1"])
        ds = [f.dataset(s, p1 if i % 2 else p2, t, size=10 * i, tags=["a"]) for i in range(6)]
        s.commit()
        s.execute(
            text(
                "INSERT INTO dataset_publications (dataset_id, release_id, pos) VALUES (:d, :r, 0)"
            ),
            {"d": ds[1].id, "r": pub.releases[0].id},
        )
        s.get(Dataset, ds[3].id).removed = True  # type: ignore[union-attr]
        s.get(Dataset, ds[5].id).size = 7  # type: ignore[union-attr]
        s.delete(s.get(Dataset, ds[0].id))
        s.commit()
    with pg_archive.engine.connect() as conn:
        counts, kept, missing_tags = _recount(conn)
    assert kept == counts and len(counts) >= 3
    assert missing_tags == []


def test_what_postgresql_cannot_hold_is_a_400_or_no_match(pg_archive: Any) -> None:
    """PostgreSQL text cannot hold U+0000: a find comparing with it is a 400 naming the NUL,
    a `$regex` with it matches nothing (as nothing stored can hold it); never a 500."""
    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app

    with pg_archive.session() as s:
        f.dataset(s, f.project(s, access="public"), f.datatype(s), meta={"subject": "1"})
        s.commit()
    with TestClient(create_app(archive=pg_archive), raise_server_exceptions=False) as http:
        for find in ({"meta.x": "a\u0000"}, {"name": "a\u0000"}):
            r = http.get(
                "/api/warehouse/dataset",
                params={"find": json.dumps(find)},
                headers=_auth(pg_archive),
            )
            assert r.status_code == 400 and "NUL" in r.json()["message"], (find, r.text)
        regex = {"meta.subject": {"$regex": "1|\u0000"}, "desc": {"$regex": "^(?:.|.){2}\u0000"}}
        for key, test in regex.items():
            r = http.get(
                "/api/warehouse/dataset",
                params={"find": json.dumps({key: test})},
                headers=_auth(pg_archive),
            )
            assert r.status_code == 200, r.text
            assert r.json()["count"] == (1 if key == "meta.subject" else 0)
        # an unknown field is missing everywhere: `null` matches it (a typed NULL on PostgreSQL)
        r = http.get(
            "/api/auth/profile/list",
            params={"find": '{"nosuch": null}'},
            headers=_auth(pg_archive),
        )
        assert r.status_code == 200, r.text
        r = http.get(
            "/api/warehouse/dataset",
            params={"find": '{"nosuch.x": null, "nosuch": null}'},
            headers=_auth(pg_archive),
        )
        assert r.status_code == 200 and r.json()["count"] == 1, r.text


def test_subject_counts_are_kept_by_triggers_on_postgresql(pg_archive: Any) -> None:
    """`dataset_subject_counts` (0013_web_matrix) on PostgreSQL (0015_pg_subject_counts),
    including what only a statement can do at once: two first publications of one object in
    one INSERT, publication rows moved between objects, an object deleted with its
    publications by the cascade."""
    from sqlalchemy import delete, update

    from brainlife.server.models import Dataset, DatasetPublication
    from tests.server.test_dataset_totals import subject_counts_mismatch

    def exact(s: Any) -> None:
        s.commit()
        assert subject_counts_mismatch(s) == (set(), set())

    with pg_archive.session() as s:
        p1, p2 = f.project(s, access="public"), f.project(s, access="private")
        t = f.datatype(s)
        pub = f.publication(s, p1, releases=["1", "2"])
        r1, r2 = (r.id for r in pub.releases)
        ds = [
            f.dataset(s, p1 if i % 2 else p2, t, meta={"subject": "s1"} if i % 3 else None)
            for i in range(8)
        ]
        exact(s)
        assert s.scalar(text("SELECT count(*) FROM dataset_subject_counts")) >= 3
        insert = "INSERT INTO dataset_publications (dataset_id, release_id, pos) VALUES "
        s.execute(
            text(insert + "(:d, :r1, 0), (:d, :r2, 1), (:e, :r1, 0)"),
            {"d": ds[1].id, "e": ds[3].id, "r1": r1, "r2": r2},
        )
        exact(s)
        assert s.scalar(text("SELECT sum(pub_count) FROM dataset_subject_counts")) == 2
        s.execute(
            update(DatasetPublication)
            .where(DatasetPublication.dataset_id == ds[3].id)
            .values(dataset_id=ds[5].id)
            .execution_options(synchronize_session=False)
        )
        s.execute(update(DatasetPublication).values(pos=DatasetPublication.pos + 1))
        exact(s)
        s.execute(text("DELETE FROM dataset_publications WHERE release_id = :r"), {"r": r1})
        exact(s)
        s.execute(
            update(Dataset)
            .where(Dataset.id.in_([d.id for d in ds[:4]]))
            .values(subject="s2", removed=True)
        )
        exact(s)
        s.execute(
            delete(Dataset)
            .where(Dataset.id.in_([ds[1].id, ds[2].id]))
            .execution_options(synchronize_session=False)
        )
        exact(s)
        assert s.scalar(text("SELECT sum(pub_count) FROM dataset_subject_counts")) == 0
        s.execute(delete(Dataset).execution_options(synchronize_session=False))
        exact(s)
        assert s.scalar(text("SELECT count(*) FROM dataset_subject_counts")) == 0


@pytest.fixture
def icu_archive(admin_url: str, tmp_path: Path) -> Iterator[Any]:
    """An archive in a database whose default collation is linguistic (ICU `en-US`), as a
    `createdb` on a server installed with an English locale gives."""
    from sqlalchemy.engine import make_url

    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    name = "bl_icu_" + str(abs(hash(tmp_path)))[:12]
    with pgdb._connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            " LOCALE 'C.UTF-8'"
        )
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    arch = open_archive(Settings(data_dir=tmp_path / "data", database_url=url))
    try:
        yield arch
    finally:
        arch.engine.dispose()
        with pgdb._connect(admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: names whose byte order (SQLite's) differs from an English collation's
ODD_NAMES = ["B", "Z", "a", "a b", "a-b", "a0", "a_b", "ab", "é", "ß", "Ω"]


def test_names_sort_in_byte_order_under_a_linguistic_collation(icu_archive: Any) -> None:
    """Every text column is in byte order (0016_pg_byte_order): the project files listing, its
    folder ranges and continuation tokens, and sorted names come out as on SQLite."""
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app
    from brainlife.server.models import ProjectFile

    with icu_archive.session() as s:
        project = f.project(s, access="public")
        paths = [*ODD_NAMES, *(f"a/{n}" for n in ODD_NAMES), "a.b/x", "a0/y"]
        for path in paths:
            s.add(ProjectFile(project_id=project.id, path=path, sha256="0" * 64, size=1,
                              mtime=datetime.now(UTC)))  # fmt: skip
        for n in ODD_NAMES:
            f.datatype(s, name=n)
        s.commit()
        columns = s.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name <> 'alembic_version'"
                " AND data_type IN ('text', 'character varying')"
                " AND coalesce(collation_name, '') <> 'C'"
            )
        ).all()
    assert columns == []
    # the keys of a folder's entries, in the order pages must give them: a file by its name,
    # a subfolder by its name and "/" (a file "a" comes before the folder "a.b/", "a/", "a0")
    root = sorted({p if "/" not in p else p.split("/")[0] + "/" for p in paths}, key=str.encode)
    with TestClient(create_app(archive=icu_archive)) as http:
        for prefix, want in (("", root), ("a/", sorted(ODD_NAMES, key=str.encode))):
            got, token = [], None
            while True:
                params = {"limit": "2", **({"continuationToken": token} if token else {})}
                url = f"/api/warehouse/files/{project.id}/{prefix}"
                r = http.get(url, params=params, headers=_auth(icu_archive))
                assert r.status_code == 200, r.text
                body = r.json()
                keys = [e["Name"] + "/" for e in body["folders"]]
                got += sorted(keys + [e["Name"] for e in body["objects"]], key=str.encode)
                if not body["isTruncated"]:
                    break
                token = body["nextContinuationToken"]
            assert got == want, prefix
        r = http.get("/api/warehouse/datatype", params={"sort": "name", "limit": 100})
        names = [d["name"] for d in r.json()["datatypes"]]
        assert names == sorted(names, key=str.encode) and len(names) == len(ODD_NAMES)
