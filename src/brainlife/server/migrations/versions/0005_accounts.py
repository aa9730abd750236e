"""accounts: issued tokens (revocable) and per-project participants

Revision ID: 0005_accounts
Revises: 0004
Create Date: 2026-12-01 20:30:00

`auth_tokens` records every token the archive signs (its `jti` claim), so that a token can be
revoked before it expires (`bl admin token revoke`, `DELETE /api/auth/token/{jti}`): a token
whose id is unknown or revoked is refused. `participants` holds a project's participants table
(brainlife's `/warehouse/participant/:projectid`: `subjects` rows and `columns` descriptions).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_accounts"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_tokens",
        sa.Column("jti", sa.String(length=32), nullable=False),
        sa.Column("sub", sa.Integer(), nullable=False),
        sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_auth_tokens_sub", "auth_tokens", ["sub"], unique=False)
    op.create_table(
        "participants",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("update_date", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("project_id"),
    )


def downgrade() -> None:
    op.drop_table("participants")
    op.drop_index("ix_auth_tokens_sub", table_name="auth_tokens")
    op.drop_table("auth_tokens")
