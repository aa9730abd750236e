"""dataset count aggregates, kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 15:20:00

`dataset_counts` and `dataset_release_counts` (see `brainlife.server.models.DatasetCount`)
hold per-(project, datatype, removed) and per-(release, project, datatype, removed) object counts
and byte sums, so that the `count`/`size` of a listing that only pins those fields is a sum over
a few rows instead of a walk over hundreds of thousands of index entries.

The triggers below are the ONLY writers of these tables, and this is the one place their DDL
lives for SQLite; on PostgreSQL the tables are created empty here and migration
`0012_postgresql` adds the same logic as PL/pgSQL trigger functions and fills them.

Invariant (what the tests check): after every statement,

- `dataset_counts` row (p, t, r) = count / sum(coalesce(size, 0)) of the `datasets` rows with
  project_id = p, datatype_id = t, removed = r; `pub_count`/`pub_size` the same over those that
  have at least one `dataset_publications` row;
- `dataset_release_counts` row (rel, p, t, r) = count / size sum of the (dataset,
  publication) pairs with release_id = rel whose dataset has (p, t, r).

Rows whose counts fall to zero are kept (harmless; they sum to nothing).

Ordering with `ON DELETE CASCADE`: the datasets delete trigger is BEFORE DELETE, when the
object's publication rows still exist, and subtracts everything; the publications delete
trigger only acts while its dataset row still exists, so the cascade (which runs after the
parent row is gone) subtracts nothing twice. ORM deletes, which remove the children first,
go through the publications trigger and then find no children left.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KEY = "(project_id, datatype_id, removed)"
_RKEY = "(release_id, project_id, datatype_id, removed)"


def _has_pub(dataset_id: str) -> str:
    return f"EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = {dataset_id})"


def _add_dataset(row: str) -> str:
    """Statements adding dataset `row` (NEW/OLD) with its current publications."""
    size = f"coalesce({row}.size, 0)"
    return f"""
    INSERT INTO dataset_counts (project_id, datatype_id, removed, count, size, pub_count,
                                pub_size)
    SELECT {row}.project_id, {row}.datatype_id, {row}.removed, 1, {size}, p, p * {size}
    FROM (SELECT {_has_pub(f"{row}.id")} AS p) WHERE true
    ON CONFLICT {_KEY} DO UPDATE SET count = count + 1, size = size + excluded.size,
        pub_count = pub_count + excluded.pub_count, pub_size = pub_size + excluded.pub_size;
    INSERT INTO dataset_release_counts (release_id, project_id, datatype_id, removed, count,
                                        size)
    SELECT release_id, {row}.project_id, {row}.datatype_id, {row}.removed, 1, {size}
    FROM dataset_publications WHERE dataset_id = {row}.id
    ON CONFLICT {_RKEY} DO UPDATE SET count = count + 1, size = size + excluded.size;
"""


def _subtract_dataset(row: str) -> str:
    """Statements subtracting dataset `row` (OLD) with its current publications."""
    size = f"coalesce({row}.size, 0)"
    return f"""
    UPDATE dataset_counts SET count = count - 1, size = size - {size},
        pub_count = pub_count - {_has_pub(f"{row}.id")},
        pub_size = pub_size - {_has_pub(f"{row}.id")} * {size}
    WHERE project_id = {row}.project_id AND datatype_id = {row}.datatype_id
      AND removed = {row}.removed;
    UPDATE dataset_release_counts SET count = count - 1, size = size - {size}
    WHERE project_id = {row}.project_id AND datatype_id = {row}.datatype_id
      AND removed = {row}.removed
      AND release_id IN (SELECT release_id FROM dataset_publications
                         WHERE dataset_id = {row}.id);
"""


def _dataset_key(dataset_id: str) -> str:
    return f"(SELECT project_id, datatype_id, removed FROM datasets WHERE id = {dataset_id})"


def _dataset_size(dataset_id: str) -> str:
    return f"(SELECT coalesce(size, 0) FROM datasets WHERE id = {dataset_id})"


def _pub_added(row: str) -> str:
    """A publication row `row` (NEW) now exists: count it if its dataset exists."""
    d = f"{row}.dataset_id"
    return f"""
    UPDATE dataset_counts SET pub_count = pub_count + 1,
        pub_size = pub_size + {_dataset_size(d)}
    WHERE {_KEY} = {_dataset_key(d)}
      AND (SELECT count(*) FROM dataset_publications WHERE dataset_id = {d}) = 1;
    INSERT INTO dataset_release_counts (release_id, project_id, datatype_id, removed, count,
                                        size)
    SELECT {row}.release_id, project_id, datatype_id, removed, 1, coalesce(size, 0)
    FROM datasets WHERE id = {d}
    ON CONFLICT {_RKEY} DO UPDATE SET count = count + 1, size = size + excluded.size;
