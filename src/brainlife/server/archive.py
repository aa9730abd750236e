"""Opening an archive: the data directory, its database (migrated to head), keys, the store and
the task outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from brainlife.server.db import make_engine, make_sessionmaker
from brainlife.server.settings import Settings
from brainlife.server.store import ByteStore, LocalStore
from brainlife.server.taskstore import LocalTaskFiles, TaskFiles
from brainlife.server.tokens import TokenSigner, load_or_create_keys

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (never drop-and-recreate)."""
    from alembic import command

    cfg = alembic_config(str(engine.url))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass
class Archive:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    signer: TokenSigner
    store: ByteStore
    #: where task outputs are read from (`taskstore`)
    task_files: TaskFiles
    #: sessions whose statements have `settings.query_timeout` seconds each (see `db`)
    request_sessions: sessionmaker[Session] | None = None

    def session(self) -> Session:
        """A session without a time budget (the CLI, ingest, the demo build)."""
        return self.sessions()

    def request_session(self) -> Session:
        """A session for a request: each statement runs under the query time budget."""
        if self.request_sessions is None:
            self.request_sessions = make_sessionmaker(
                self.engine, query_timeout=self.settings.query_timeout
            )
        return self.request_sessions()


def open_archive(settings: Settings) -> Archive:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    keys = load_or_create_keys(settings.keys_dir)
    settings.tasks_dir.mkdir(parents=True, exist_ok=True)
    store = LocalStore(settings.store_dir)
    store.clean_tmp()
    task_files = LocalTaskFiles(settings.tasks_dir)
    task_files.clean_uploads()
    return Archive(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        signer=TokenSigner(keys, settings.issuer),
        store=store,
        task_files=task_files,
    )
