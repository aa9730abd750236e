"""task output files

Revision ID: 0014_task_output_files
Revises: 0013_web_matrix
Create Date: 2026-12-01 23:10:00

`task_output_files` (see `brainlife.server.storetaskfiles`): with an object store, a task's
outputs are paths naming content-store blobs instead of a folder on the server's disk. A new
table only. `archive_migrations` (`brainlife.server.migrate_archive`): which embedded archive
`bl admin migrate` copies into this database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_task_output_files"
down_revision = "0013_web_matrix"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_output_files",
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "path"),
    )
    op.create_index("ix_task_output_files_sha256", "task_output_files", ["sha256"], unique=False)
    op.create_table(
        "archive_migrations",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("source_id"),
    )


def downgrade() -> None:
    op.drop_table("archive_migrations")
    op.drop_index("ix_task_output_files_sha256", table_name="task_output_files")
    op.drop_table("task_output_files")
