"""Opening an archive: the data directory, its database (migrated to head), keys, the store and
the task outputs."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from brainlife.server.db import make_engine, make_sessionmaker
from brainlife.server.settings import Settings
from brainlife.server.store import ByteStore, LocalStore
from brainlife.server.taskstore import LocalTaskFiles, TaskFiles
from brainlife.server.tokens import TokenSigner, signing_keys

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (never drop-and-recreate).

    An archive already at head (every start but the first after an upgrade) skips Alembic:
    loading it and its scripts cost about 0.7 s of CPU per `bl serve` start, to do nothing."""
    if _at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(str(engine.url))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@functools.cache
def script_heads(versions: Path = MIGRATIONS / "versions") -> frozenset[str] | None:
    """The head revisions of the migration scripts in `versions`, read from their plain
    `revision = "…"` and `down_revision = …` assignments without importing them or Alembic; None
    when a script does not state them as literals (Alembic then decides, as it always may)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted(versions.glob("*.py")):
        if script.name == "__init__.py":
            continue
        found: dict[str, Any] = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and node.targets:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    found[target.id] = ...
        revision, down = found.get("revision"), found.get("down_revision", ...)
        downs = down if isinstance(down, tuple | list) else () if down is None else (down,)
        if not isinstance(revision, str) or not all(isinstance(d, str) for d in downs):
            return None
        revisions.add(revision)
        parents.update(downs)
    return frozenset(revisions - parents) or None


def _at_head(engine: Engine) -> bool:
    """Whether the database's Alembic version rows are exactly the scripts' heads."""
    heads = script_heads()
    if heads is None:
        return False
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return frozenset(stamped) == heads and len(stamped) == len(heads)


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
    #: the same budget, in autocommit (`read_session`)
    read_sessions: sessionmaker[Session] | None = None

    def session(self) -> Session:
        """A session without a time budget (the CLI, ingest, the demo build)."""
        return self.sessions()

    def request_session(self) -> Session:
        """A session for a request: each statement runs under the query time budget."""
        return self._budgeted()[0]()

    def read_session(self) -> Session:
        """A session for a request that only reads (the token check, the data-object listing:
        `deps.ReadSession`): under the query time budget, in autocommit, so that on PostgreSQL
        no BEGIN and ROLLBACK round trips surround its statements (two of a listing's six, each
        a wake-up of two processes on a loaded machine; issue #11). What its statements see is
        unchanged: in a READ COMMITTED transaction (PostgreSQL's default, ours) each statement
        takes its own snapshot anyway, and SQLite's driver starts no transaction for a SELECT.
        Nothing may be written in it: each statement would be committed on its own."""
        return self._budgeted()[1]()

    def _budgeted(self) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
        """Both budgeted sessionmakers, made again together (with the settings' budget of
        now) once either was dropped."""
        if self.request_sessions is None or self.read_sessions is None:
            budget = self.settings.query_timeout
            self.request_sessions = make_sessionmaker(self.engine, query_timeout=budget)
            self.read_sessions = make_sessionmaker(
                self.engine, query_timeout=budget, autocommit=True
            )
        return self.request_sessions, self.read_sessions


def open_store(settings: Settings) -> ByteStore:
    """The content store the settings name: the local one, or a bucket (`s3store`)."""
    if settings.store_url:
        from brainlife.server.s3store import S3Store

        return S3Store.from_url(settings.store_url, endpoint_url=settings.s3_endpoint)
    store = LocalStore(settings.store_dir)
    store.clean_tmp()
    return store


class UpgradeRefused(Exception):
    """A migration found rows that break a rule it is about to make a constraint of, and
    stopped before changing anything. The message (one line) names the rows and what to do."""


class DatabaseUnusable(Exception):
    """The archive's database cannot be used: a URL no driver takes, a server that does not
    answer (``unreachable``), or rows an upgrade refuses (`UpgradeRefused`). The message names
    the URL without its password."""

    def __init__(self, url: str, exc: BaseException) -> None:
        from sqlalchemy.exc import ArgumentError, OperationalError
        from sqlalchemy.exc import NoSuchModuleError as _NoDriver

        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            shown = "(unreadable URL)"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if isinstance(exc, _NoDriver):
            reason += " (e.g. postgresql+psycopg://USER@HOST/DB)"
        super().__init__(f"Cannot use the database {shown}: {reason}")
        self.unreachable = isinstance(exc, OperationalError) and not url.startswith("sqlite")


def open_archive(settings: Settings) -> Archive:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # the key first: a replica given an unusable one stops before it touches the database
    keys = signing_keys(
        settings.keys_dir, pem=settings.signing_key, key_file=settings.signing_key_file
    )
    try:
        engine = make_engine(settings.db_url)
        migrate(engine)
    except (SQLAlchemyError, UpgradeRefused) as exc:
        raise DatabaseUnusable(settings.db_url, exc) from exc
    settings.tasks_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    sessions = make_sessionmaker(engine)
    task_files: TaskFiles
    if settings.store_url:
        # every byte in the bucket, task outputs included (`storetaskfiles`)
        from brainlife.server.storetaskfiles import StoreTaskFiles

        task_files = StoreTaskFiles(sessions, store, settings.tasks_dir)
    else:
        task_files = LocalTaskFiles(settings.tasks_dir)
    task_files.clean_uploads()
    return Archive(
        settings=settings,
        engine=engine,
        sessions=sessions,
        signer=TokenSigner(keys, settings.issuer),
        store=store,
        task_files=task_files,
    )
