"""Fixtures of the object-store tests: a real PostgreSQL (`pg_admin`) beside radosgw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgdb

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The admin URL of a PostgreSQL: BL_TEST_DATABASE_URL's, else one started here."""
    with pgdb.postgresql(tmp_path_factory.mktemp("pg")) as url:
        yield url
