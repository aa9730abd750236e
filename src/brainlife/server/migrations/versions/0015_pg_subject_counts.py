"""PostgreSQL: the per-subject counts of 0013_web_matrix kept by PL/pgSQL triggers

Revision ID: 0015_pg_subject_counts
Revises: 0014_task_output_files
Create Date: 2026-12-01 23:45:00

Migration 0013_web_matrix creates `dataset_subject_counts` on every engine but keeps it only on
SQLite. This revision gives PostgreSQL the same invariant (stated in 0013: after every
statement, the row (p, r, s, t) has `count` = the `datasets` rows with project_id = p,
removed = r, coalesce(subject, '') = s, datatype_id = t, and `pub_count` = those of them with at
least one `dataset_publications` row; rows whose count falls to zero are deleted; these
triggers are the only writers), fills the table from the rows already there, and so lets
`brainlife.server.services.browse` read it on every engine. On SQLite it does nothing.

The datasets triggers are row triggers, as 0012's. The publications triggers are statement
triggers over the statement's transition tables: PostgreSQL fires AFTER row triggers at the end
of the statement, when every row of it is in place, so a row trigger inserting a dataset's
first two publications in one statement would see two rows twice and count neither as the
first. Instead each affected dataset's publications are counted before (now, less the
statement's new rows, plus its old ones) and after (now), and `pub_count` moves by the
difference of "has any". Ordering with `ON DELETE CASCADE` is 0012's: the datasets delete
trigger runs BEFORE DELETE and subtracts everything; the publications' cascade runs after the
dataset row is gone and finds no dataset to count.
"""

from __future__ import annotations

from alembic import op

revision = "0015_pg_subject_counts"
down_revision = "0014_task_output_files"
branch_labels = None
depends_on = None

_KEY = "project_id = {r}.project_id AND removed = {r}.removed"
_KEY += " AND subject = coalesce({r}.subject, '') AND datatype_id = {r}.datatype_id"

DATASET_SUBJECT_COUNTS = f"""
CREATE FUNCTION bl_dataset_subject_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  pub int;
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    pub := (EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = OLD.id))::int;
    UPDATE dataset_subject_counts SET count = count - 1, pub_count = pub_count - pub
    WHERE {_KEY.format(r="OLD")};
    DELETE FROM dataset_subject_counts WHERE {_KEY.format(r="OLD")} AND count <= 0;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    pub := (EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = NEW.id))::int;
    INSERT INTO dataset_subject_counts AS c (project_id, removed, subject, datatype_id, count,
                                             pub_count)
    VALUES (NEW.project_id, NEW.removed, coalesce(NEW.subject, ''), NEW.datatype_id, 1, pub)
    ON CONFLICT (project_id, removed, subject, datatype_id) DO UPDATE
        SET count = c.count + 1, pub_count = c.pub_count + excluded.pub_count;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$
"""


def _publications_function(name: str, new: bool, old: bool) -> str:
    """A statement trigger's function over the transition tables `new_rows` / `old_rows`."""
    parts = ["SELECT dataset_id, 1 AS n FROM new_rows"] if new else []
    parts += ["SELECT dataset_id, -1 AS n FROM old_rows"] if old else []
    changed = " UNION ALL ".join(parts)
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH changed AS (SELECT dataset_id, sum(n) AS added FROM ({changed}) AS rows
                   GROUP BY dataset_id),
       moved AS (
         SELECT d.project_id, d.removed, coalesce(d.subject, '') AS subject, d.datatype_id,
                (now.n > 0)::int - ((now.n - changed.added) > 0)::int AS delta
         FROM changed JOIN datasets d ON d.id = changed.dataset_id
         CROSS JOIN LATERAL (SELECT count(*) AS n FROM dataset_publications x
                             WHERE x.dataset_id = changed.dataset_id) AS now),
       summed AS (SELECT project_id, removed, subject, datatype_id, sum(delta) AS delta
                  FROM moved GROUP BY 1, 2, 3, 4)
  UPDATE dataset_subject_counts c SET pub_count = c.pub_count + summed.delta
  FROM summed
  WHERE summed.delta <> 0 AND c.project_id = summed.project_id
    AND c.removed = summed.removed AND c.subject = summed.subject
    AND c.datatype_id = summed.datatype_id;
  RETURN NULL;
END $$
"""


FUNCTIONS = {
    "bl_dataset_subject_counts": DATASET_SUBJECT_COUNTS,
    "bl_publications_added_subject_counts": _publications_function(
        "bl_publications_added_subject_counts", new=True, old=False
    ),
    "bl_publications_removed_subject_counts": _publications_function(
        "bl_publications_removed_subject_counts", new=False, old=True
    ),
    "bl_publications_moved_subject_counts": _publications_function(
        "bl_publications_moved_subject_counts", new=True, old=True
    ),
}

#: trigger name -> (timing and event, table, transition tables and level, function)
TRIGGERS = {
    "trg_datasets_subject_counts_insert": (
        "AFTER INSERT",
        "datasets",
        "FOR EACH ROW",
        "bl_dataset_subject_counts",
    ),
    "trg_datasets_subject_counts_delete": (
        "BEFORE DELETE",
        "datasets",
        "FOR EACH ROW",
        "bl_dataset_subject_counts",
    ),
    "trg_datasets_subject_counts_update": (
        "AFTER UPDATE OF id, project_id, datatype_id, removed, subject",
        "datasets",
        "FOR EACH ROW",
        "bl_dataset_subject_counts",
    ),
    # transition tables allow one event per trigger and no column list
    "trg_dataset_publications_subject_counts_insert": (
        "AFTER INSERT",
        "dataset_publications",
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
        "bl_publications_added_subject_counts",
    ),
    "trg_dataset_publications_subject_counts_delete": (
        "AFTER DELETE",
        "dataset_publications",
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
        "bl_publications_removed_subject_counts",
    ),
    "trg_dataset_publications_subject_counts_update": (
        "AFTER UPDATE",
        "dataset_publications",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
        "bl_publications_moved_subject_counts",
    ),
}

#: fills the table from existing rows (the triggers keep it right afterwards)
BACKFILL = (
    "DELETE FROM dataset_subject_counts",
    """
    INSERT INTO dataset_subject_counts (project_id, removed, subject, datatype_id, count,
                                        pub_count)
    SELECT project_id, removed, coalesce(subject, ''), datatype_id, count(*), sum(p)
    FROM (SELECT project_id, removed, subject, datatype_id,
                 (EXISTS (SELECT 1 FROM dataset_publications x
                          WHERE x.dataset_id = d.id))::int AS p
          FROM datasets d) AS rows
    GROUP BY project_id, removed, coalesce(subject, ''), datatype_id
    """,
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for body in FUNCTIONS.values():
        op.execute(body)
    for name, (when, table, level, function) in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} {level} EXECUTE FUNCTION {function}()")
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (_when, table, _level, _function) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
