"""failed logins keyed by account and client address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00

`login_failures.client` is the address a failed login came from (see
`brainlife.server.services.auth`): the lockout counts failures per (account, address), so a flood
of wrong passwords from one address does not lock the account's owner out from another, plus a
limit per address. Rows already there are at most one lockout window old; they get an empty
address and age out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("client", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_index(batch_op.f("ix_login_failures_client"), ["client"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failures_client"))
        batch_op.drop_column("client")
