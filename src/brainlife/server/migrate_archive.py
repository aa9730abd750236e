"""`bl admin migrate`: an embedded archive (SQLite + local store + task folders) copied into
PostgreSQL and/or an S3 bucket, then verified. Resumable: every step copies only what the target
lacks, so a run that was killed (even with SIGKILL) is finished by running it again.

- **Which archive.** The source is named by the sha256 of its public signing key (the keys stay
  with the data folder; the target server uses them). A fresh target is claimed first: a row of
  `archive_migrations` in the database, an object `<prefix>migration-source` in the bucket. A
  target that holds anything else (an archive's rows, blobs) and no claim of this source is
  refused: nothing is written to it.
- **Rows** are copied table by table in primary-key order, in batches, with
  `INSERT … ON CONFLICT DO NOTHING` (a rerun skips what is there: no duplicate rows). The
  target's own triggers (PostgreSQL's count tables, `0012_postgresql`) are off during the copy
  (`ALTER TABLE … DISABLE TRIGGER USER`, as the tables' owner), since the count tables are copied
  as they are; they are back on at the end, and serial counters moved past the copied ids.
- **Bytes**: every blob of the local store that any row names goes to the bucket unless there
  (checked against its sha256 on the way); every task folder becomes the task's
  `task_output_files` rows (`storetaskfiles.import_folder`) in the target database.
- **Verify**: row counts per table equal, every task folder's files listed, and every sha256 the
  target names read back from the target store and hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from brainlife.server.archive import UpgradeRefused, migrate
from brainlife.server.db import Base, make_engine, make_sessionmaker
from brainlife.server.models import (
    ArchiveMigration,
    DatasetFile,
    ProjectFile,
    TaskOutputFile,
    UploadFile,
)
from brainlife.server.settings import Settings
from brainlife.server.store import ByteStore, LocalStore

#: rows per INSERT
BATCH = 500
#: blobs copied (and read back) at once: each is a few requests that mostly wait on the store
JOBS = 8
#: tables whose rows are made by the migration itself (not copied, not counted)
OWN_TABLES = {"archive_migrations", "task_output_files"}


class MigrationError(RuntimeError):
    """The migration cannot go on; the message says why and what to do."""


@dataclass
class Report:
    source_id: str
    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blobs_copied: int = 0
    task_files: int = 0
    verified_blobs: int = 0


def source_id(settings: Settings) -> str:
    pub = settings.keys_dir / "auth.pub"
    if not pub.exists():
        raise MigrationError(f"{settings.data_dir} holds no archive (no {pub}).")
    return hashlib.sha256(pub.read_bytes()).hexdigest()


def _tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in OWN_TABLES]


def run(
    data_dir: Path,
    *,
    to_database: str | None,
    to_store: str | None,
    s3_endpoint: str | None = None,
    say: Callable[[str], None] = lambda _: None,
    jobs: int = JOBS,
) -> Report:
    if not to_database and not to_store:
        raise MigrationError("Name a target: --to-database URL and/or --to-store s3://BUCKET.")
    settings = Settings(data_dir=data_dir)
    if not (data_dir / "archive.sqlite3").exists():
        raise MigrationError(
            f"No embedded archive in {data_dir} (archive.sqlite3 is missing): pass the "
            "--data-dir given to 'bl serve'."
        )
    sid = source_id(settings)
    report = Report(sid)
    source = make_engine(settings.db_url)
    try:
        migrate(source)
    except UpgradeRefused as exc:
        source.dispose()
        raise MigrationError(str(exc)) from None
    target = _open_database(to_database) if to_database else source
    try:
        store = _open_store(to_store, s3_endpoint) if to_store else None
        if to_database:
            _claim_database(target, sid)
        if store is not None:
            _claim_store(store, sid)
        if to_database:
            _copy_rows(source, target, report, say)
        if store is not None:
            _copy_blobs(source, LocalStore(settings.store_dir), store, report, say, jobs)
            _copy_task_folders(target, store, settings.tasks_dir, report, say)
        _verify(source, target, store, report, say, jobs)
        if to_database:
            with make_sessionmaker(target)() as s, s.begin():
                row = s.get(ArchiveMigration, sid)
                if row is not None:
                    row.done = True
    finally:
        source.dispose()
        if target is not source:
            target.dispose()
    return report


def _open_database(url: str) -> Engine:
    if not url.startswith("postgresql"):
        raise MigrationError(
            f"--to-database must be a PostgreSQL URL (postgresql+psycopg://…), got {url!r}."
        )
    try:
        engine = make_engine(url)
        migrate(engine)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise MigrationError(f"Cannot use the target database: {reason}") from None
    return engine


def _open_store(url: str, endpoint: str | None) -> ByteStore:
    from brainlife.server.s3store import S3Store, StoreUnavailable

    try:
        return S3Store.from_url(url, endpoint_url=endpoint)
    except (StoreUnavailable, ValueError) as exc:
        raise MigrationError(f"Cannot use the target store: {exc}") from None


def _claim_database(target: Engine, sid: str) -> None:
    """Record that `target` receives this archive; refuse one that holds another's rows."""
    with make_sessionmaker(target)() as s, s.begin():
        claims = list(s.scalars(select(ArchiveMigration)))
        if any(c.source_id == sid for c in claims):
            return
        if claims or any(s.scalar(select(func.count()).select_from(t)) for t in _tables()):
            raise MigrationError(
                "The target database is not empty and is not a previous migration of this "
                "archive: give an empty database (createdb), or the one a run of this command "
                "on this archive was interrupted on."
            )
        s.add(ArchiveMigration(source_id=sid, done=False))


