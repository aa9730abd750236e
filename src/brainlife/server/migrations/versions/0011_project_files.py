"""project files

Revision ID: 0011_project_files
Revises: 0010_upload
Create Date: 2026-12-01 21:35:00

`project_files` (see `brainlife.server.services.projectfiles`): a project's tree of plain files,
each a path naming a content-store blob. A new table only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_project_files"
down_revision = "0010_upload"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_files",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "path"),
    )
    op.create_index("ix_project_files_sha256", "project_files", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_project_files_sha256", table_name="project_files")
    op.drop_table("project_files")
