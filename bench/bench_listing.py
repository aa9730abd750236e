"""Listing benchmark (issue #2, figure 1): `GET /api/warehouse/dataset?find=…&limit=100` over
1,000,000 data objects in SQLite, with the filters `bl data query` sends.

The client is on loopback with one keep-alive connection (http.client) and a member token got
by logging in (`POST /api/auth/local/auth`), so the access rule (readable projects, or
published) is AND-ed to every filter. Per query shape: warm-up requests, then `--repeat` timed
requests; the median, p90, the rows on the page and the `count` of the envelope are reported.

Baselines measured in the same run:

- the round trip of a minimal authenticated route (`GET /api/auth/me`): the HTTP, routing and
  token cost every request pays;
- the in-process service time (`services.datasets.list_datasets` + rendering the documents,
  no HTTP) for each shape;
- every `count` is checked against a hand-written SQL count run with sqlite3.

    .venv/bin/python bench/bench_listing.py [--rows 1000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import listing_db
from common import KeepAlive, bl_serve, login, median, percentile, save_json, say, set_nice

TARGET_S = 0.050


@dataclass
class Shape:
    name: str
    find: dict[str, Any]
    #: the same filter (without the access rule) as SQL over `datasets d`, for the count check
    sql: str
    skip: int = 0


def shapes(w: listing_db.World) -> list[Shape]:
    p, dt, rel = w.projects, w.datatypes, w.releases

    def tag(table: str, value: str, negate: bool = False) -> str:
        ex = f"EXISTS (SELECT 1 FROM {table} t WHERE t.dataset_id = d.id AND t.tag = '{value}')"
        return f"NOT {ex}" if negate else ex

    return [
        Shape(
            "project only (30 % of rows)",
            {"removed": False, "$and": [{"project": p[0]}]},
            f"d.removed = 0 AND d.project_id = '{p[0]}'",
        ),
        Shape(
            "project + datatype",
            {"removed": False, "$and": [{"project": p[0]}, {"datatype": dt[0]}]},
            f"d.removed = 0 AND d.project_id = '{p[0]}' AND d.datatype_id = '{dt[0]}'",
        ),
        Shape(
            "project + datatype + meta.subject",
            {
                "removed": False,
                "$and": [{"project": p[0]}, {"datatype": dt[0]}, {"meta.subject": "0008"}],
            },
            f"d.removed = 0 AND d.project_id = '{p[0]}' AND d.datatype_id = '{dt[0]}'"
            " AND d.subject = '0008'",
        ),
        Shape(
            "tags $all/$nin + project + datatype",
            {
                "removed": False,
                "$and": [
                    {"tags": {"$all": ["tag01"]}},
                    {"tags": {"$nin": ["tag02"]}},
                    {"project": p[0]},
                    {"datatype": dt[0]},
                ],
            },
            f"d.removed = 0 AND d.project_id = '{p[0]}' AND d.datatype_id = '{dt[0]}' AND "
            + tag("dataset_tags", "tag01")
            + " AND "
            + tag("dataset_tags", "tag02", True),
        ),
        Shape(
            "datatype_tags $all/$nin + project + datatype",
            {
                "removed": False,
                "$and": [
                    {"datatype_tags": {"$all": ["acpc_aligned"]}},
                    {"datatype_tags": {"$nin": ["masked"]}},
                    {"project": p[1]},
                    {"datatype": dt[1]},
                ],
            },
            f"d.removed = 0 AND d.project_id = '{p[1]}' AND d.datatype_id = '{dt[1]}' AND "
            + tag("dataset_datatype_tags", "acpc_aligned")
            + " AND "
            + tag("dataset_datatype_tags", "masked", True),
        ),
        Shape(
            "--pub release only (50k objects)",
            {"$and": [{"publications": rel[0]}]},
            "EXISTS (SELECT 1 FROM dataset_publications t WHERE t.dataset_id = d.id"
            f" AND t.release_id = '{rel[0]}')",
        ),
        Shape(
            "--pub release of a private project + datatype",
            {"$and": [{"publications": rel[2]}, {"datatype": dt[0]}]},
            "EXISTS (SELECT 1 FROM dataset_publications t WHERE t.dataset_id = d.id"
            f" AND t.release_id = '{rel[2]}') AND d.datatype_id = '{dt[0]}'",
        ),
        Shape(
            "datatype only (all readable projects)",
            {"removed": False, "$and": [{"datatype": dt[3]}]},
            f"d.removed = 0 AND d.datatype_id = '{dt[3]}'",
        ),
        Shape(
            "meta.subject only",
            {"removed": False, "$and": [{"meta.subject": "0008"}]},
            "d.removed = 0 AND d.subject = '0008'",
        ),
        Shape(
            "full command line ($nin tags, datatype_tags, subject, session, $or regex)",
            {
                "removed": False,
                "$and": [
                    {"tags": {"$nin": ["tag02"]}},
                    {"datatype_tags": {"$nin": ["masked"]}},
                    {"project": p[0]},
                    {"datatype": dt[0]},
                    {"meta.subject": "0008"},
                    {"meta.session": "1"},
                    {
                        "$or": [
                            {"_id": "0123456789abcdef01234567"},
                            {"name": {"$regex": "for 0008", "$options": "ig"}},
                            {"desc": {"$regex": "for 0008", "$options": "ig"}},
                        ]
                    },
                ],
            },
            f"d.removed = 0 AND d.project_id = '{p[0]}' AND d.datatype_id = '{dt[0]}'"
            " AND d.subject = '0008' AND d.session = '1' AND d.desc LIKE '%for 0008%' AND "
            + tag("dataset_tags", "tag02", True)
            + " AND "
            + tag("dataset_datatype_tags", "masked", True),
        ),
        Shape(
            "project only, page 101 (skip=10000)",
            {"removed": False, "$and": [{"project": p[0]}]},
            f"d.removed = 0 AND d.project_id = '{p[0]}'",
            skip=10_000,
        ),
        Shape(
            "project not readable (private, not a member: 0 rows)",
            {"removed": False, "$and": [{"project": p[8]}, {"datatype": dt[0]}]},
            f"d.removed = 0 AND d.project_id = '{p[8]}' AND d.datatype_id = '{dt[0]}'",
        ),
    ]


def expected_count(w: listing_db.World, shape: Shape, database_url: str | None = None) -> int:
    readable = ", ".join(f"'{w.projects[i]}'" for i in (*listing_db.MEMBER_OF, *listing_db.PUBLIC))
    access = (
        f"(d.project_id IN ({readable}) OR EXISTS (SELECT 1 FROM dataset_publications x"
        " WHERE x.dataset_id = d.id))"
    )
    sql = f"SELECT count(*) FROM datasets d WHERE {access} AND {shape.sql}"
    if database_url:  # PostgreSQL: a boolean column
        import psycopg

        url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url) as pg:
            found = pg.execute(sql.replace("d.removed = 0", "NOT d.removed")).fetchone()
            return int(found[0]) if found else 0
    conn = sqlite3.connect(f"file:{w.data_dir / 'archive.sqlite3'}?mode=ro", uri=True)
    try:
        row = conn.execute(sql)
        return int(row.fetchone()[0])
    finally:
        conn.close()


def path_for(shape: Shape, limit: int) -> str:
    query = {"find": json.dumps(shape.find, separators=(",", ":")), "limit": str(limit)}
    query["skip"] = str(shape.skip)
    return "/api/warehouse/dataset?" + urlencode(query)


def time_http(client: KeepAlive, path: str, warmup: int, repeat: int) -> tuple[list[float], Any]:
    body: Any = None
    for _ in range(warmup):
        status, raw = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path[:200]} → {status}: {raw[:300]!r}")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        status, raw = client.request("GET", path)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path[:200]} → {status}: {raw[:300]!r}")
        body = raw
    return times, json.loads(body) if body else None


def time_in_process(
    w: listing_db.World,
    token: str,
    shapes_: list[Shape],
    repeat: int,
    database_url: str | None = None,
) -> list[float]:
    """Median service time per shape: `list_datasets` + document rendering, no HTTP."""
    from brainlife.server import documents
    from brainlife.server.archive import open_archive
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets
    from brainlife.server.settings import Settings

    archive = open_archive(Settings(data_dir=w.data_dir, database_url=database_url))
    try:
        principal = _principal(archive, token)
        medians = []
        for shape in shapes_:
            times = []
            for i in range(repeat + 3):
                t0 = time.perf_counter()
                with archive.session() as session:
                    params = parse_list_params(
                        find=json.dumps(shape.find), limit="100", skip=str(shape.skip)
                    )
                    page = datasets.list_datasets(
                        session=session, principal=principal, params=params
                    )
                    if hasattr(datasets, "dataset_documents"):  # what the route does
                        datasets.dataset_documents(session, page.rows)
                    else:
                        documents.render(page.rows, documents.dataset_doc, params.select)
                if i >= 3:
                    times.append(time.perf_counter() - t0)
            medians.append(median(times))
        return medians
    finally:
        archive.engine.dispose()


def _principal(archive: Any, token: str) -> Any:
    """The same token → Principal path the routes use."""
    return archive.signer.principal(token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=listing_db.N_ROWS)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (…/postgres): the same world is copied there (pg_listing_db)",
    )
    parser.add_argument("--copies", type=int, default=1, help="PostgreSQL: rows × this")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of this process and its server (root)"
    )
    args = parser.parse_args()
    if args.nice:
        set_nice(args.nice)

    world = listing_db.ensure_world(args.rows)
    all_shapes = shapes(world)
    rows_out = []
    extra: list[str] = []
    db_url = None
    if args.database_url:
        import pg_listing_db

        db_url, data_dir = pg_listing_db.ensure_pg_world(args.database_url, world, args.copies)
        world = listing_db.World(
            data_dir, world.projects, world.datatypes, world.releases, world.n_rows * args.copies
        )
        extra = ["--database-url", db_url]
    with bl_serve(world.data_dir, extra) as server:
        token = login(server.port, listing_db.USERNAME, listing_db.PASSWORD)
        client = KeepAlive(server.port, token)
        try:
            me_times, _ = time_http(client, "/api/auth/me", args.warmup, args.repeat)
            say(f"listing: GET /api/auth/me median {median(me_times) * 1000:.1f} ms")
            for shape in all_shapes:
                try:
                    times, body = time_http(
                        client, path_for(shape, args.limit), args.warmup, args.repeat
                    )
                except RuntimeError as exc:  # e.g. an operator the server refuses: report it
                    say(f"  {shape.name}: FAILED {exc}")
                    rows_out.append({"shape": shape.name, "find": shape.find, "error": str(exc)})
                    continue
                want = expected_count(world, shape, db_url)
                row = {
                    "shape": shape.name,
                    "find": shape.find,
                    "skip": shape.skip,
                    "median_s": median(times),
                    "p90_s": percentile(times, 90),
                    "min_s": min(times),
                    "rows": len(body["datasets"]),
                    "count": body["count"],
                    "size": body["size"],
                    "expected_count": want,
                    "count_ok": body["count"] == want,
                }
                rows_out.append(row)
                say(
                    f"  {shape.name}: median {row['median_s'] * 1000:.1f} ms, p90 "
                    f"{row['p90_s'] * 1000:.1f} ms, rows {row['rows']}, count {row['count']}"
                    + ("" if row["count_ok"] else f" (EXPECTED {want})")
                )
        finally:
            client.close()
    if not args.no_in_process:
        ok = [
            (row, shape)
            for row, shape in zip(rows_out, all_shapes, strict=True)
            if "error" not in row
        ]
        medians = time_in_process(
            world, token, [s for _r, s in ok], max(5, args.repeat // 3), db_url
        )
        for (row, _shape), m in zip(ok, medians, strict=True):
            row["in_process_median_s"] = m
    save_json(
        f"listing-pg-{world.n_rows}.json" if db_url else "listing.json",
        {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "n_rows": world.n_rows,
            "engine": "PostgreSQL" if db_url else "SQLite",
            "repeat": args.repeat,
            "warmup": args.warmup,
            "limit": args.limit,
            "target_s": TARGET_S,
            "me_median_s": median(me_times),
            "me_p90_s": percentile(me_times, 90),
            "shapes": rows_out,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        },
    )
    if db_url:
        _pg_report(args)


def _pg_report(args: argparse.Namespace) -> None:
    """The PostgreSQL figures (issue #11): their own section of RESULTS.md, per size."""
    import run_server_benchmarks as report
    from common import load_json, machine_notes, write_section

    rows = args.rows * args.copies
    data = load_json(f"listing-pg-{rows}.json")
    data["target_s"] = 0.020 if rows <= 1_000_000 else 0.050
    command = ".venv/bin/python bench/bench_listing.py --database-url postgresql+psycopg://…"
    if args.copies > 1:
        command += f" --copies {args.copies}"
    if args.nice:
        command += f" --nice {args.nice}"
    text = report.listing_section(data).replace(report.LISTING_CMD, command)
    text = text.replace("### 1. Listing:", "### Listing on PostgreSQL:", 1)
    write_section(
        text + "\n" + machine_notes(),
        f"<!-- listing-pg-{rows}:start -->",
        f"<!-- listing-pg-{rows}:end -->",
    )


if __name__ == "__main__":
    main()
