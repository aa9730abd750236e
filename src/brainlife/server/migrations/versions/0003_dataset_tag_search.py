"""tag search index, kept by triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 15:25:00

`dataset_tag_search` (see `brainlife.server.models.DatasetTagSearch`) holds one row per tag
("t", from `dataset_tags`) and datatype tag ("d", from `dataset_datatype_tags`) of every data
object, keyed (kind, tag, project_id, removed, datatype_id, dataset_id): the objects of one
project and datatype having a tag are one range of its primary key.

The triggers below are the ONLY writers of the table, and this is the one place their DDL
lives for SQLite; on PostgreSQL the table is created empty here and migration
`0012_postgresql` adds the same logic as PL/pgSQL trigger functions and fills it.

Invariant (what the tests check): after every statement the table holds exactly the rows of
`SELECT kind, tag, d.project_id, d.removed, d.datatype_id, d.id FROM <tag table> JOIN
datasets d ON d.id = dataset_id` over both tag tables. As in migration 0002, the datasets
delete trigger runs BEFORE DELETE (while the object's tag rows still exist) and the tag
triggers find nothing to remove once the object row is gone (ON DELETE CASCADE).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: (kind, association table)
_TABLES = (("t", "dataset_tags"), ("d", "dataset_datatype_tags"))


def _tag_added(kind: str) -> str:
    return f"""
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT '{kind}', NEW.tag, project_id, removed, datatype_id, id FROM datasets
    WHERE id = NEW.dataset_id
    ON CONFLICT DO NOTHING;
"""


def _tag_removed(kind: str) -> str:
    def of(column: str) -> str:
        return f"(SELECT {column} FROM datasets WHERE id = OLD.dataset_id)"

    return f"""
    DELETE FROM dataset_tag_search
    WHERE kind = '{kind}' AND tag = OLD.tag AND project_id = {of("project_id")}
      AND removed = {of("removed")} AND datatype_id = {of("datatype_id")}
      AND dataset_id = OLD.dataset_id;
"""


def _dataset_added() -> str:
    return "".join(
        f"""
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT '{kind}', tag, NEW.project_id, NEW.removed, NEW.datatype_id, NEW.id FROM {table}
    WHERE dataset_id = NEW.id
    ON CONFLICT DO NOTHING;
"""
        for kind, table in _TABLES
    )


def _dataset_removed() -> str:
    return "".join(
        f"""
    DELETE FROM dataset_tag_search
    WHERE kind = '{kind}' AND tag IN (SELECT tag FROM {table} WHERE dataset_id = OLD.id)
      AND project_id = OLD.project_id AND removed = OLD.removed
      AND datatype_id = OLD.datatype_id AND dataset_id = OLD.id;
"""
        for kind, table in _TABLES
    )


TRIGGERS = {
    "trg_datasets_tag_search_insert": f"AFTER INSERT ON datasets BEGIN {_dataset_added()} END",
    "trg_datasets_tag_search_delete": f"BEFORE DELETE ON datasets BEGIN {_dataset_removed()} END",
    "trg_datasets_tag_search_update": (
        "AFTER UPDATE OF id, project_id, datatype_id, removed ON datasets"
        f" BEGIN {_dataset_removed()} {_dataset_added()} END"
    ),
}
for _kind, _table in _TABLES:
    TRIGGERS[f"trg_{_table}_search_insert"] = (
        f"AFTER INSERT ON {_table} BEGIN {_tag_added(_kind)} END"
    )
    TRIGGERS[f"trg_{_table}_search_delete"] = (
        f"AFTER DELETE ON {_table} BEGIN {_tag_removed(_kind)} END"
    )
    TRIGGERS[f"trg_{_table}_search_update"] = (
        f"AFTER UPDATE OF dataset_id, tag ON {_table}"
        f" BEGIN {_tag_removed(_kind)} {_tag_added(_kind)} END"
    )

BACKFILL = tuple(
    f"""
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT '{kind}', x.tag, d.project_id, d.removed, d.datatype_id, d.id
    FROM {table} x JOIN datasets d ON d.id = x.dataset_id
    """
    for kind, table in _TABLES
)


def upgrade() -> None:
    op.create_table(
        "dataset_tag_search",
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("tag", sa.String(length=256), nullable=False),
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("datatype_id", sa.String(length=24), nullable=False),
        sa.Column("dataset_id", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind",
            "tag",
            "project_id",
            "removed",
            "datatype_id",
            "dataset_id",
            name=op.f("pk_dataset_tag_search"),
        ),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("dataset_tag_search")
