"""apps and compute resources

Revision ID: 0007_apps
Revises: 0006_pubs
Create Date: 2026-12-01 20:05:45

`apps` is brainlife's App catalogue (`GET /api/warehouse/app`): inputs, outputs and config are
brainlife's documents as JSON; `app_projects` lists the projects of a private app (an app with
none is public). `resources` and `resource_groups` are amaretti's compute resources
(`GET /api/amaretti/resource`) and the groups allowed to use each. New tables only: nothing
existing changes, and an archive migrated from 0004 simply has empty catalogues.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_apps"
down_revision = "0006_pubs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("desc", sa.Text(), nullable=False),
        sa.Column("github", sa.String(length=256), nullable=False),
        sa.Column("github_branch", sa.String(length=128), nullable=True),
        sa.Column("doi", sa.String(length=256), nullable=True),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apps_doi"), ["doi"], unique=False)
        batch_op.create_index(batch_op.f("ix_apps_github"), ["github"], unique=False)
        batch_op.create_index(batch_op.f("ix_apps_name"), ["name"], unique=False)

    op.create_table(
        "resources",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("status_msg", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resources_name"), ["name"], unique=False)

    op.create_table(
        "app_projects",
        sa.Column("app_id", sa.String(length=24), nullable=False),
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_app_projects_app_id_apps")),
        sa.PrimaryKeyConstraint("app_id", "project_id", name=op.f("pk_app_projects")),
    )
    with op.batch_alter_table("app_projects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_app_projects_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "resource_groups",
        sa.Column("resource_id", sa.String(length=24), nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_resource_groups_resource_id_resources")
        ),
        sa.PrimaryKeyConstraint("resource_id", "gid", name=op.f("pk_resource_groups")),
    )
    with op.batch_alter_table("resource_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resource_groups_gid"), ["gid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("resource_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_groups_gid"))

    op.drop_table("resource_groups")
    with op.batch_alter_table("app_projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_projects_project_id"))

    op.drop_table("app_projects")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resources_name"))

    op.drop_table("resources")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apps_name"))
        batch_op.drop_index(batch_op.f("ix_apps_github"))
        batch_op.drop_index(batch_op.f("ix_apps_doi"))

    op.drop_table("apps")
