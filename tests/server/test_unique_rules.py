"""Migration 0019: the rules the services check under `db.lock_writes` are held by the database
too (usernames and e-mails unique ignoring case, one finalize job per task, one live app per
service); an archive at 0018 is upgraded with its data, or, when its accounts break a rule,
refused before anything changes with one line naming them; a constraint that fires anyway is
the service's 409, never a 500."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import false, select, text

from brainlife.server.archive import (
    Archive,
    DatabaseUnusable,
    alembic_config,
    open_archive,
    script_heads,
)
from brainlife.server.db import Base, make_engine
from brainlife.server.errors import Conflict
from brainlife.server.models import App, Dataset, FinalizeJob, User
from brainlife.server.services import accounts
from brainlife.server.services.auth import create_user
from tests import pgdb
from tests.server import factories as f

BEFORE = "0018_pg_sort"
NEW_INDEXES = (
    "ux_users_username_lower",
    "ux_users_email_lower",
    "ix_finalize_jobs_task_id",
    "ux_apps_github_live",
)


def _at_0018(settings) -> Archive:
    """An archive made at head, then taken back to 0018 (as an archive of the release before):
    the downgrade of 0019 runs too."""
    from alembic import command

    archive = open_archive(settings)
    cfg = alembic_config(str(archive.engine.url))
    with archive.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, BEFORE)
    assert _version(archive) == BEFORE
    return archive


def _version(archive: Archive) -> str:
    with archive.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _index_sql(engine) -> dict[str, str]:
    """The archive's indexes by name, each as the database states it."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
        return {name: sql for name, sql in conn.execute(text(query))}


def _app(session, github: str, *, removed: bool = False, days: int = 0) -> App:
    row = App(
        id=f.oid(),
        name=f"app of {github}",
        github=github,
        removed=removed,
        create_date=f.when(days),
        inputs=[],
        outputs=[],
        config={},
        extra={},
    )
    session.add(row)
    session.flush()
    return row


def _job(session, task_id: str, dataset: Dataset, state: str, days: int) -> FinalizeJob:
    row = FinalizeJob(
        id=f.oid(),
        dataset_id=dataset.id,
        task_id=task_id,
        folder="",
        state=state,
        attempts=0,
        create_date=f.when(days),
    )
    session.add(row)
    session.flush()
    return row


def _is_integrity_error(archive: Archive, exc: BaseException) -> bool:
    return isinstance(exc.__cause__, archive.engine.dialect.loaded_dbapi.IntegrityError)


# --- the database refuses what the services refuse --------------------------------------------


def test_a_username_or_email_differing_only_by_case_is_refused_by_the_database(archive):
    with archive.session() as session:
        create_user(session, username="Alice", password=None, email="Ann@Example.org")
        create_user(session, username="nomail1", password=None)  # no e-mail: any number of them
        create_user(session, username="nomail2", password=None)
        session.commit()
    refused = (
        ({"username": "alice"}, "username is taken"),
        ({"username": "ALICE"}, "username is taken"),
        ({"username": "bob", "email": "ann@example.ORG"}, "e-mail address belongs"),
    )
    for fields, words in refused:
        with archive.session() as session:
            # `create_user` inserts without the service's check: the index alone refuses
            with pytest.raises(Conflict, match=words) as info:
                create_user(session, password=None, **fields)
            assert _is_integrity_error(archive, info.value)
    with archive.engine.connect() as conn, pytest.raises(Conflict, match="username is taken"):
        conn.execute(text("UPDATE users SET username = 'aLiCe' WHERE username = 'nomail1'"))
    with archive.session() as session:
        create_user(session, username="Alice2", password=None, email="ann@example.net")
        session.commit()
        names = session.scalars(select(User.username).order_by(User.sub)).all()
    assert names == ["Alice", "nomail1", "nomail2", "Alice2"]


