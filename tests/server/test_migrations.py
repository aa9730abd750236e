"""Schema changes go through Alembic: head matches the models, and reopening loses nothing."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from brainlife.server.archive import open_archive
from brainlife.server.db import Base
from brainlife.server.models import User
from brainlife.server.services.auth import create_user
from tests import pgdb

# The expression index on prov.task_id (migrations 0001 and 0005, one per engine) is not in
# the models: SQLite's cannot be reflected (SQLAlchemy says so in a warning), PostgreSQL's is
# seen as an index to remove; so is PostgreSQL's own subject index with INCLUDE columns
# (0017_pg_listing, none on SQLite). PostgreSQL's project + subject index sorts NULL first
# (0018_pg_sort), which the models do not say (SQLite's order): seen there as an index to
# remove and one to add, with the same name and columns. The models' expression indexes on
# lower(username) and lower(email) (0019) cannot be reflected from SQLite either: Alembic skips
# them there, and tests/server/test_unique_rules.py compares their definitions instead.
# Everything else must match the models exactly.
_ENGINE_INDEXES = ("ix_datasets_prov_task_id", "ix_datasets_subject_removed_id")
_PG_NULLS_FIRST = "ix_datasets_project_subject"


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_head_matches_models(archive):
    with archive.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        postgresql = conn.dialect.name == "postgresql"
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name in _ENGINE_INDEXES)]
    if postgresql:
        mine = [
            d
            for d in diff
            if d[0] in ("remove_index", "add_index") and d[1].name == _PG_NULLS_FIRST
        ]
        assert sorted(d[0] for d in mine) == ["add_index", "remove_index"]
        assert [c.name for c in mine[0][1].columns] == [c.name for c in mine[1][1].columns]
        diff = [d for d in diff if d not in mine]
    assert diff == []


def test_reopening_keeps_data_and_keys(settings):
    first = open_archive(settings)
    with first.session() as session:
        create_user(session, username="kept", password="pw")
        session.commit()
    pub = first.signer.keys.public_pem
    first.engine.dispose()
    second = open_archive(settings)
    with second.session() as session:
        assert session.scalar(select(User.username).where(User.username == "kept")) == "kept"
    assert second.signer.keys.public_pem == pub
    second.engine.dispose()


# --- opening an archive at head skips Alembic (a cheap version check first) -------------------


def test_the_scripts_heads_read_without_alembic_are_alembics_heads(tmp_path):
    from alembic.script import ScriptDirectory

    from brainlife.server.archive import alembic_config, script_heads

    cfg = alembic_config(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert script_heads() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def _script(folder, name, body):
    (folder / name).write_text(f'"""{name}"""\n\n{body}\n\ndef upgrade():\n    pass\n')


def test_heads_of_branches_and_merges_and_unreadable_scripts(tmp_path):
    from brainlife.server.archive import script_heads

    v = tmp_path / "versions"
    v.mkdir()
    (v / "__init__.py").write_text("")
    _script(v, "0001_a.py", 'revision = "0001"\ndown_revision = None')
    _script(v, "0002_b.py", 'revision: str = "0002"\ndown_revision: str | None = "0001"')
    _script(v, "0003_c.py", 'revision = "0003"\ndown_revision = "0001"')
    assert script_heads(v) == {"0002", "0003"}  # two branches: both are heads
    script_heads.cache_clear()
    _script(v, "0004_merge.py", 'revision = "0004"\ndown_revision = ("0002", "0003")')
    assert script_heads(v) == {"0004"}
    script_heads.cache_clear()
    _script(v, "0005_odd.py", 'revision = make_id()\ndown_revision = "0004"')
    assert script_heads(v) is None  # not a literal: Alembic decides
    script_heads.cache_clear()
    _script(v, "0005_odd.py", 'revision = "0005"')
    assert script_heads(v) is None  # no down_revision at all
    script_heads.cache_clear()


def test_an_archive_at_head_opens_without_running_alembic(settings, monkeypatch):
    from alembic import command

    open_archive(settings).engine.dispose()

    def no_alembic(*args, **kwargs):
        raise AssertionError("Alembic ran on an archive at head")

    monkeypatch.setattr(command, "upgrade", no_alembic)
    open_archive(settings).engine.dispose()  # at head: no upgrade
    folder = settings.data_dir.parent / "fresh"
    # on PostgreSQL a new folder's test database is a copy of a migrated one: ask for an empty one
    url = pgdb.database_url(folder, empty=True) if pgdb.ADMIN_URL is not None else None
    fresh = settings.__class__(data_dir=folder, database_url=url)
    with pytest.raises(AssertionError, match="Alembic ran"):
        open_archive(fresh)  # an empty database is not at head


def test_an_archive_behind_head_is_upgraded_and_keeps_its_data(settings):
    from alembic import command
    from sqlalchemy import text

    from brainlife.server.archive import alembic_config, script_heads

    first = open_archive(settings)
    with first.session() as session:
        create_user(session, username="kept", password="pw")
        session.commit()
    cfg = alembic_config(str(first.engine.url))
    with first.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")  # one migration back
        behind = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert set(behind).isdisjoint(script_heads())
    first.engine.dispose()

    second = open_archive(settings)
    with second.engine.connect() as conn:
        now = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert set(now) == script_heads()  # the newest migration ran again
    with second.session() as session:
        assert session.scalar(select(User.username).where(User.username == "kept")) == "kept"
    second.engine.dispose()
