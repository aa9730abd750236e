"""listing at 10,000,000 objects: object sizes in the tag search index, a subject index

Revision ID: 0017_pg_listing
Revises: 0016_pg_byte_order
Create Date: 2026-12-02 02:30:00

`dataset_tag_search` (0003, 0012) gets `size`, a copy of `datasets.size`: a listing that pins
project, removed, datatype and tests tags only (`bl data query --tag …`) is then counted, with
its `size`, from one range of that table (`brainlife.server.services.dataset_plans`), instead
of visiting every candidate object. The invariant of 0003 becomes: after every statement the
table holds exactly the rows of `SELECT kind, tag, d.project_id, d.removed, d.datatype_id,
d.id, d.size FROM <tag table> JOIN datasets d ON d.id = dataset_id` over both tag tables. The
triggers that keep it are made again with the size (a change of `datasets.size` now moves the
object's rows as a change of its project does), on SQLite as 0003's, on PostgreSQL as 0012's
functions; and the column is filled from the rows already there.

On PostgreSQL the primary key of the table also carries `size` (`INCLUDE`), so that such a
count is an index-only scan, and `datasets` gets `(subject, removed, id) INCLUDE (project_id,
size)`: `find: {"meta.subject": …}` across projects reads its page in `_id` order and its totals
from that index (SQLite's planner already serves that shape from `ix_datasets_subject`).
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0017_pg_listing"
down_revision = "0016_pg_byte_order"
branch_labels = None
depends_on = None

#: (kind, association table)
_TABLES = (("t", "dataset_tags"), ("d", "dataset_datatype_tags"))
_COLUMNS = "kind, tag, project_id, removed, datatype_id, dataset_id, size"


def _previous(name: str) -> object:
    return importlib.import_module(f"brainlife.server.migrations.versions.{name}")


# --- SQLite: 0003's triggers, with the size ------------------------------------------------


def _tag_added(kind: str) -> str:
    return f"""
    INSERT INTO dataset_tag_search ({_COLUMNS})
    SELECT '{kind}', NEW.tag, project_id, removed, datatype_id, id, size FROM datasets
    WHERE id = NEW.dataset_id
    ON CONFLICT DO NOTHING;
"""


def _dataset_added() -> str:
    return "".join(
        f"""
    INSERT INTO dataset_tag_search ({_COLUMNS})
    SELECT '{kind}', tag, NEW.project_id, NEW.removed, NEW.datatype_id, NEW.id, NEW.size
    FROM {table} WHERE dataset_id = NEW.id
    ON CONFLICT DO NOTHING;
"""
        for kind, table in _TABLES
    )


def _sqlite_triggers() -> dict[str, str]:
    old = _previous("0003_dataset_tag_search")
    removed = old._dataset_removed()  # type: ignore[attr-defined]
    triggers = {
        "trg_datasets_tag_search_insert": f"AFTER INSERT ON datasets BEGIN {_dataset_added()} END",
        "trg_datasets_tag_search_update": (
            "AFTER UPDATE OF id, project_id, datatype_id, removed, size ON datasets"
            f" BEGIN {removed} {_dataset_added()} END"
        ),
    }
    for kind, table in _TABLES:
        triggers[f"trg_{table}_search_insert"] = (
            f"AFTER INSERT ON {table} BEGIN {_tag_added(kind)} END"
        )
        triggers[f"trg_{table}_search_update"] = (
            f"AFTER UPDATE OF dataset_id, tag ON {table}"
            f" BEGIN {old._tag_removed(kind)} {_tag_added(kind)} END"  # type: ignore[attr-defined]
        )
    return triggers


# --- PostgreSQL: 0012's functions, with the size -------------------------------------------

DATASET_TAG_SEARCH = (
    """
