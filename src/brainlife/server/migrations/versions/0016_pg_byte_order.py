"""PostgreSQL: every text column compares and sorts in byte order (collation "C"), as SQLite's

Revision ID: 0016_pg_byte_order
Revises: 0015_pg_subject_counts
Create Date: 2026-12-02 00:00:00

SQLite compares text with memcmp over its UTF-8 bytes (the BINARY collation), and the archive
relies on that order beyond sorting: the project files listing walks a folder as the key range
[`docs/`, `docs0`) and resumes after a continuation token with `path > token`
(`brainlife.server.services.projectfiles`), names sort `B` before `a` and `Z` before `é`, and
every `_id` cursor compares strings. PostgreSQL compares text in the database's collation, which
`createdb` takes from the server's locale: under a linguistic one (`en_US.UTF-8`, an ICU
locale) punctuation is ignored at first, `a/b` sorts after `a0` and `ab`, so a listing skipped
or repeated entries and names ordered differently from the same archive on SQLite.

This revision gives every character column of every table the "C" collation (byte order of the
UTF-8 text, SQLite's order) whatever the database's default; equality is unchanged (both are
deterministic), the indexes on them are rebuilt. A character column added by a later revision
must be given `COLLATE "C"` there on PostgreSQL (tests/server/test_postgresql.py checks every
column of the head schema). On SQLite it does nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_pg_byte_order"
down_revision = "0015_pg_subject_counts"
branch_labels = None
depends_on = None

#: the character columns not yet in byte order, per table
COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length
FROM information_schema.columns c JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
  AND c.data_type IN ('character varying', 'text')
  AND coalesce(c.collation_name, '') <> 'C' AND c.table_name <> 'alembic_version'
ORDER BY c.table_name, c.ordinal_position
"""

#: the archive's own triggers: name, table, the statement that makes it
TRIGGERS = """
SELECT t.tgname, t.tgrelid::regclass::text, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
WHERE NOT t.tgisinternal AND r.relnamespace = current_schema()::regnamespace
ORDER BY t.tgname
"""


def _alter(collation: str) -> None:
    bind = op.get_bind()
    query = COLUMNS if collation == "C" else COLUMNS.replace("<> 'C'", "= 'C'")
    tables: dict[str, list[str]] = {}
    for table, column, kind, length in bind.execute(sa.text(query)):
        sql_type = f"varchar({length})" if kind == "character varying" and length else kind
        if kind == "character varying" and not length:
            sql_type = "varchar"
        tables.setdefault(table, []).append(
            f'ALTER COLUMN "{column}" TYPE {sql_type} COLLATE "{collation}"'
        )
    # a trigger `UPDATE OF` a column holds its type: the triggers (0012, 0014) are dropped and
    # made again from their own definitions around the change
    triggers = bind.execute(sa.text(TRIGGERS)).all()
    for name, table, _definition in triggers:
        op.execute(f'DROP TRIGGER "{name}" ON {table}')
    # one statement per table: its indexes are rebuilt once
    for table, clauses in tables.items():
        op.execute(f'ALTER TABLE "{table}" ' + ", ".join(clauses))
    for _name, _table, definition in triggers:
        op.execute(definition)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _alter("C")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _alter("default")
