"""Builds (once, then cached under bench/out/) an archive with 1,000,000 data objects for the
listing benchmark.

The schema comes from `open_archive` (the real migrations); the small tables (users, projects,
datatypes, publications) are written through the ORM, the big ones (datasets and their tags,
datatype_tags and publications association rows) with `sqlite3.executemany` inside one
transaction. The cache key covers the migrations and this file's build parameters, so a schema
change (e.g. a new index in a migration) rebuilds the database.

The world (seeded, so every build is identical):

- 10 projects of skewed size (30 % … 2 % of the rows); the benchmark user `bench` is a member of
  p0, p1 and p2; p3 and p4 are public; p5–p9 are private to others;
- 20 datatypes of Zipf-like popularity; subjects `0001`… (about 100 objects per subject),
  sessions in half of the projects, runs in some;
- 0–3 tags from 40, 0–2 datatype tags from 10 per object; 3 % removed;
- 3 releases: R0 (about 50,000 objects of p0), R1 (20,000 of p3) and R2 (10,000 of the private,
  non-member p7: readable through the "published" branch of the access rule).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import OUT, say

BUILD_VERSION = "listing-v1"
N_ROWS = 1_000_000
USERNAME = "bench"
PASSWORD = "bench-password-123"
SEED = 20261121

PROJECT_SHARES = [0.30, 0.20, 0.12, 0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02]
MEMBER_OF = (0, 1, 2)
PUBLIC = (3, 4)
N_DATATYPES = 20
TAGS = [f"tag{i:02d}" for i in range(40)]
DATATYPE_TAGS = [
    "acpc_aligned",
    "preprocessed",
    "masked",
    "defaced",
    "fsl",
    "mrtrix",
    "single_shell",
    "multi_shell",
    "normalized",
    "clean",
]
#: (release index, project index, number of objects)
RELEASES = [(0, 0, 50_000), (1, 3, 20_000), (2, 7, 10_000)]


@dataclass
class World:
    """Ids the benchmark's queries refer to."""

    data_dir: Path
    projects: list[str]
    datatypes: list[str]
    releases: list[str]
    n_rows: int


def _oid(rng: random.Random, when: datetime) -> str:
    return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"


