"""the history of data objects' curation

Revision ID: 0009_curation
Revises: 0008_official_upload
Create Date: 2026-12-01 20:35:00

`dataset_events`: an append-only record of who changed a data object (`PUT /dataset/:id`),
removed it (`DELETE /dataset/:id`) or restored it, when, and what changed
(`brainlife.server.services.curation`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_curation"
down_revision = "0008_official_upload"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=24), nullable=False),
        sa.Column("sub", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dataset_events_dataset_id", "dataset_events", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_events_dataset_id", table_name="dataset_events")
    op.drop_table("dataset_events")
