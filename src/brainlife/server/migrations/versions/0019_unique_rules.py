"""Unique indexes backing the rules the services check under `db.lock_writes`

Revision ID: 0019_unique_rules
Revises: 0018_pg_sort
Create Date: 2026-12-02 21:30:00

Three rules were held only by the services, each check-then-write made under a named lock
(docs/decisions.md, "Check-then-write steps run under a named lock"); the database now refuses
what breaks them too, whoever writes:

- usernames, and e-mail addresses, are unique ignoring case: `ux_users_username_lower` and
  `ux_users_email_lower`, on the database's `lower()` of the column, which is what
  `services.accounts` compares: ASCII letters only on both engines (SQLite's lower(), and
  PostgreSQL's under the "C" collation 0016 gave every text column; usernames are ASCII).
  The case-sensitive `uq_users_*` constraints of 0001 stay: implied by these, harmless, and
  dropping one on SQLite would mean copying the table;
- one finalize job per task: `ix_finalize_jobs_task_id` (0008) becomes unique;
- one live (not removed) app per `github` service: `ux_apps_github_live`, partial (`WHERE NOT
  removed`: a removed app keeps its service, and a new one may take it).

Rows already breaking a rule (written before the locks existed) are dealt with first:

- accounts sharing a username or an e-mail ignoring case: the upgrade refuses, before it changes
  anything, with one message naming the accounts (`UpgradeRefused`). Which account keeps the
  name, or who owns an address, is a person's decision: each account may have logged in, own
  projects and hold tokens, and renaming one changes how its owner signs in;
- several finalize jobs of one task (the same upload finalized twice at once): the job kept is
  the first `done` one, else the first made, which is what the service would have answered the
  later requests. The other job rows are deleted; their data objects stay (an object already
  stored is a duplicate its project's admins can remove), and one still `storing`, which no job
  would ever finish now, is marked `failed` with a message naming the object kept;
- several live apps of one service (an app posted twice at once): the first made stays live,
  the others are marked removed (kept, readable by id), which is what the service's check
  would have refused.

The downgrade drops the indexes (and makes the finalize index non-unique again); what the
upgrade resolved stays resolved, as it breaks no rule of 0018.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from brainlife.server.archive import UpgradeRefused

revision = "0019_unique_rules"
down_revision = "0018_pg_sort"
branch_labels = None
depends_on = None

log = logging.getLogger("brainlife.server.migrations")

#: conflicting groups named in the refusal, at most (the rest counted)
_SHOWN = 10
_NOT_REMOVED = sa.text("NOT removed")


def _shared(conn: Any, column: str) -> list[list[tuple[int, str]]]:
    """Groups of accounts whose `column` is equal under the database's lower(), each as
    (sub, value) by sub."""
    rows = conn.execute(
        sa.text(
            f"SELECT lower({column}) AS k, sub, {column} FROM users WHERE lower({column}) IN "
            f"(SELECT lower({column}) FROM users WHERE {column} IS NOT NULL "
            f"GROUP BY lower({column}) HAVING count(*) > 1) ORDER BY k, sub"
        )
    ).all()
    groups: dict[str, list[tuple[int, str]]] = {}
    for key, sub, value in rows:
        groups.setdefault(key, []).append((sub, value))
    return list(groups.values())


def _named(what: str, groups: list[list[tuple[int, str]]]) -> str:
    shown = [
        f"{what} " + ", ".join(f"{value!r} (sub {sub})" for sub, value in group)
        for group in groups[:_SHOWN]
    ]
    if len(groups) > _SHOWN:
        shown.append(f"and {len(groups) - _SHOWN} more {what}s")
    return "; ".join(shown)


def _refuse_shared_accounts(conn: Any) -> None:
    names, emails = _shared(conn, "username"), _shared(conn, "email")
    if not names and not emails:
        return
    found = "; ".join(
        part for part in (_named("username", names), _named("e-mail", emails)) if part
    )
    examples = []
    if names:
        examples.append(f"UPDATE users SET username = 'NEW NAME' WHERE sub = {names[0][1][0]};")
    if emails:
        examples.append(f"UPDATE users SET email = NULL WHERE sub = {emails[0][1][0]};")
    raise UpgradeRefused(
        "the upgrade to schema 0019 stopped before changing anything: usernames and e-mail "
        "addresses must be unique ignoring case, and these accounts share one: "
        f"{found}. Give each account a username and e-mail of its own in the database "
        f"(sqlite3 on the data directory's archive.sqlite3, or psql), e.g. {' '.join(examples)} "
        "then start again."
    )


def _sharing(conn: Any, table: str, key: str, columns: str, where: str) -> Sequence[Any]:
    """The rows of `table` (`where`) whose `key` more than one of them has: `key, columns`,
    oldest first within each key (the names are this module's constants, never input)."""
    return list(
        conn.execute(
            sa.text(
                f"SELECT {key}, {columns} FROM {table} WHERE {where} AND {key} IN "
                f"(SELECT {key} FROM {table} WHERE {where} GROUP BY {key} HAVING count(*) > 1) "
                f"ORDER BY {key}, create_date, id"
            )
        ).all()
    )


def _one_job_per_task(conn: Any) -> None:
    rows = _sharing(conn, "finalize_jobs", "task_id", "id, dataset_id, state", "1 = 1")
    tasks: dict[str, list[Sequence[Any]]] = {}
    for task_id, *job in rows:
        tasks.setdefault(task_id, []).append(job)
    for task_id, jobs in tasks.items():
        kept = next((job for job in jobs if job[2] == "done"), jobs[0])
        for job_id, dataset_id, _state in (job for job in jobs if job is not kept):
            conn.execute(
                sa.text(
                    "UPDATE datasets SET status = 'failed', status_msg = :msg "
                    "WHERE id = :id AND status = 'storing'"
                ),
                {
                    "id": dataset_id,
                    "msg": f"Not stored: task {task_id} was finalized more than once; its "
                    f"files are in data object {kept[1]}.",
                },
            )
            conn.execute(sa.text("DELETE FROM finalize_jobs WHERE id = :id"), {"id": job_id})
            log.warning(
                "finalize job %s of task %s dropped (task finalized more than once; kept job "
                "%s, object %s)",
                job_id,
                task_id,
                kept[0],
                kept[1],
            )


def _one_live_app_per_service(conn: Any) -> None:
    rows = _sharing(conn, "apps", "github", "id", "NOT removed")
    first: dict[str, str] = {}
    for github, app_id in rows:
        if github not in first:
            first[github] = app_id
            continue
        conn.execute(
            sa.text("UPDATE apps SET removed = :yes WHERE id = :id"), {"yes": True, "id": app_id}
        )
        log.warning(
            "app %s marked removed: app %s is the live app of %s", app_id, first[github], github
        )


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_shared_accounts(conn)  # first: a refusal leaves everything as it was
    _one_job_per_task(conn)
    _one_live_app_per_service(conn)
    op.create_index("ux_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("ux_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.drop_index("ix_finalize_jobs_task_id", table_name="finalize_jobs")
    op.create_index("ix_finalize_jobs_task_id", "finalize_jobs", ["task_id"], unique=True)
    op.create_index(
        "ux_apps_github_live",
        "apps",
        ["github"],
        unique=True,
        sqlite_where=_NOT_REMOVED,
        postgresql_where=_NOT_REMOVED,
    )


def downgrade() -> None:
    op.drop_index("ux_apps_github_live", table_name="apps")
    op.drop_index("ix_finalize_jobs_task_id", table_name="finalize_jobs")
    op.create_index("ix_finalize_jobs_task_id", "finalize_jobs", ["task_id"])
    op.drop_index("ux_users_email_lower", table_name="users")
    op.drop_index("ux_users_username_lower", table_name="users")