def _claim_store(store: ByteStore, sid: str) -> None:
    from brainlife.server.s3store import S3Store

    assert isinstance(store, S3Store)
    key = f"{store.prefix}migration-source"
    client, bucket = store.client, store.bucket
    from botocore.exceptions import ClientError

    try:
        claim = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) not in ("404", "NoSuchKey"):
            raise
        claim = None
    if claim is not None and json.loads(claim).get("source") == sid:
        return
    listed = client.list_objects_v2(Bucket=bucket, Prefix=store.prefix, MaxKeys=1)
    if claim is not None or listed.get("KeyCount", 0):
        raise MigrationError(
            f"The target store s3://{bucket}/{store.prefix} is not empty and is not a previous "
            "migration of this archive: give an empty bucket or prefix, or the one a run of "
            "this command on this archive was interrupted on."
        )
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"source": sid}).encode())


def _pk_order(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _copy_rows(source: Engine, target: Engine, report: Report, say: Callable[[str], None]) -> None:
    from sqlalchemy.dialects.postgresql import insert

    tables = _tables()
    with target.begin() as conn:
        for t in tables:
            conn.execute(text(f'ALTER TABLE "{t.name}" DISABLE TRIGGER USER'))
    for t in tables:
        copied = 0
        with source.connect() as src:
            result = src.execution_options(stream_results=True).execute(
                select(t).order_by(*_pk_order(t))
            )
            for batch in result.mappings().partitions(BATCH):
                rows = [dict(r) for r in batch]
                with target.begin() as dst:
                    dst.execute(insert(t).on_conflict_do_nothing(), rows)
                copied += len(rows)
        report.rows[t.name] = copied
        if copied:
            say(f"rows: {t.name}: {copied}")
    with target.begin() as conn:
        for t in tables:
            conn.execute(text(f'ALTER TABLE "{t.name}" ENABLE TRIGGER USER'))
            for col in t.primary_key.columns:
                seq = conn.scalar(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": f'"{t.name}"', "c": col.name},
                )
                if seq is not None:  # serial ids go on after the copied ones
                    top = conn.scalar(select(func.max(col)))
                    conn.execute(
                        text("SELECT setval(:s, :v, false)"), {"s": seq, "v": int(top or 0) + 1}
                    )


def _named_blobs(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        found: set[str] = set()
        for model in (DatasetFile, ProjectFile):
            found.update(conn.scalars(select(model.sha256).distinct()))
        found.update(
            conn.scalars(select(UploadFile.sha256).where(UploadFile.stored.is_(True)).distinct())
        )
    return found


def _copy_blobs(
    source: Engine,
    local: LocalStore,
    store: ByteStore,
    report: Report,
    say: Callable[[str], None],
    jobs: int,
) -> None:
    from brainlife.server.store import put_file

    blobs = sorted(_named_blobs(source))
    report.blobs = len(blobs)

    def copy(sha: str) -> bool:
        if store.has(sha):
            return False
        path = local.local_path(sha)
        if path is None or not path.exists():
            raise MigrationError(f"The source store lacks blob {sha} that a row names.")
        put_file(store, path, sha256=sha)
        return True

    for n, copied in enumerate(_each(copy, blobs, jobs), 1):
        report.blobs_copied += copied
        if n % 200 == 0:
            say(f"blobs: {n}/{len(blobs)}")


def _each(work: Callable[[str], Any], items: list[str], jobs: int) -> Iterator[Any]:
    """``work(item)`` for every item on ``jobs`` threads (the store's requests wait on the
    network far more than they compute), yielding the results as they come; the first error
    stops the rest (the work not yet started is dropped) and is raised."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    if jobs <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bl-migrate") as pool:
        todo = iter(items)
        running: set[Future[Any]] = set()
        try:
            while True:
                for item in todo:
                    running.add(pool.submit(work, item))
                    if len(running) >= 2 * jobs:
                        break
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in running:
                fut.cancel()


def _copy_task_folders(
    target: Engine, store: ByteStore, tasks_dir: Path, report: Report, say: Callable[[str], None]
) -> None:
    from brainlife.server.models import Task
    from brainlife.server.storetaskfiles import StoreTaskFiles

    sessions = make_sessionmaker(target)
    files = StoreTaskFiles(sessions, store, tasks_dir)
    with sessions() as s:
        known = set(s.scalars(select(Task.id)))
    folders = (
        sorted(p for p in tasks_dir.iterdir() if p.is_dir() and p.name in known)
        if (tasks_dir.is_dir())
        else []
    )
    for folder in folders:
        report.task_files += files.import_folder(folder.name, folder)
    if folders:
        say(f"task folders: {len(folders)} ({report.task_files} files)")


def _verify(
    source: Engine,
    target: Engine,
    store: ByteStore | None,
    report: Report,
    say: Callable[[str], None],
    jobs: int,
) -> None:
    if target is not source:
        wrong = []
        with source.connect() as src, target.connect() as dst:
            for t in _tables():
                a = src.scalar(select(func.count()).select_from(t))
                b = dst.scalar(select(func.count()).select_from(t))
                report.rows[t.name] = int(b or 0)
                if a != b:
                    wrong.append(f"{t.name}: {a} in the source, {b} in the target")
        if wrong:
            raise MigrationError("Verification failed: " + "; ".join(wrong))
        say(f"verified: row counts of {len(report.rows)} tables")
    if store is None:
        return
    names = _named_blobs(target)
    with target.connect() as conn:
        names.update(conn.scalars(select(TaskOutputFile.sha256).distinct()))

    def check(sha: str) -> None:
        digest = hashlib.sha256()
        for chunk in store.read_range(sha, 0, store.size(sha)):
            digest.update(chunk)
        if digest.hexdigest() != sha:
            raise MigrationError(f"Verification failed: blob {sha} reads back as another digest.")

    for _ in _each(check, sorted(names), jobs):
        report.verified_blobs += 1
    say(f"verified: {report.verified_blobs} blobs read back from the store")
