"""Opening an archive: the data directory, its database (migrated to head), keys and store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from brainlife.server.db import make_engine, make_sessionmaker
from brainlife.server.settings import Settings
from brainlife.server.store import LocalStore
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
    store: LocalStore

    def session(self) -> Session:
        return self.sessions()


def open_archive(settings: Settings) -> Archive:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    keys = load_or_create_keys(settings.keys_dir)
    settings.tasks_dir.mkdir(parents=True, exist_ok=True)
    store = LocalStore(settings.store_dir)
    store.clean_tmp()
    return Archive(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        signer=TokenSigner(keys, settings.issuer),
        store=store,
    )
