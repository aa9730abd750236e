"""resumable upload sessions

Revision ID: 0010_upload
Revises: 0009_curation
Create Date: 2026-12-01 20:20:00

`uploads` and `upload_files` (see `brainlife.server.services.uploads`): a data object declared
with its files, whose bytes are staged until it is finalized. New tables only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_upload"
down_revision = "0009_curation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("datatype_id", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dataset_id", sa.String(length=24), nullable=True),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["datatype_id"], ["datatypes.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uploads_expires", "uploads", ["expires"], unique=False)
    op.create_index("ix_uploads_user", "uploads", ["user_id", "status"], unique=False)
    op.create_table(
        "upload_files",
        sa.Column("upload_id", sa.String(length=24), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.String(length=256), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["uploads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("upload_id", "pos"),
    )
    op.create_index("ix_upload_files_sha256", "upload_files", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_upload_files_sha256", table_name="upload_files")
    op.drop_table("upload_files")
    op.drop_index("ix_uploads_user", table_name="uploads")
    op.drop_index("ix_uploads_expires", table_name="uploads")
    op.drop_table("uploads")
