"""Fixtures of the object-store tests: a real PostgreSQL (`pg_admin`) beside radosgw."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgdb

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The admin URL of a PostgreSQL: BL_TEST_DATABASE_URL's, else one started here."""
    if pgdb.ADMIN_URL is not None:
        yield pgdb.ADMIN_URL
        return
    folder = tmp_path_factory.mktemp("pg")
    out = subprocess.run(
        [str(ROOT / "scripts/pg-start"), str(folder)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    try:
        yield dict(line.split("=", 1) for line in out.splitlines())["BL_PG_URL"]
    finally:
        subprocess.run([str(ROOT / "scripts/pg-stop"), str(folder), "--purge"], check=True)