def test_one_finalize_job_per_task_and_one_live_app_per_service_held_by_the_database(archive):
    with archive.session() as session:
        proj, dtype = f.project(session), f.datatype(session)
        first, second = (f.dataset(session, proj, dtype, status="storing") for _ in range(2))
        _job(session, "a" * 24, first, "pending", 0)
        session.commit()
        with pytest.raises(Conflict, match="finalized by another request") as info:
            _job(session, "a" * 24, second, "pending", 1)
        assert _is_integrity_error(archive, info.value)
    with archive.session() as session:
        live = _app(session, "org/repo").id
        _app(session, "org/repo", removed=True)  # a removed app keeps its service
        session.commit()
        with pytest.raises(Conflict, match="live app for that github service") as info:
            _app(session, "org/repo")
        assert _is_integrity_error(archive, info.value)
    with archive.session() as session:
        session.execute(
            text("UPDATE apps SET removed = :y WHERE id = :id"), {"y": True, "id": live}
        )
        _app(session, "org/repo")  # its service is free again
        session.commit()
        live_now = session.scalars(select(App.id).where(App.removed.is_(False))).all()
    assert len(live_now) == 1 and live_now[0] != live


def test_a_constraint_that_fires_anyway_is_the_routes_409_not_a_500(archive, http, monkeypatch):
    """The service's check disabled, as for a writer that skipped it: the index refuses and the
    client gets the same kind of answer, a 409 with a message."""
    from tests.conftest import make_token

    with archive.session() as session:
        accounts.add_user(
            session, username="root", password="root-password", email="root@x.org", admin=True
        )
        session.commit()
    headers = {"Authorization": f"Bearer {make_token(archive, 'root')}"}
    body = {"username": "fresh", "password": "a-password"}
    assert http.post("/api/auth/user", json=body, headers=headers).status_code == 200
    monkeypatch.setattr(accounts, "_same", lambda column, value: false())
    for body, words in (
        ({"username": "FRESH", "password": "a-password"}, "username is taken"),
        ({"username": "other", "password": "a-password", "email": "ROOT@x.org"}, "e-mail"),
    ):
        r = http.post("/api/auth/user", json=body, headers=headers)
        assert (r.status_code, words in r.json()["message"]) == (409, True), r.text
    with archive.session() as session:
        assert session.scalar(select(User.sub).where(User.username == "other")) is None


# --- the models and the migration make the same indexes ---------------------------------------


