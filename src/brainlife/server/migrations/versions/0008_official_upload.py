"""finalize jobs of the official CLI's uploads

Revision ID: 0008_official_upload
Revises: 0007_apps
Create Date: 2026-12-01 20:10:00

`finalize_jobs`: one row per uploaded data object whose files are being stored
(`brainlife.server.services.finalize`), written in the transaction that registers the object,
so that a server restart resumes the work instead of leaving the object `storing` forever.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_official_upload"
down_revision = "0007_apps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finalize_jobs",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("dataset_id", sa.String(length=24), nullable=False),
        sa.Column("task_id", sa.String(length=24), nullable=False),
        sa.Column("folder", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_date", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id"),
    )
    op.create_index("ix_finalize_jobs_task_id", "finalize_jobs", ["task_id"])
    op.create_index("ix_finalize_jobs_state", "finalize_jobs", ["state"])


def downgrade() -> None:
    op.drop_index("ix_finalize_jobs_state", table_name="finalize_jobs")
    op.drop_index("ix_finalize_jobs_task_id", table_name="finalize_jobs")
    op.drop_table("finalize_jobs")
