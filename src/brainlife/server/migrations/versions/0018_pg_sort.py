"""PostgreSQL: the project + subject index in the order of a sort by subject

Revision ID: 0018_pg_sort
Revises: 0017_pg_listing
Create Date: 2026-12-02 05:40:00

A listing sorted by `meta.subject` (`bl data query` with a project and a datatype, `sort=
meta.subject`) orders by `subject ASC NULLS FIRST, id` on PostgreSQL (`query.find.order_by`:
SQLite's order, where NULL is the smallest value). `ix_datasets_project_subject` (0001) is
`(project_id, subject, removed, datatype_id, id)` with PostgreSQL's default NULLS LAST, which
cannot give that order, so PostgreSQL read every object of the project and datatype and sorted
them for a page of 100: at 1,000,000 objects 80,925 rows, 32,413 buffers, about 1 s, one such
request in the concurrent benchmark's twenty costing more database time than the other
nineteen together (issue #11). Made again with `subject NULLS FIRST`, the index yields the page
in order after its equalities (111 buffers, 1 ms); equality on `subject` uses it as before, and
a descending sort (`DESC NULLS LAST`) walks it backwards. SQLite already sorts NULL first: its
index stays as it is.
"""

from __future__ import annotations

from alembic import op

revision = "0018_pg_sort"
down_revision = "0017_pg_listing"
branch_labels = None
depends_on = None

_NAME = "ix_datasets_project_subject"
_COLUMNS = "project_id, subject{nulls}, removed, datatype_id, id"


def _make(nulls: str) -> None:
    op.execute(f"DROP INDEX IF EXISTS {_NAME}")
    op.execute(f"CREATE INDEX {_NAME} ON datasets ({_COLUMNS.format(nulls=nulls)})")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _make(" NULLS FIRST")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _make("")