def test_the_models_declare_the_indexes_the_migration_makes(archive, tmp_path):
    """compare_metadata cannot see SQLite's expression indexes, nor any partial index's WHERE:
    the definitions are compared as each database states them."""
    url = pgdb.database_url(tmp_path / "fresh", empty=True) if pgdb.ADMIN_URL else None
    fresh = make_engine(url or f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    try:
        Base.metadata.create_all(fresh)
        made, migrated = _index_sql(fresh), _index_sql(archive.engine)
    finally:
        fresh.dispose()
    for name in NEW_INDEXES:
        assert "UNIQUE" in migrated[name], name
        assert made[name] == migrated[name], name
    assert "WHERE" in migrated["ux_apps_github_live"]


# --- upgrading an archive at 0018 -------------------------------------------------------------


def test_an_archive_at_0018_is_upgraded_with_its_data(settings):
    archive = _at_0018(settings)
    assert not set(NEW_INDEXES[:2] + NEW_INDEXES[3:]) & set(_index_sql(archive.engine))
    with archive.session() as session:
        create_user(session, username="Ann", password=None, email="ann@x.org")
        create_user(session, username="ann.b", password=None, email="Ann@x.org.uk")
        proj, dtype = f.project(session), f.datatype(session)
        ds = [f.dataset(session, proj, dtype, status=s) for s in ("failed", "stored", "storing")]
        ds += [f.dataset(session, proj, dtype, status="storing") for _ in range(2)]
        t1, t2 = "1" * 24, "2" * 24
        _job(session, t1, ds[0], "failed", 0)  # finalized twice at once: the first failed,
        done = _job(session, t1, ds[1], "done", 1)  # the second stored its files: kept
        _job(session, t1, ds[2], "pending", 2)
        first = _job(session, t2, ds[3], "pending", 0)  # none done: the first kept
        _job(session, t2, ds[4], "running", 1)
        apps = [_app(session, "org/a", days=d) for d in (2, 0, 1)]
        single = _app(session, "org/b")
        gone = _app(session, "org/b", removed=True, days=1)
        session.commit()
    archive.engine.dispose()

    upgraded = open_archive(settings)
    try:
        assert _version(upgraded) == "0019_unique_rules" and {_version(upgraded)} == script_heads()
        with upgraded.session() as session:
            jobs = dict(session.execute(select(FinalizeJob.task_id, FinalizeJob.id)).all())
            assert jobs == {t1: done.id, t2: first.id}
            status = dict(session.execute(select(Dataset.id, Dataset.status)).all())
            assert [status[d.id] for d in ds] == ["failed", "stored", "failed", "storing", "failed"]
            why = session.get(Dataset, ds[4].id).status_msg
            assert t2 in why and ds[3].id in why
            removed = dict(session.execute(select(App.id, App.removed)).all())
            assert [removed[a.id] for a in apps] == [True, False, True]
            assert (removed[single.id], removed[gone.id]) == (False, True)
            assert len(session.scalars(select(User.sub)).all()) == 2
            with pytest.raises(Conflict):
                create_user(session, username="ANN", password=None)
    finally:
        upgraded.engine.dispose()


def _two_alices(archive: Archive) -> tuple[int, ...]:
    with archive.session() as session:
        users = [
            create_user(session, username="Alice", password=None, email="a@x.org"),
            create_user(session, username="alice", password=None),
            create_user(session, username="carol", password=None, email="Mail@Y.org"),
            create_user(session, username="dave", password=None, email="mail@y.ORG"),
        ]
        for days in (0, 1):
            _app(session, "org/twice", days=days)
        session.commit()
        return tuple(u.sub for u in users)


def test_accounts_sharing_a_name_stop_the_upgrade_before_it_changes_anything(settings):
    archive = _at_0018(settings)
    alice, alice2, carol, dave = _two_alices(archive)
    archive.engine.dispose()

    with pytest.raises(DatabaseUnusable) as info:
        open_archive(settings)
    said = str(info.value)
    assert "\n" not in said and "stopped before changing anything" in said
    assert f"username 'Alice' (sub {alice}), 'alice' (sub {alice2})" in said
    assert f"e-mail 'Mail@Y.org' (sub {carol}), 'mail@y.ORG' (sub {dave})" in said
    assert f"UPDATE users SET username = 'NEW NAME' WHERE sub = {alice2};" in said
    assert f"UPDATE users SET email = NULL WHERE sub = {dave};" in said
    engine = make_engine(settings.db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE
            live = conn.execute(text("SELECT count(*) FROM apps WHERE NOT removed")).scalar()
            assert live == 2  # the apps' duplicate was not resolved either: nothing changed
            # what the message says to do
            conn.execute(text(f"UPDATE users SET username = 'alice2' WHERE sub = {alice2}"))
            conn.execute(text(f"UPDATE users SET email = NULL WHERE sub = {dave}"))
    finally:
        engine.dispose()
    upgraded = open_archive(settings)
    try:
        assert _version(upgraded) == "0019_unique_rules"
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM apps WHERE NOT removed")).scalar() == 1
    finally:
        upgraded.engine.dispose()


def test_bl_admin_and_bl_serve_say_the_refusal_in_one_line(settings, monkeypatch):
    import uvicorn

    from brainlife.cli.main import cli

    archive = _at_0018(settings)
    alice, alice2, *_ = _two_alices(archive)
    archive.engine.dispose()

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(uvicorn, "run", never)
    where = ["--data-dir", str(settings.data_dir), "--database-url", settings.db_url]
    for args in (["admin", *where, "user", "list"], ["serve", *where, "--port", "9"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1, (args, r.output)
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and errors[0].startswith("Error: Cannot use the database"), r.output
        assert f"'Alice' (sub {alice}), 'alice' (sub {alice2})" in errors[0]
        assert "Traceback" not in r.output and "unexpected failure" not in r.output


def test_bl_admin_migrate_says_the_refusal_in_one_line(settings):
    """`bl admin migrate` brings its SQLite archive to head before copying it: the refusal is
    its one `Error:` line too, and the target is never touched."""
    from brainlife.cli.main import cli

    archive = _at_0018(settings)
    _two_alices(archive)
    archive.engine.dispose()
    target = "postgresql+psycopg://nobody@127.0.0.1:1/never"
    args = ["admin", "--data-dir", str(settings.data_dir), "migrate", "--to-database", target]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        line for line in r.output.strip().splitlines() if line.startswith("Error: the upgrade")
    ]
    assert "'Alice' (sub" in r.output and "Traceback" not in r.output
