"""The Python of a data-object listing, old code against new (issue #11): in process, no HTTP.

For each listing shape of bench_listing.py: `services.datasets.list_datasets` +
`dataset_documents` (what `GET /api/warehouse/dataset?limit=100` runs between parsing and the
JSON body), timed `--repeat` times after 3 warm-ups. Reported per shape: the median wall time
and the median CPU time of the process (`time.process_time`: the Python and the driver's work,
not the wait for the database, hence less moved by the load of a shared machine), for each of
two source trees run alternately, one process each, `--rounds` times: the old one (`--old`, a
`src` folder, e.g. `git archive <commit> src | tar -x -C /tmp/old`) and this checkout's.

    .venv/bin/python bench/bench_listing_python.py --old /tmp/old/src \
        [--database-url postgresql+psycopg://…/bl_listing_1000000] [--rounds 5] [--repeat 30]

`--database-url`: a listing database (PostgreSQL: one bench_listing.py `--database-url` built, e.g.
`bl_listing_1000000`; or `sqlite:///…/archive.sqlite3` of a copy of the SQLite world), at this
code's schema head; without it, bench_listing.py's SQLite world
(`listing_db.ensure_world`, built on first use). Only read; the caller is the world's member
`bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import listing_db
from common import say

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def child(database_url: str | None, repeat: int) -> None:
    """One side of one round: prints {"src", "wall", "cpu"} (ms per shape) as JSON."""
    from sqlalchemy import select

    import bench_listing
    import brainlife.server
    from brainlife.server.archive import open_archive
    from brainlife.server.models import User
    from brainlife.server.principal import Principal
    from brainlife.server.query import parse_list_params
    from brainlife.server.services import datasets
    from brainlife.server.settings import Settings

    if database_url:
        # an existing listing database (bench_listing.py --database-url builds them), only
        # read; the world's ids are the seeded ones, the data folder (keys) a temporary one
        ids = listing_db._ids(listing_db.N_ROWS)
        data_dir = Path(tempfile.mkdtemp(prefix="bench-listing-python-"))
        world = listing_db.World(
            data_dir, ids["projects"], ids["datatypes"], ids["releases"], listing_db.N_ROWS
        )
    else:
        world = listing_db.ensure_world()
    archive = open_archive(Settings(data_dir=world.data_dir, database_url=database_url))
    with archive.session() as s:
        user = s.execute(select(User).where(User.username == "bench")).scalar_one()
        principal = Principal(sub=user.sub, username="bench")
    session_of = getattr(archive, "read_session", archive.session)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for shape in bench_listing.shapes(world):
        find, skip = json.dumps(shape.find), str(shape.skip)

        def once() -> None:
            with session_of() as s:
                params = parse_list_params(find=find, limit="100", skip=skip)  # noqa: B023
                page = datasets.list_datasets(session=s, principal=principal, params=params)
                datasets.dataset_documents(s, page.rows)

        for _ in range(3):
            once()
        walls, cpus = [], []
        for _ in range(repeat):
            w, c = time.perf_counter(), time.process_time()
            once()
            cpus.append((time.process_time() - c) * 1000)
            walls.append((time.perf_counter() - w) * 1000)
        wall[shape.name], cpu[shape.name] = statistics.median(walls), statistics.median(cpus)
    archive.engine.dispose()
    print(
        json.dumps(
            {"src": str(Path(brainlife.server.__file__).parents[1]), "wall": wall, "cpu": cpu}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old code's src folder")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.database_url, args.repeat)
        return
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"old": [], "new": []}
    for i in range(args.rounds):
        for side, src in (("old", args.old), ("new", str(SRC))):
            env = {**os.environ, "PYTHONPATH": src}
            cmd = [sys.executable, __file__, "--child", "--old", args.old]
            cmd += ["--repeat", str(args.repeat)]
            if args.database_url:
                cmd += ["--database-url", args.database_url]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
        say(f"round {i + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})")
    print(f"{'shape':46} {'wall old → new (ms)':>22} {'cpu old → new (ms)':>22}")
    for name in runs["old"][0]["wall"]:
        cells = []
        for kind in ("wall", "cpu"):
            old = statistics.median(r[kind][name] for r in runs["old"])
            new = statistics.median(r[kind][name] for r in runs["new"])
            cells.append(f"{old:6.1f} → {new:5.1f} ({new / old:.2f})")
        print(f"{name[:46]:46} {cells[0]:>22} {cells[1]:>22}")


if __name__ == "__main__":
    main()
