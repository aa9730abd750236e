"""PostgreSQL: the aggregate triggers of 0002 and 0003 in PL/pgSQL, the prov.task_id index

Revision ID: 0012_postgresql
Revises: 0011_project_files
Create Date: 2026-12-01 20:30:00

Migrations 0002 and 0003 create `dataset_counts`, `dataset_release_counts` and
`dataset_tag_search` on every engine but fill and maintain them only on SQLite. This revision
gives PostgreSQL the same triggers, as PL/pgSQL functions with the same invariants (stated in
0002 and 0003: the tables are kept by these triggers alone), fills the tables from the rows
already there, and adds the expression index that serves `find: {"prov.task_id": …}` (0001
made SQLite's): `brainlife.server.query.jsonpath.JSON.text_field` compiles to exactly
`prov ->> 'task_id'` there. On SQLite it does nothing.

Ordering with `ON DELETE CASCADE` is as on SQLite: the datasets delete triggers run BEFORE
DELETE, while the object's publication and tag rows still exist; PostgreSQL runs the cascade
after the parent row is gone, so the child triggers find no dataset row and change nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0012_postgresql"
down_revision = "0011_project_files"
branch_labels = None
depends_on = None


DATASET_COUNTS = """
CREATE FUNCTION bl_dataset_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  pub int;
  bytes bigint;
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    bytes := coalesce(OLD.size, 0);
    pub := (EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = OLD.id))::int;
    UPDATE dataset_counts SET count = count - 1, size = size - bytes,
        pub_count = pub_count - pub, pub_size = pub_size - pub * bytes
    WHERE project_id = OLD.project_id AND datatype_id = OLD.datatype_id
      AND removed = OLD.removed;
    UPDATE dataset_release_counts SET count = count - 1, size = size - bytes
    WHERE project_id = OLD.project_id AND datatype_id = OLD.datatype_id
      AND removed = OLD.removed
      AND release_id IN (SELECT release_id FROM dataset_publications WHERE dataset_id = OLD.id);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    bytes := coalesce(NEW.size, 0);
    pub := (EXISTS (SELECT 1 FROM dataset_publications WHERE dataset_id = NEW.id))::int;
    INSERT INTO dataset_counts AS c (project_id, datatype_id, removed, count, size, pub_count,
                                     pub_size)
    VALUES (NEW.project_id, NEW.datatype_id, NEW.removed, 1, bytes, pub, pub * bytes)
    ON CONFLICT (project_id, datatype_id, removed) DO UPDATE SET count = c.count + 1,
        size = c.size + excluded.size, pub_count = c.pub_count + excluded.pub_count,
        pub_size = c.pub_size + excluded.pub_size;
    INSERT INTO dataset_release_counts AS c (release_id, project_id, datatype_id, removed,
                                             count, size)
    SELECT release_id, NEW.project_id, NEW.datatype_id, NEW.removed, 1, bytes
    FROM dataset_publications WHERE dataset_id = NEW.id
    ON CONFLICT (release_id, project_id, datatype_id, removed) DO UPDATE
        SET count = c.count + 1, size = c.size + excluded.size;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$
"""

#: a publication row added (NEW) or removed (OLD) while its dataset exists
PUBLICATION_COUNTS = """
CREATE FUNCTION bl_publication_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d record;
  moved boolean := true;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    moved := OLD.dataset_id IS DISTINCT FROM NEW.dataset_id;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    SELECT project_id, datatype_id, removed, coalesce(size, 0) AS bytes INTO d
    FROM datasets WHERE id = OLD.dataset_id;
    IF FOUND THEN
      UPDATE dataset_release_counts SET count = count - 1, size = size - d.bytes
      WHERE release_id = OLD.release_id AND project_id = d.project_id
        AND datatype_id = d.datatype_id AND removed = d.removed;
      IF moved AND NOT EXISTS (SELECT 1 FROM dataset_publications
                               WHERE dataset_id = OLD.dataset_id) THEN
        UPDATE dataset_counts SET pub_count = pub_count - 1, pub_size = pub_size - d.bytes
        WHERE project_id = d.project_id AND datatype_id = d.datatype_id
          AND removed = d.removed;
      END IF;
    END IF;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    SELECT project_id, datatype_id, removed, coalesce(size, 0) AS bytes INTO d
    FROM datasets WHERE id = NEW.dataset_id;
    IF FOUND THEN
      INSERT INTO dataset_release_counts AS c (release_id, project_id, datatype_id, removed,
                                               count, size)
      VALUES (NEW.release_id, d.project_id, d.datatype_id, d.removed, 1, d.bytes)
      ON CONFLICT (release_id, project_id, datatype_id, removed) DO UPDATE
          SET count = c.count + 1, size = c.size + excluded.size;
      IF moved AND (SELECT count(*) FROM dataset_publications
                    WHERE dataset_id = NEW.dataset_id) = 1 THEN
        UPDATE dataset_counts SET pub_count = pub_count + 1, pub_size = pub_size + d.bytes
        WHERE project_id = d.project_id AND datatype_id = d.datatype_id
          AND removed = d.removed;
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END $$
"""

#: (kind, association table), as in 0003
_TAG_TABLES = (("t", "dataset_tags"), ("d", "dataset_datatype_tags"))

DATASET_TAG_SEARCH = (
    """
