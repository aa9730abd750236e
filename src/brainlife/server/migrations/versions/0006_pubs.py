"""one release name per publication

Revision ID: 0006_pubs
Revises: 0005_accounts
Create Date: 2026-12-01 20:30:00

Releases are made by the archive now (`brainlife.server.services.publishing`): a release's name
is how users and the document's loop tell it apart, so two live releases of one publication
may not share it. The service checks first (and also refuses the names of removed releases);
this unique index makes two concurrent requests for the same name fail too. Removed releases
are left out: brainlife.io's data has removed releases named "" side by side.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_pubs"
down_revision = "0005_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_releases_pub_name",
        "releases",
        ["pub_id", "name"],
        unique=True,
        sqlite_where=sa.text("removed = 0"),
        postgresql_where=sa.text("removed = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_releases_pub_name", table_name="releases")
