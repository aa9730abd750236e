"""per-subject object counts for the project page's matrix, kept by triggers

Revision ID: 0013_web_matrix
Revises: 0012_postgresql
Create Date: 2026-12-01 21:30:00

`dataset_subject_counts` (see `brainlife.server.models.DatasetSubjectCount`) holds, per
(project, removed, subject, datatype), how many data objects there are and how many of them are
published, so that a page of the project page's subjects × datatypes matrix reads 50 subjects'
rows (about a thousand) instead of counting every object of those subjects (100,000 index
entries for a page of the largest benchmark project). A missing subject is stored as "" (the
matrix shows it as such).

As in migration 0002, the triggers below are the ONLY writers, this is the one place their DDL
lives, and it is SQLite DDL: on other dialects the table stays empty and
`brainlife.server.services.browse` counts from `datasets` instead (it checks the dialect).

Invariant (what the tests check): after every statement, the row (p, r, s, t) has `count` = the
`datasets` rows with project_id = p, removed = r, coalesce(subject, '') = s, datatype_id = t,
and `pub_count` = those of them with at least one `dataset_publications` row. Rows whose count
falls to zero are deleted. The ordering with `ON DELETE CASCADE` is 0002's: the datasets delete
trigger runs BEFORE DELETE and subtracts everything; the publications triggers act only while
their dataset row exists.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_web_matrix"
down_revision = "0012_postgresql"
branch_labels = None
depends_on = None

_KEY = "(project_id, removed, subject, datatype_id)"


def _has_pub(dataset_id: str) -> str:
    return f"EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = {dataset_id})"


def _row_key(row: str) -> str:
    return f"{row}.project_id, {row}.removed, coalesce({row}.subject, ''), {row}.datatype_id"


def _dataset_key(dataset_id: str) -> str:
    return (
        "(SELECT project_id, removed, coalesce(subject, ''), datatype_id FROM datasets"
        f" WHERE id = {dataset_id})"
    )


def _add_dataset(row: str) -> str:
    return f"""
    INSERT INTO dataset_subject_counts (project_id, removed, subject, datatype_id, count,
                                        pub_count)
    SELECT {_row_key(row)}, 1, {_has_pub(f"{row}.id")} WHERE true
    ON CONFLICT {_KEY} DO UPDATE SET count = count + 1,
        pub_count = pub_count + excluded.pub_count;
"""


def _subtract_dataset(row: str) -> str:
    return f"""
    UPDATE dataset_subject_counts SET count = count - 1,
        pub_count = pub_count - {_has_pub(f"{row}.id")}
    WHERE {_KEY} = ({_row_key(row)});
    DELETE FROM dataset_subject_counts WHERE {_KEY} = ({_row_key(row)}) AND count <= 0;
"""


def _pub_added(dataset_id: str) -> str:
    return f"""
    UPDATE dataset_subject_counts SET pub_count = pub_count + 1
    WHERE {_KEY} = {_dataset_key(dataset_id)}
      AND (SELECT count(*) FROM dataset_publications WHERE dataset_id = {dataset_id}) = 1;
"""


def _pub_removed(dataset_id: str) -> str:
    return f"""
    UPDATE dataset_subject_counts SET pub_count = pub_count - 1
    WHERE {_KEY} = {_dataset_key(dataset_id)} AND NOT {_has_pub(dataset_id)};
"""


TRIGGERS = {
    "trg_datasets_subject_counts_insert": (
        f"AFTER INSERT ON datasets BEGIN {_add_dataset('NEW')} END"
    ),
    "trg_datasets_subject_counts_delete": (
        f"BEFORE DELETE ON datasets BEGIN {_subtract_dataset('OLD')} END"
    ),
    "trg_datasets_subject_counts_update": (
        "AFTER UPDATE OF id, project_id, datatype_id, removed, subject ON datasets"
        f" BEGIN {_subtract_dataset('OLD')} {_add_dataset('NEW')} END"
    ),
    "trg_dataset_publications_subject_counts_insert": (
        f"AFTER INSERT ON dataset_publications BEGIN {_pub_added('NEW.dataset_id')} END"
    ),
    "trg_dataset_publications_subject_counts_delete": (
        f"AFTER DELETE ON dataset_publications BEGIN {_pub_removed('OLD.dataset_id')} END"
    ),
    # a publication row moved to another dataset: the old one may have lost its last, the new
    # one gained its first
    "trg_dataset_publications_subject_counts_update": (
        "AFTER UPDATE OF dataset_id ON dataset_publications"
        " WHEN OLD.dataset_id IS NOT NEW.dataset_id BEGIN"
        f" {_pub_removed('OLD.dataset_id')} {_pub_added('NEW.dataset_id')} END"
    ),
}

#: fills the table from existing rows (the triggers keep it right afterwards)
BACKFILL = """
    INSERT INTO dataset_subject_counts (project_id, removed, subject, datatype_id, count,
                                        pub_count)
    SELECT project_id, removed, coalesce(subject, ''), datatype_id, count(*), sum(p)
    FROM (SELECT project_id, removed, subject, datatype_id,
                 EXISTS (SELECT 1 FROM dataset_publications x WHERE x.dataset_id = d.id) AS p
          FROM datasets d)
    GROUP BY project_id, removed, coalesce(subject, ''), datatype_id
"""


def upgrade() -> None:
    op.create_table(
        "dataset_subject_counts",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("datatype_id", sa.String(length=24), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("pub_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id",
            "removed",
            "subject",
            "datatype_id",
            name=op.f("pk_dataset_subject_counts"),
        ),
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("dataset_subject_counts")