CREATE FUNCTION bl_dataset_tag_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN"""
    + "".join(
        f"""
    DELETE FROM dataset_tag_search
    WHERE kind = '{kind}' AND tag IN (SELECT tag FROM {table} WHERE dataset_id = OLD.id)
      AND project_id = OLD.project_id AND removed = OLD.removed
      AND datatype_id = OLD.datatype_id AND dataset_id = OLD.id;"""
        for kind, table in _TAG_TABLES
    )
    + """
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN"""
    + "".join(
        f"""
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT '{kind}', tag, NEW.project_id, NEW.removed, NEW.datatype_id, NEW.id FROM {table}
    WHERE dataset_id = NEW.id
    ON CONFLICT DO NOTHING;"""
        for kind, table in _TAG_TABLES
    )
    + """
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$
"""
)

#: a tag row of kind TG_ARGV[0] added (NEW) or removed (OLD)
TAG_SEARCH = """
CREATE FUNCTION bl_tag_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    DELETE FROM dataset_tag_search s USING datasets d
    WHERE d.id = OLD.dataset_id AND s.kind = TG_ARGV[0] AND s.tag = OLD.tag
      AND s.project_id = d.project_id AND s.removed = d.removed
      AND s.datatype_id = d.datatype_id AND s.dataset_id = OLD.dataset_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT TG_ARGV[0], NEW.tag, project_id, removed, datatype_id, id FROM datasets
    WHERE id = NEW.dataset_id
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$
"""

FUNCTIONS = {
    "bl_dataset_counts": DATASET_COUNTS,
    "bl_publication_counts": PUBLICATION_COUNTS,
    "bl_dataset_tag_search": DATASET_TAG_SEARCH,
    "bl_tag_search": TAG_SEARCH,
}

#: trigger name -> (table, timing and events, function call)
TRIGGERS = {
    "trg_datasets_counts_insert": ("datasets", "AFTER INSERT", "bl_dataset_counts()"),
    "trg_datasets_counts_delete": ("datasets", "BEFORE DELETE", "bl_dataset_counts()"),
    "trg_datasets_counts_update": (
        "datasets",
        "AFTER UPDATE OF id, project_id, datatype_id, removed, size",
        "bl_dataset_counts()",
    ),
    "trg_dataset_publications_counts": (
        "dataset_publications",
        "AFTER INSERT OR DELETE OR UPDATE OF dataset_id, release_id",
        "bl_publication_counts()",
    ),
    "trg_datasets_tag_search_insert": ("datasets", "AFTER INSERT", "bl_dataset_tag_search()"),
    "trg_datasets_tag_search_delete": ("datasets", "BEFORE DELETE", "bl_dataset_tag_search()"),
    "trg_datasets_tag_search_update": (
        "datasets",
        "AFTER UPDATE OF id, project_id, datatype_id, removed",
        "bl_dataset_tag_search()",
    ),
    **{
        f"trg_{table}_search": (
            table,
            "AFTER INSERT OR DELETE OR UPDATE OF dataset_id, tag",
            f"bl_tag_search('{kind}')",
        )
        for kind, table in _TAG_TABLES
    },
}

#: fills the tables from existing rows (the triggers keep them right afterwards)
BACKFILL = (
    "DELETE FROM dataset_counts",
    "DELETE FROM dataset_release_counts",
    "DELETE FROM dataset_tag_search",
    """
    INSERT INTO dataset_counts (project_id, datatype_id, removed, count, size, pub_count,
                                pub_size)
    SELECT project_id, datatype_id, removed, count(*), sum(s), sum(p), sum(p * s)
    FROM (SELECT project_id, datatype_id, removed, coalesce(size, 0) AS s,
                 (EXISTS (SELECT 1 FROM dataset_publications x
                          WHERE x.dataset_id = d.id))::int AS p
          FROM datasets d) AS rows
    GROUP BY project_id, datatype_id, removed
    """,
    """
    INSERT INTO dataset_release_counts (release_id, project_id, datatype_id, removed, count,
                                        size)
    SELECT x.release_id, d.project_id, d.datatype_id, d.removed, count(*),
           sum(coalesce(d.size, 0))
    FROM dataset_publications x JOIN datasets d ON d.id = x.dataset_id
    GROUP BY x.release_id, d.project_id, d.datatype_id, d.removed
    """,
    *(
        f"""
    INSERT INTO dataset_tag_search (kind, tag, project_id, removed, datatype_id, dataset_id)
    SELECT '{kind}', x.tag, d.project_id, d.removed, d.datatype_id, d.id
    FROM {table} x JOIN datasets d ON d.id = x.dataset_id
    """
        for kind, table in _TAG_TABLES
    ),
)

TASK_ID_INDEX = (
    "CREATE INDEX ix_datasets_prov_task_id ON datasets ((prov ->> 'task_id'))"
    " WHERE (prov ->> 'task_id') IS NOT NULL"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for body in FUNCTIONS.values():
        op.execute(body)
    for name, (table, when, call) in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {call}")
    for statement in BACKFILL:
        op.execute(statement)
    op.execute(TASK_ID_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_datasets_prov_task_id")
    for name, (table, _when, _call) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
