"""Replicas: several real `bl serve` processes on one PostgreSQL database and one byte store,
sharing the signing key, behind a real nginx (deploy/), as docs/deploy.md sets them up.

- `pg_admin`: the PostgreSQL of BL_TEST_DATABASE_URL, else a private one started here with
  scripts/pg-start in the run's temporary folder (stopped and purged at the end).
- `pg_demo_dir`: the demo world built once on that server (copy it: `replica_data`).
- `replica_data`: a copy of it whose database is a copy of the demo's, per test.
- `key_file`: an RSA signing key in a PEM file, as an administrator would make it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgdb

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pgdb.postgresql(tmp_path_factory.mktemp("deploy-pg")) as url:
        yield url


@pytest.fixture(scope="session")
def pg_demo_dir(pg_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from brainlife.server.archive import open_archive
    from brainlife.server.demo import build_demo
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("deploy-demo") / "data"
    arch = open_archive(
        Settings(data_dir=data_dir, database_url=pgdb.database_url(data_dir, pg_admin))
    )
    with arch.session() as session:
        build_demo(session, arch)
    arch.engine.dispose()
    return data_dir


def copy_replica_data(pg_demo_dir: Path, data_dir: Path, pg_admin: str) -> str:
    """Copy the demo folder to `data_dir`; returns the URL of its own copy of the database."""
    shutil.copytree(pg_demo_dir, data_dir)
    return pgdb.database_url(data_dir, pg_admin)


@pytest.fixture
def replica_data(pg_demo_dir: Path, pg_admin: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(data folder, database URL): the demo world, this test's own copy."""
    data_dir = tmp_path / "data"
    url = copy_replica_data(pg_demo_dir, data_dir, pg_admin)
    yield data_dir, url
    pgdb.drop_under(tmp_path)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("key") / "signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path