"""


def _pub_removed(row: str) -> str:
    """A publication row `row` (OLD) is gone: uncount it if its dataset still exists."""
    d = f"{row}.dataset_id"
    return f"""
    UPDATE dataset_counts SET pub_count = pub_count - 1,
        pub_size = pub_size - {_dataset_size(d)}
    WHERE {_KEY} = {_dataset_key(d)} AND NOT {_has_pub(d)};
    UPDATE dataset_release_counts SET count = count - 1, size = size - {_dataset_size(d)}
    WHERE release_id = {row}.release_id AND {_KEY} = {_dataset_key(d)};
"""


TRIGGERS = {
    "trg_datasets_counts_insert": f"AFTER INSERT ON datasets BEGIN {_add_dataset('NEW')} END",
    "trg_datasets_counts_delete": (
        f"BEFORE DELETE ON datasets BEGIN {_subtract_dataset('OLD')} END"
    ),
    "trg_datasets_counts_update": (
        "AFTER UPDATE OF id, project_id, datatype_id, removed, size ON datasets"
        f" BEGIN {_subtract_dataset('OLD')} {_add_dataset('NEW')} END"
    ),
    "trg_dataset_publications_counts_insert": (
        f"AFTER INSERT ON dataset_publications BEGIN {_pub_added('NEW')} END"
    ),
    "trg_dataset_publications_counts_delete": (
        f"AFTER DELETE ON dataset_publications BEGIN {_pub_removed('OLD')} END"
    ),
    # an update of a publication row = the old row removed, then the new row added; the
    # dataset's "published" state changes only when the row moves to another dataset
    "trg_dataset_publications_counts_update": (
        "AFTER UPDATE OF dataset_id, release_id ON dataset_publications BEGIN"
        f"""
    UPDATE dataset_release_counts SET count = count - 1,
        size = size - {_dataset_size("OLD.dataset_id")}
    WHERE release_id = OLD.release_id AND {_KEY} = {_dataset_key("OLD.dataset_id")};
    INSERT INTO dataset_release_counts (release_id, project_id, datatype_id, removed, count,
                                        size)
    SELECT NEW.release_id, project_id, datatype_id, removed, 1, coalesce(size, 0)
    FROM datasets WHERE id = NEW.dataset_id
    ON CONFLICT {_RKEY} DO UPDATE SET count = count + 1, size = size + excluded.size;
    UPDATE dataset_counts SET pub_count = pub_count - 1,
        pub_size = pub_size - {_dataset_size("OLD.dataset_id")}
    WHERE OLD.dataset_id IS NOT NEW.dataset_id AND {_KEY} = {_dataset_key("OLD.dataset_id")}
      AND NOT {_has_pub("OLD.dataset_id")};
    UPDATE dataset_counts SET pub_count = pub_count + 1,
        pub_size = pub_size + {_dataset_size("NEW.dataset_id")}
    WHERE OLD.dataset_id IS NOT NEW.dataset_id AND {_KEY} = {_dataset_key("NEW.dataset_id")}
      AND (SELECT count(*) FROM dataset_publications WHERE dataset_id = NEW.dataset_id) = 1;
    END"""
    ),
}

#: fills the tables from existing rows (the triggers keep them right afterwards)
BACKFILL = (
    """
    INSERT INTO dataset_counts (project_id, datatype_id, removed, count, size, pub_count,
                                pub_size)
    SELECT project_id, datatype_id, removed, count(*), sum(s), sum(p), sum(p * s)
    FROM (SELECT project_id, datatype_id, removed, coalesce(size, 0) AS s,
                 EXISTS (SELECT 1 FROM dataset_publications x WHERE x.dataset_id = d.id) AS p
          FROM datasets d)
    GROUP BY project_id, datatype_id, removed
    """,
    """
    INSERT INTO dataset_release_counts (release_id, project_id, datatype_id, removed, count,
                                        size)
    SELECT x.release_id, d.project_id, d.datatype_id, d.removed, count(*),
           sum(coalesce(d.size, 0))
    FROM dataset_publications x JOIN datasets d ON d.id = x.dataset_id
    GROUP BY x.release_id, d.project_id, d.datatype_id, d.removed
    """,
)


def upgrade() -> None:
    op.create_table(
        "dataset_counts",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("datatype_id", sa.String(length=24), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pub_count", sa.BigInteger(), nullable=False),
        sa.Column("pub_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "datatype_id", "removed", name=op.f("pk_dataset_counts")
        ),
    )
    op.create_table(
        "dataset_release_counts",
        sa.Column("release_id", sa.String(length=24), nullable=False),
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("datatype_id", sa.String(length=24), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "release_id",
            "project_id",
            "datatype_id",
            "removed",
            name=op.f("pk_dataset_release_counts"),
        ),
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
    op.drop_table("dataset_release_counts")
    op.drop_table("dataset_counts")