def _cache_key(n_rows: int) -> str:
    from brainlife.server import archive

    digest = hashlib.sha256(f"{BUILD_VERSION}:{n_rows}:{SEED}".encode())
    for path in sorted((archive.MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


def _ids(n_rows: int) -> dict[str, list[str]]:
    rng = random.Random(SEED)
    base = datetime(2018, 1, 1, tzinfo=UTC)
    return {
        "projects": [_oid(rng, base) for _ in PROJECT_SHARES],
        "datatypes": [_oid(rng, base) for _ in range(N_DATATYPES)],
        "publications": [_oid(rng, base) for _ in RELEASES],
        "releases": [_oid(rng, base) for _ in RELEASES],
    }


def ensure_world(n_rows: int = N_ROWS) -> World:
    """The cached database for `n_rows` objects, built when missing or stale."""
    key = _cache_key(n_rows)
    root = OUT / f"listing-{n_rows}-{key}"
    data_dir = root / "data"
    ids = _ids(n_rows)
    world = World(data_dir, ids["projects"], ids["datatypes"], ids["releases"], n_rows)
    if (root / "complete").exists():
        say(f"listing: reusing the cached database {data_dir}")
        return world
    for old in OUT.glob(f"listing-{n_rows}-*"):
        shutil.rmtree(old, ignore_errors=True)
    t0 = time.perf_counter()
    _build(data_dir, ids, n_rows)
    (root / "complete").write_text(f"built in {time.perf_counter() - t0:.1f} s\n")
    say(f"listing: built {n_rows} objects in {time.perf_counter() - t0:.1f} s ({data_dir})")
    return world


def _build(data_dir: Path, ids: dict[str, list[str]], n_rows: int) -> None:
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    archive = open_archive(Settings(data_dir=data_dir))
    build_small(archive, ids)
    archive.engine.dispose()
    _bulk_datasets(data_dir / "archive.sqlite3", ids, n_rows)


def build_small(archive: Any, ids: dict[str, list[str]]) -> None:
    """The small tables (users, projects, datatypes, publications), through the ORM."""
    from brainlife.server.models import (
        Datatype,
        Group,
        GroupMember,
        Project,
        ProjectRole,
        Publication,
        Release,
    )
    from brainlife.server.services.auth import create_user

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with archive.session() as session:
        user = create_user(session, username=USERNAME, password=PASSWORD, fullname="Bench User")
        owner = create_user(session, username="owner", password=None)
        for i, pid in enumerate(ids["projects"]):
            session.add(Group(id=100 + i, name=f"p{i}"))
            session.add(
                Project(
                    id=pid,
                    group_id=100 + i,
                    user_id=str(owner.sub),
                    name=f"Project {i}",
                    desc=f"benchmark project {i}",
                    access="public" if i in PUBLIC else "private",
                    create_date=now,
                    extra={},
                )
            )
            session.flush()
            session.add(ProjectRole(project_id=pid, role="admins", sub=str(owner.sub), pos=0))
            session.add(GroupMember(group_id=100 + i, sub=owner.sub, role="admin"))
            if i in MEMBER_OF:
                session.add(ProjectRole(project_id=pid, role="members", sub=str(user.sub), pos=0))
                session.add(GroupMember(group_id=100 + i, sub=user.sub, role="member"))
        for i, dtid in enumerate(ids["datatypes"]):
            session.add(
                Datatype(
                    id=dtid,
                    name=f"neuro/bench{i:02d}",
                    desc=f"datatype {i}",
                    create_date=now,
                    extra={"files": [], "datatype_tags": []},
                )
            )
        for (r, p, _n), pubid, relid in zip(
            RELEASES, ids["publications"], ids["releases"], strict=True
        ):
            pub = Publication(
                id=pubid,
                project_id=ids["projects"][p],
                user_id=str(owner.sub),
                name=f"Publication {r}",
                create_date=now,
                extra={"authors": [str(owner.sub)]},
            )
            pub.releases.append(
                Release(id=relid, pos=0, name="1", create_date=now, extra={"sets": []})
            )
            session.add(pub)
        session.commit()


def _bulk_datasets(db: Path, ids: dict[str, list[str]], n_rows: int) -> None:
    rng = random.Random(SEED + 1)
    projects = ids["projects"]
    datatypes = ids["datatypes"]
    dt_weights = [1 / (k + 1) for k in range(N_DATATYPES)]
    counts = [int(share * n_rows) for share in PROJECT_SHARES]
    counts[0] += n_rows - sum(counts)
    # one project index per row, shuffled: projects grow side by side over the years
    owner_of = [p for p, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(owner_of)
    subjects = [max(20, c // 100) for c in counts]
    has_sessions = [p % 2 == 0 for p in range(len(counts))]
    has_runs = [p % 3 == 0 for p in range(len(counts))]
    release_pick = {p: (r, n / counts[p]) for r, p, n in RELEASES}

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("BEGIN")
    start = datetime(2018, 1, 1, tzinfo=UTC)
    step = (5 * 365 * 86400) / n_rows
    batch: list[tuple[object, ...]] = []
    tags: list[tuple[str, str, int]] = []
    dtags: list[tuple[str, str, int]] = []
    pubs: list[tuple[str, str, int]] = []
    insert = (
        "INSERT INTO datasets (id, project_id, datatype_id, user_id, desc, storage, status,"
        " status_msg, removed, size, subject, session, run, create_date, update_date, meta,"
        " prov, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )

    def flush() -> None:
        conn.executemany(insert, batch)
        conn.executemany("INSERT INTO dataset_tags (dataset_id, tag, pos) VALUES (?,?,?)", tags)
        conn.executemany(
            "INSERT INTO dataset_datatype_tags (dataset_id, tag, pos) VALUES (?,?,?)", dtags
        )
        conn.executemany(
            "INSERT INTO dataset_publications (dataset_id, release_id, pos) VALUES (?,?,?)", pubs
        )
        batch.clear()
        tags.clear()
        dtags.clear()
        pubs.clear()

    for i, p in enumerate(owner_of):
        when = start + timedelta(seconds=i * step)
        oid = f"{int(when.timestamp()):08x}{rng.getrandbits(64):016x}"
        dt = rng.choices(range(N_DATATYPES), dt_weights)[0]
        subject = f"{rng.randrange(1, subjects[p] + 1):04d}"
        session = str(rng.randrange(1, 4)) if has_sessions[p] else None
        run = str(rng.randrange(1, 3)) if has_runs[p] and rng.random() < 0.5 else None
        meta: dict[str, str] = {"subject": subject}
        if session:
            meta["session"] = session
        if run:
            meta["run"] = run
        roll = rng.random()
        status = "stored" if roll < 0.97 else ("failed" if roll < 0.99 else "storing")
        removed = 1 if rng.random() < 0.03 else 0
        batch.append(
            (
                oid,
                projects[p],
                datatypes[dt],
                "2",
                f"bench{dt:02d} for {subject}",
                "local" if status == "stored" else None,
                status,
                None,
                removed,
                rng.randrange(1_000_000, 2_000_000_000) if status == "stored" else None,
                subject,
                session,
                run,
                when.strftime("%Y-%m-%d %H:%M:%S.%f"),
                None,
                json.dumps(meta),
                json.dumps({"task": {"_id": oid}}),
                '{"download_count": 0}',
            )
        )
        for pos, tag in enumerate(rng.sample(TAGS, rng.choice((0, 1, 1, 2, 3)))):
            tags.append((oid, tag, pos))
        for pos, tag in enumerate(rng.sample(DATATYPE_TAGS, rng.choice((0, 1, 1, 2)))):
            dtags.append((oid, tag, pos))
        if p in release_pick:
            r, prob = release_pick[p]
            if rng.random() < prob:
                pubs.append((oid, ids["releases"][r], 0))
        if len(batch) >= 50_000:
            flush()
    flush()
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