CREATE OR REPLACE FUNCTION bl_dataset_tag_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN"""
    + "".join(
        f"""
    DELETE FROM dataset_tag_search
    WHERE kind = '{kind}' AND tag IN (SELECT tag FROM {table} WHERE dataset_id = OLD.id)
      AND project_id = OLD.project_id AND removed = OLD.removed
      AND datatype_id = OLD.datatype_id AND dataset_id = OLD.id;"""
        for kind, table in _TABLES
    )
    + """
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN"""
    + "".join(
        f"""
    INSERT INTO dataset_tag_search ({_COLUMNS})
    SELECT '{kind}', tag, NEW.project_id, NEW.removed, NEW.datatype_id, NEW.id, NEW.size
    FROM {table} WHERE dataset_id = NEW.id
    ON CONFLICT DO NOTHING;"""
        for kind, table in _TABLES
    )
    + """
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$
"""
)

TAG_SEARCH = f"""
CREATE OR REPLACE FUNCTION bl_tag_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    DELETE FROM dataset_tag_search s USING datasets d
    WHERE d.id = OLD.dataset_id AND s.kind = TG_ARGV[0] AND s.tag = OLD.tag
      AND s.project_id = d.project_id AND s.removed = d.removed
      AND s.datatype_id = d.datatype_id AND s.dataset_id = OLD.dataset_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO dataset_tag_search ({_COLUMNS})
    SELECT TG_ARGV[0], NEW.tag, project_id, removed, datatype_id, id, size FROM datasets
    WHERE id = NEW.dataset_id
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$
"""

_UPDATE_TRIGGER = "trg_datasets_tag_search_update"
_UPDATE_OF = "AFTER UPDATE OF id, project_id, datatype_id, removed{} ON datasets"
_PK = "pk_dataset_tag_search"
_PK_COLUMNS = "kind, tag, project_id, removed, datatype_id, dataset_id"
SUBJECT_INDEX = (
    "CREATE INDEX ix_datasets_subject_removed_id ON datasets (subject, removed, id)"
    " INCLUDE (project_id, size)"
)

#: fills the new column from the rows already there (the triggers keep it right afterwards)
BACKFILL = (
    "UPDATE dataset_tag_search SET size = (SELECT size FROM datasets d"
    " WHERE d.id = dataset_tag_search.dataset_id)"
)
PG_BACKFILL = (
    "UPDATE dataset_tag_search s SET size = d.size FROM datasets d"
    " WHERE d.id = s.dataset_id AND s.size IS DISTINCT FROM d.size"
)
#: fills an empty table at once, size included (a bulk load: bench/pg_listing_db.py)
FILL = tuple(
    f"""
    INSERT INTO dataset_tag_search ({_COLUMNS})
    SELECT '{kind}', x.tag, d.project_id, d.removed, d.datatype_id, d.id, d.size
    FROM {table} x JOIN datasets d ON d.id = x.dataset_id
    """
    for kind, table in _TABLES
)


def upgrade() -> None:
    engine = op.get_bind().dialect.name
    op.add_column("dataset_tag_search", sa.Column("size", sa.BigInteger(), nullable=True))
    if engine == "sqlite":
        for name, body in _sqlite_triggers().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute(BACKFILL)
        return
    op.execute(DATASET_TAG_SEARCH)
    op.execute(TAG_SEARCH)
    op.execute(f"DROP TRIGGER IF EXISTS {_UPDATE_TRIGGER} ON datasets")
    op.execute(
        f"CREATE TRIGGER {_UPDATE_TRIGGER} {_UPDATE_OF.format(', size')}"
        " FOR EACH ROW EXECUTE FUNCTION bl_dataset_tag_search()"
    )
    op.execute(PG_BACKFILL)
    op.execute(f"ALTER TABLE dataset_tag_search DROP CONSTRAINT {_PK}")
    op.execute(
        f"ALTER TABLE dataset_tag_search ADD CONSTRAINT {_PK} PRIMARY KEY ({_PK_COLUMNS})"
        " INCLUDE (size)"
    )
    op.execute(SUBJECT_INDEX)


def downgrade() -> None:
    engine = op.get_bind().dialect.name
    if engine == "sqlite":
        old = _previous("0003_dataset_tag_search").TRIGGERS  # type: ignore[attr-defined]
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(f"CREATE TRIGGER {name} {old[name]}")
        op.execute("ALTER TABLE dataset_tag_search DROP COLUMN size")
        return
    op.execute("DROP INDEX IF EXISTS ix_datasets_subject_removed_id")
    op.execute(f"ALTER TABLE dataset_tag_search DROP CONSTRAINT {_PK}")
    op.execute(f"ALTER TABLE dataset_tag_search ADD CONSTRAINT {_PK} PRIMARY KEY ({_PK_COLUMNS})")
    functions = _previous("0012_postgresql").FUNCTIONS  # type: ignore[attr-defined]
    for name in ("bl_dataset_tag_search", "bl_tag_search"):
        op.execute(functions[name].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(f"DROP TRIGGER IF EXISTS {_UPDATE_TRIGGER} ON datasets")
    op.execute(
        f"CREATE TRIGGER {_UPDATE_TRIGGER} {_UPDATE_OF.format('')}"
        " FOR EACH ROW EXECUTE FUNCTION bl_dataset_tag_search()"
    )
    op.drop_column("dataset_tag_search", "size")
