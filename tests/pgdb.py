"""The server tests on PostgreSQL: `BL_TEST_DATABASE_URL=postgresql+psycopg://…/postgres`.

Set, every archive the tests open lives in a PostgreSQL database of its own instead of the
SQLite file of its data folder. The tests need no change: `Settings.db_url` (patched for the
run by tests/conftest.py) maps each data folder to a database of that server, made on first
use by `CREATE DATABASE … TEMPLATE` (a file copy, ~0.1 s) from

- the run's empty template: a database migrated to head once (named after a hash of the
  migration files, so it is made again when they change), or
- the database of the folder it was copied from: a data folder records its database in
  `.test-database` and `shutil.copytree` carries that file along, so a copy of the demo
  archive gets a copy of the demo's database.

`start_server` passes the folder's URL to `bl serve --database-url`. Databases of a test's
`tmp_path` are dropped when the test ends, the others when the run (worker) ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ADMIN_URL = os.environ.get("BL_TEST_DATABASE_URL") or None
MARKER = ".test-database"
_MIGRATIONS = Path(__file__).parents[1] / "src/brainlife/server/migrations/versions"

#: data folder -> (database name, admin URL of its server), of this process
_made: dict[Path, tuple[str, str]] = {}


def _connect(admin: str):
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(admin)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
    )


def url_of(name: str, admin: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def _exists(conn, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def _create(conn, name: str, template: str) -> None:
    # a template being copied by another worker at the same moment is "being accessed"
    for attempt in range(100):
        try:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except Exception as exc:  # psycopg.errors.ObjectInUse
            if "being accessed" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def _empty_template(admin: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(_MIGRATIONS.glob("*.py")):
        digest.update(path.read_bytes())
    name = f"bl_template_{digest.hexdigest()[:12]}"
    with _connect(admin) as conn:
        conn.execute("SELECT pg_advisory_lock(7411)")
        try:
            if not _exists(conn, name):
                scratch = f"{name}_building_{os.getpid()}"
                conn.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
                conn.execute(f'CREATE DATABASE "{scratch}"')
                from brainlife.server.archive import migrate
                from brainlife.server.db import make_engine

                engine = make_engine(url_of(scratch, admin))
                migrate(engine)
                engine.dispose()
                conn.execute(f'ALTER DATABASE "{scratch}" RENAME TO "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(7411)")
    return name


def database_url(data_dir: Path, admin: str | None = None, *, empty: bool = False) -> str:
    """The URL of the database of `data_dir` (made on first use) on the server of `admin`
    (default: BL_TEST_DATABASE_URL); `empty`: made without any table, as a new server's."""
    admin = admin or ADMIN_URL or ""
    data_dir = Path(data_dir).resolve()
    if data_dir in _made:
        return url_of(_made[data_dir][0], admin)
    name = "bl_t_" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    marker = data_dir / MARKER
    source = marker.read_text().strip() if marker.exists() else None
    with _connect(admin) as conn:
        if _exists(conn, name) and source != name:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # a previous run's
        if not _exists(conn, name):
            _create(conn, name, "template0" if empty else source or _empty_template(admin))
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(name)
    _made[data_dir] = (name, admin)
    return url_of(name, admin)


def drop_under(folder: Path | None) -> None:
    """Drop the databases of the data folders under `folder` (None: all of this process)."""
    doomed = [d for d in _made if folder is None or d.is_relative_to(folder.resolve())]
    for data_dir in doomed:
        name, admin = _made.pop(data_dir)
        with _connect(admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgresql(folder: Path) -> Iterator[str]:
    """The admin URL of a PostgreSQL for a module or session fixture: the pass's
    (BL_TEST_DATABASE_URL) when set, else a private one started in `folder` with
    scripts/pg-start, stopped and purged on exit."""
    if ADMIN_URL is not None:
        yield ADMIN_URL
        return
    root = Path(__file__).parents[1]
    out = subprocess.run(
        [str(root / "scripts/pg-start"), str(folder)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    url = dict(line.split("=", 1) for line in out.splitlines())["BL_PG_URL"]
    try:
        yield url
    finally:
        # its databases go with the purged cluster: forget them, so that no later
        # `drop_under(None)` knocks on a server that is gone
        for data_dir in [d for d, (_, admin) in _made.items() if admin == url]:
            del _made[data_dir]
        subprocess.run([str(root / "scripts/pg-stop"), str(folder), "--purge"], check=True)
