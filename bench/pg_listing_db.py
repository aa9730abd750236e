"""The listing benchmark's world in PostgreSQL: the same 1,000,000 data objects as
`listing_db.py` (copied row for row from its SQLite database with COPY), or 10× that
(`copies=10`: nine more copies of every object, tag and publication row under new ids, made by
one INSERT … SELECT … CROSS JOIN generate_series per table inside PostgreSQL).

One database per size (`bl_listing_<rows>`) on the server of `--database-url`, built when
missing; the schema comes from the real migrations (`open_archive`), the small tables from
`listing_db.build_small`. The big tables are loaded with `session_replication_role = replica`
(no row triggers, no foreign-key checks: the rows come from a consistent archive), then the
trigger-kept aggregates are filled by migration 0012's own BACKFILL statements (the tag search
index by 0017's, with the sizes), and the tables are ANALYZEd (PostgreSQL's autovacuum would do
it within a minute of such a load anyway).

    .venv/bin/python bench/pg_listing_db.py postgresql+psycopg://…/postgres [--copies 10]
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import listing_db
from common import OUT, say

TABLES = {
    "datasets": (
        'id, project_id, datatype_id, user_id, "desc", storage, status, status_msg, removed,'
        " size, subject, session, run, create_date, update_date, meta, prov, extra"
    ),
    "dataset_tags": "dataset_id, tag, pos",
    "dataset_datatype_tags": "dataset_id, tag, pos",
    "dataset_publications": "dataset_id, release_id, pos",
}


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def db_url(server_url: str, name: str) -> str:
    base, _, _db = server_url.rpartition("/")
    return f"{base}/{name}"


def ensure_pg_world(server_url: str, world: listing_db.World, copies: int = 1) -> tuple[str, Path]:
    """(database URL, data directory) of the PostgreSQL copy of `world`, built when missing."""
    import psycopg

    rows = world.n_rows * copies
    name = f"bl_listing_{rows}"
    data_dir = OUT / f"listing-pg-{rows}" / "data"
    url = db_url(server_url, name)
    with psycopg.connect(_psycopg_url(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and (data_dir.parent / "complete").exists():
            say(f"pg listing: reusing database {name}")
            return url, data_dir
        if exists:
            conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    t0 = time.perf_counter()
    _build(url, data_dir, world, copies)
    took = time.perf_counter() - t0
    (data_dir.parent / "complete").write_text(f"built in {took:.1f} s\n")
    say(f"pg listing: built {rows} objects in {took:.1f} s ({name})")
    return url, data_dir


def _build(url: str, data_dir: Path, world: listing_db.World, copies: int) -> None:
    import psycopg

    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    archive = open_archive(Settings(data_dir=data_dir, database_url=url))
    listing_db.build_small(archive, listing_db._ids(world.n_rows))
    archive.engine.dispose()
    src = sqlite3.connect(f"file:{world.data_dir / 'archive.sqlite3'}?mode=ro", uri=True)
    versions = "brainlife.server.migrations.versions."
    # 0012's fill of the tag search index, as 0017 made it: with each object's size
    backfill = (
        *(
            statement
            for statement in importlib.import_module(versions + "0012_postgresql").BACKFILL
            if "INSERT INTO dataset_tag_search" not in statement
        ),
        *importlib.import_module(versions + "0017_pg_listing").FILL,
    )
    with psycopg.connect(_psycopg_url(url)) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET maintenance_work_mem = '512MB'")
        rebuild = _drop_indexes(conn)
        for table, columns in TABLES.items():
            t = time.perf_counter()
            select = f"SELECT {columns} FROM {table}"
            if table == "datasets":  # SQLite keeps booleans as 0/1
                select = select.replace(" removed,", " CASE removed WHEN 1 THEN 't' ELSE 'f' END,")
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in src.execute(select):
                    copy.write_row(row)
            say(f"pg listing: {table} copied in {time.perf_counter() - t:.1f} s")
        if copies > 1:
            t = time.perf_counter()
            for table, columns in TABLES.items():
                key = "id" if table == "datasets" else "dataset_id"
                picked = ", ".join(
                    _copy_id(key) if c.strip() == key else c.strip() for c in columns.split(",")
                )
                # one statement per table: its snapshot sees only the original rows
                conn.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {picked} FROM {table}"
                    f" CROSS JOIN generate_series(1, {copies - 1}) AS k"
                )
                say(f"pg listing: {table} ×{copies} in {time.perf_counter() - t:.1f} s")
        conn.execute("SET session_replication_role = origin")
        t = time.perf_counter()
        # the big tables' keys first (the backfill probes dataset_publications by object),
        # the aggregate tables' after they are filled
        aggregates = ("dataset_tag_search", "dataset_counts", "dataset_release_counts")
        later = [st for st in rebuild if any(f" {a} " in st for a in aggregates)]
        for statement in [st for st in rebuild if st not in later]:
            conn.execute(statement)
        for statement in backfill:
            conn.execute(statement)
        for statement in later:
            conn.execute(statement)
        say(f"pg listing: {len(rebuild)} indexes and keys built in {time.perf_counter() - t:.0f} s")
        conn.commit()
    with psycopg.connect(_psycopg_url(url), autocommit=True) as conn:
        for table in (*TABLES, "dataset_counts", "dataset_release_counts", "dataset_tag_search"):
            conn.execute(f"VACUUM ANALYZE {table}")
    src.close()


#: tables whose indexes are dropped during the load and built once at the end (a b-tree built
#: from sorted rows is many times faster than one kept up row by row under random ids); the
#: primary key of `datasets` stays, since the other tables' foreign keys need it
LOADED = (*TABLES, "dataset_tag_search", "dataset_counts", "dataset_release_counts")


def _drop_indexes(conn: Any) -> list[str]:
    """Drop the indexes and keys of `LOADED` (but the datasets key); the statements that make
    them again, in order."""
    keys = conn.execute(
        "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype IN ('p', 'u') AND conrelid::regclass::text = ANY(%s)"
        " AND conrelid::regclass::text <> 'datasets'",
        (list(LOADED),),
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (list(LOADED),),
    ).fetchall()
    for name, table, _definition in keys:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    return [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for n, t, d in keys] + [
        d for _n, d in indexes
    ]


def _copy_id(column: str) -> str:
    """Copy k's id of an object: its 9th hex digit (the first of the random part) plus k,
    modulo 16; the creation second (the first 8 digits) is kept, so copies sort among the
    originals. Distinct from every original and other copy unless two originals differ in
    that digit alone (their primary key would refuse the copy)."""
    digit = f"('x' || substr({column}, 9, 1))::bit(4)::int"
    return f"substr({column}, 1, 8) || to_hex(({digit} + k) % 16) || substr({column}, 10)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", help="any database on the server, e.g. …/postgres")
    parser.add_argument("--rows", type=int, default=listing_db.N_ROWS)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    world = listing_db.ensure_world(args.rows)
    url, data_dir = ensure_pg_world(args.database_url, world, args.copies)
    print(url, data_dir)


if __name__ == "__main__":
    main()
