"""Negated tests of association-table arrays (`$ne`, `$nin`, `$not`, `$nor`): the correlated
`NOT EXISTS` form (`compile_find(correlate_negations=…)`) selects exactly the rows of the
`NOT IN (SELECT …)` form, rows without any element included."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from brainlife.server import specs
from brainlife.server.models import Dataset, Project
from brainlife.server.query import compile_find
from tests.server import factories as f

DS_ARRAYS = frozenset({"tags", "datatype_tags", "publications"})
ROLES = frozenset({"admins", "members", "guests"})


@pytest.fixture
def world(archive):
    with archive.session() as s:
        p1 = f.project(s, name="P1", access="public", admins=[1], members=[2])
        p2 = f.project(s, name="P2", access="private", admins=[3], guests=[4])
        f.project(s, name="P3", access="public")  # no roles at all
        t1 = f.datatype(s, name="neuro/anat/t1w")
        pub = f.publication(s, p1, name="Pub", releases=["1", "2"])
        r1, r2 = pub.releases[0].id, pub.releases[1].id
        f.dataset(s, p1, t1, tags=["a", "x"], datatype_tags=["acpc"], publications=[r1])
        f.dataset(s, p1, t1, tags=["a"], datatype_tags=["acpc", "brain"])
        f.dataset(s, p1, t1, tags=["b"], publications=[r1, r2])
        f.dataset(s, p2, t1)  # no tags, datatype tags or publications
        f.dataset(s, p2, t1, tags=["x"], datatype_tags=["masked"], meta={"subject": "1"})
        s.commit()
        yield s, {"p1": p1.id, "r1": r1, "r2": r2}


def _finds(names: dict[str, str]) -> list[dict[str, Any]]:
    p1, r1, r2 = names["p1"], names["r1"], names["r2"]
    return [
        {"tags": {"$nin": ["a"]}},
        {"tags": {"$nin": ["a", "b"]}, "project": p1},
        {"tags": {"$nin": []}},
        {"tags": {"$nin": [None, "x"]}},
        {"tags": {"$nin": [["a", "x"]]}},
        {"tags": {"$ne": "x"}},
        {"tags": {"$ne": ["a"]}},
        {"tags": {"$ne": None}},
        {"tags": {"$not": {"$in": ["a"]}}},
        {"tags": {"$not": {"$all": ["a", "x"]}}},
        {"tags": {"$not": {"$regex": "^[ab]$"}}},
        {"tags": {"$not": "^x"}},
        {"tags": {"$not": {"$elemMatch": {"$in": ["b", "x"]}}}},
        {"tags": {"$not": {"$size": 0}}},
        {"tags": {"$not": {"$ne": "a"}}},
        {"tags": {"$exists": False}},
        {"tags": {"$all": ["a"], "$nin": ["x"]}},
        {"datatype_tags": {"$nin": ["masked"]}, "tags": "a"},
        {"publications": {"$nin": [r1]}},
        {"publications": {"$ne": r2}, "project": p1},
        {"publications": {"$nin": ["not an id"]}},
        {"$nor": [{"tags": "a"}, {"datatype_tags": "masked"}]},
        {"$nor": [{"tags": {"$ne": "a"}}]},
        {"$nor": [{"$or": [{"tags": "x"}, {"publications": r1}]}]},
        {"$or": [{"tags": {"$nin": ["a"]}}, {"meta.subject": "1"}]},
    ]


def _ids(session: Any, model: Any, spec: Any, find: Any, **forms: frozenset[str]) -> set[str]:
    clause = compile_find(spec, find, **forms)
    return set(session.scalars(select(model.id).where(clause)))


def test_datasets_same_rows_in_every_form(world) -> None:
    session, names = world
    for find in _finds(names):
        want = _ids(session, Dataset, specs.DATASETS, find)
        for correlate, negations in itertools.product(
            (frozenset(), DS_ARRAYS), (frozenset(), DS_ARRAYS)
        ):
            got = _ids(
                session,
                Dataset,
                specs.DATASETS,
                find,
                correlate=correlate,
                correlate_negations=negations,
            )
            assert got == want, (find, correlate, negations)


def test_rows_without_elements_match_negations(world) -> None:
    session, _names = world
    bare = {
        d.id
        for d in session.scalars(select(Dataset))
        if not d.tags and not d.datatype_tags and not d.publications
    }
    assert len(bare) == 1
    for find in ({"tags": {"$nin": ["a"]}}, {"publications": {"$ne": "0" * 24}}):
        got = _ids(session, Dataset, specs.DATASETS, find, correlate_negations=DS_ARRAYS)
        assert bare <= got


def test_project_roles_same_rows(world) -> None:
    session, _names = world
    for find in (
        {"admins": {"$nin": ["1"]}},
        {"members": {"$ne": "2"}, "admins": "1"},
        {"guests": {"$not": {"$in": ["4"]}}},
        {"$nor": [{"admins": "3"}, {"members": "2"}]},
    ):
        want = _ids(session, Project, specs.PROJECTS, find)
        got = _ids(session, Project, specs.PROJECTS, find, correlate_negations=ROLES)
        assert got == want, find
    # a project without any role matches every negation of a role
    bare = session.scalar(select(Project.id).where(Project.name == "P3"))
    find = {"admins": {"$nin": ["1"]}}
    assert bare in _ids(session, Project, specs.PROJECTS, find, correlate_negations=ROLES)


def _sql(find: Any, **forms: frozenset[str]) -> str:
    stmt = select(Dataset.id).where(compile_find(specs.DATASETS, find, **forms))
    return " ".join(str(stmt.compile(dialect=sqlite.dialect())).split())


def test_negations_take_the_correlated_form_only_when_asked() -> None:
    find = {"tags": {"$all": ["a"], "$nin": ["b"]}}
    plain = _sql(find)
    assert plain.count("IN (SELECT dataset_tags.dataset_id") == 2
    assert "NOT (EXISTS" not in plain
    neg = _sql(find, correlate_negations=DS_ARRAYS)
    # the positive test keeps the set form; the negated one is a probe per row
    assert neg.count("IN (SELECT dataset_tags.dataset_id") == 1
    probe = "NOT (EXISTS (SELECT ? AS anon_1 FROM dataset_tags WHERE"
    assert f"{probe} dataset_tags.dataset_id = datasets.id AND dataset_tags.tag IN" in neg
    nor = _sql({"$nor": [{"tags": "a"}]}, correlate_negations=DS_ARRAYS)
    assert "IN (SELECT" not in nor
    assert "EXISTS (SELECT ? AS anon_1 FROM dataset_tags WHERE dataset_tags.dataset_id" in nor
