"""Translation of brainlife's find/sort/select/skip/limit to SQL, checked on real SQLite rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from brainlife.server import specs
from brainlife.server.errors import BadRequest
from brainlife.server.models import Dataset, Project, Publication, Task
from brainlife.server.query import (
    Collection,
    compile_find,
    order_by,
    page,
    parse_find,
    parse_list_params,
    parse_select,
    parse_sort,
)
from tests.server import factories as f

MODELS: dict[str, Any] = {"ds": Dataset, "proj": Project, "pub": Publication, "task": Task}
SPECS: dict[str, Collection] = {
    "ds": specs.DATASETS,
    "proj": specs.PROJECTS,
    "pub": specs.PUBLICATIONS,
    "task": specs.TASKS,
}


@pytest.fixture
def world(archive):
    with archive.session() as s:
        p1 = f.project(s, name="P1", access="public", admins=[1], members=[2], desc="first")
        p2 = f.project(s, name="P2", access="private", listed=True, admins=[3], guests=[4])
        t1 = f.datatype(s, name="neuro/anat/t1w")
        dwi = f.datatype(s, name="neuro/dwi")
        pub1 = f.publication(s, p1, name="Pub one", releases=["1", "2"], authors=["1", "2"])
        pub2 = f.publication(s, p2, name="Pub two", removed=True, authors=["3"])
        r1 = pub1.releases[0].id
        d1 = f.dataset(
            s, p1, t1,
            meta={"subject": "0001", "session": "1", "run": "1", "acq": "a", "n": 7},
            tags=["a", "x"], datatype_tags=["acpc"], desc="t1 (x) one",
            prov={"task_id": "T1"}, size=100, days=0, name="First",
        )  # fmt: skip
        d2 = f.dataset(
            s, p1, t1, meta={"subject": "0002", "session": "2"}, tags=["a"], desc="second",
            removed=True, size=200, days=1,
            prov={"task_id": "T2", "task": {"config": {"_inputs": [
                {"meta": {"subject": "0001"}}, {"meta": {"subject": "0009"}}]}}},
        )  # fmt: skip
        d3 = f.dataset(
            s, p1, t1,
            meta={"subject": "0003", "weird": None, "nums": [5, 10],
                  "objs": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]},
            tags=["b"], publications=[r1], size=None, days=2, status="storing",
        )  # fmt: skip
        d4 = f.dataset(
            s, p2, dwi, meta={"subject": "0001", "TaskName": "Rest"},
            datatype_tags=["acpc", "brain"], size=50, days=3,
        )  # fmt: skip
        tk1 = f.task(
            s, group_id=851, config={"_inputs": [{"meta": {"subject": "s1"}}], "flag": True}
        )
        tk2 = f.task(
            s, group_id=851, status="failed",
            config={"_inputs": [{"meta": {"subject": "s2"}}, {"meta": {"subject": "s3"}}]},
        )  # fmt: skip
        tk3 = f.task(s, group_id=900, user_id=7, gids=[1, 900])
        s.commit()
        names = {
            "p1": p1.id, "p2": p2.id, "t1": t1.id, "dwi": dwi.id, "pub1": pub1.id,
            "pub2": pub2.id, "r1": r1, "d1": d1.id, "d2": d2.id, "d3": d3.id, "d4": d4.id,
            "tk1": tk1.id, "tk2": tk2.id, "tk3": tk3.id,
        }  # fmt: skip
    return names


def run(archive, world: dict[str, str], coll: str, find: Any) -> set[str]:
    """Ids (as fixture names) matched by `find` (a dict, or a JSON string with {name} holes)."""
    if isinstance(find, str):
        for name, value in world.items():
            find = find.replace("{" + name + "}", value)
        find = parse_find(find)
    model = MODELS[coll]
    by_id = {v: k for k, v in world.items()}
    with archive.session() as s:
        rows = s.scalars(select(model.id).where(compile_find(SPECS[coll], find))).all()
    return {by_id[r] for r in rows}


CASES: list[tuple[str, str, set[str]]] = [
    # equality on columns, wire names and casts
    ("ds", "{}", {"d1", "d2", "d3", "d4"}),
    ("ds", '{"removed": false}', {"d1", "d3", "d4"}),
    ("ds", '{"removed": "true"}', {"d2"}),
    ("ds", '{"project": "{p1}"}', {"d1", "d2", "d3"}),
    ("ds", '{"datatype": "{dwi}"}', {"d4"}),
    ("ds", '{"_id": "{d1}"}', {"d1"}),
    ("ds", '{"_id": "not an object id"}', set()),
    ("ds", '{"_id": {"$in": ["{d1}", "junk", "{d4}"]}}', {"d1", "d4"}),
    ("ds", '{"_id": {"$nin": ["{d1}"]}}', {"d2", "d3", "d4"}),
    ("ds", '{"status": "stored", "size": {"$gte": 100}}', {"d1", "d2"}),
    ("ds", '{"size": {"$gt": "60", "$lt": 150}}', {"d1"}),
    ("ds", '{"size": null}', {"d3"}),
    ("ds", '{"size": {"$exists": false}}', {"d3"}),
    ("ds", '{"create_date": {"$gte": "2024-01-02T00:00:00.000Z"}}', {"d2", "d3", "d4"}),
    ("ds", '{"create_date": {"$lt": "2024-01-02"}}', {"d1"}),
    # promoted meta columns and JSON paths
    ("ds", '{"meta.subject": "0001"}', {"d1", "d4"}),
    ("ds", '{"meta.subject": {"$in": ["0002", "0003"]}}', {"d2", "d3"}),
    ("ds", '{"meta.session": {"$exists": true}}', {"d1", "d2"}),
    ("ds", '{"meta.run": "1"}', {"d1"}),
    ("ds", '{"meta.TaskName": "Rest"}', {"d4"}),
    ("ds", '{"meta.n": 7}', {"d1"}),
    ("ds", '{"meta.n": "7"}', set()),
    ("ds", '{"meta.n": {"$gt": 6}}', {"d1"}),
    ("ds", '{"meta.nums": 10}', {"d3"}),
    ("ds", '{"meta.nums": [5, 10]}', {"d3"}),
    ("ds", '{"meta.nums": {"$all": [5, 10]}}', {"d3"}),
    ("ds", '{"meta.nums": {"$elemMatch": {"$gt": 6, "$lt": 11}}}', {"d3"}),
    ("ds", '{"meta.nums": {"$size": 2}}', {"d3"}),
    ("ds", '{"meta.objs.k": "b"}', {"d3"}),
    ("ds", '{"meta.objs.1.k": "b"}', {"d3"}),
    ("ds", '{"meta.objs.0.k": "b"}', set()),
    ("ds", '{"meta.objs": {"$elemMatch": {"k": "b", "v": 2}}}', {"d3"}),
    ("ds", '{"meta.objs": {"$elemMatch": {"k": "b", "v": 1}}}', set()),
    ("ds", '{"meta.weird": null}', {"d1", "d2", "d3", "d4"}),
    ("ds", '{"meta.weird": {"$exists": true}}', {"d3"}),
    ("ds", '{"meta.acq": {"$ne": "a"}}', {"d2", "d3", "d4"}),
    ("ds", '{"meta": {"$exists": true}}', {"d1", "d2", "d3", "d4"}),
    ("ds", '{"prov.task_id": "T2"}', {"d2"}),
    ("ds", '{"prov.task.config._inputs.meta.subject": "0009"}', {"d2"}),
    ("ds", '{"prov": null}', {"d3", "d4"}),
    # association tables
    ("ds", '{"tags": "a"}', {"d1", "d2"}),
    ("ds", '{"tags": {"$all": ["a", "x"]}}', {"d1"}),
    ("ds", '{"tags": {"$all": []}}', set()),
    ("ds", '{"tags": {"$nin": ["a"]}}', {"d3", "d4"}),
    ("ds", '{"tags": {"$ne": "a"}}', {"d3", "d4"}),
    ("ds", '{"tags": {"$in": ["b", "x"]}}', {"d1", "d3"}),
    ("ds", '{"tags": {"$size": 0}}', {"d4"}),
    ("ds", '{"tags": ["x", "a"]}', {"d1"}),
    ("ds", '{"tags": {"$regex": "^X$", "$options": "ig"}}', {"d1"}),
    ("ds", '{"tags": {"$elemMatch": {"$in": ["b"]}}}', {"d3"}),
    ("ds", '{"datatype_tags": {"$all": ["acpc"]}}', {"d1", "d4"}),
    ("ds", '{"publications": "{r1}"}', {"d3"}),
    ("ds", '{"publications": {"$exists": true, "$ne": []}}', {"d3"}),
    ("ds", '{"publications": {"$size": 0}}', {"d1", "d2", "d4"}),
    # regexes
    ("ds", '{"desc": {"$regex": "t1 \\\\(x\\\\)", "$options": "ig"}}', {"d1"}),
    ("ds", '{"desc": {"$regex": "^SEC"}}', set()),
    ("ds", '{"desc": {"$regex": "^SEC", "$options": "i"}}', {"d2"}),
    ("ds", '{"desc": {"$not": {"$regex": "o"}}}', {"d3", "d4"}),
    ("ds", '{"desc": {"$regex": "s e c", "$options": "xi"}}', {"d2"}),
    ("ds", '{"meta.subject": {"$regex": "^000[12]$"}}', {"d1", "d2", "d4"}),
    ("ds", '{"meta.TaskName": {"$regex": "^rest$", "$options": "i"}}', {"d4"}),
    ("ds", '{"meta.n": {"$regex": "7"}}', set()),
    # unknown top-level fields live in `extra`
    ("ds", '{"name": {"$regex": "first", "$options": "ig"}}', {"d1"}),
    ("ds", '{"nosuchfield": 1}', set()),
    ("ds", '{"nosuchfield": null}', {"d1", "d2", "d3", "d4"}),
    ("ds", '{"nosuchfield": {"$exists": false}}', {"d1", "d2", "d3", "d4"}),
    ("ds", '{"nosuchfield": {"$ne": 3}}', {"d1", "d2", "d3", "d4"}),
    # logic
    ("ds", '{"$or": [{"tags": "b"}, {"size": 50}]}', {"d3", "d4"}),
    ("ds", '{"$nor": [{"tags": "b"}, {"size": 50}]}', {"d1", "d2"}),
    ("ds", '{"$and": [{"removed": false}, {"$or": [{"_id": "t1"}, {"desc": "second"}]}]}', set()),
    ("ds", '{"size": {"$not": {"$gt": 60}}}', {"d3", "d4"}),
    ("ds", '{"meta.subject": {"$eq": "0003"}}', {"d3"}),
    # projects
    ("proj", '{"admins": "1"}', {"p1"}),
    ("proj", '{"admins": {"$in": [1, 3]}}', {"p1", "p2"}),
    ("proj", '{"members": {"$in": ["2"]}}', {"p1"}),
    ("proj", '{"guests": "4"}', {"p2"}),
    ("proj", '{"guests": "1"}', set()),
    ("proj", '{"listed": true}', {"p2"}),
    ("proj", '{"access": "public", "removed": false}', {"p1"}),
    ("proj", '{"name": {"$regex": "p", "$options": "i"}}', {"p1", "p2"}),
    # publications: releases are sub-documents; authors live in extra
    ("pub", '{"releases._id": "{r1}"}', {"pub1"}),
    ("pub", '{"releases.name": "2"}', {"pub1"}),
    ("pub", '{"releases": {"$elemMatch": {"name": "1", "removed": false}}}', {"pub1", "pub2"}),
    ("pub", '{"releases": {"$size": 2}}', {"pub1"}),
    ("pub", '{"authors": {"$in": ["2"]}}', {"pub1"}),
    ("pub", '{"authors": "3", "removed": true}', {"pub2"}),
    ("pub", '{"project": "{p2}"}', {"pub2"}),
    # tasks
    (
        "task",
        '{"_group_id": "851", "service": "brainlife/app-freesurfer", "status": "finished"}',
        {"tk1"},
    ),
    ("task", '{"_group_id": {"$in": ["851", 900]}}', {"tk1", "tk2", "tk3"}),
    ("task", '{"config._inputs.meta.subject": "s3"}', {"tk2"}),
    ("task", '{"config._inputs.0.meta.subject": "s3"}', set()),
    ("task", '{"config.flag": true}', {"tk1"}),
    ("task", '{"gids": 900}', {"tk3"}),
    ("task", '{"user_id": 7}', {"tk3"}),
]


@pytest.mark.parametrize(("coll", "find", "expected"), CASES)
def test_find(archive, world, coll: str, find: str, expected: set[str]) -> None:
    assert run(archive, world, coll, find) == expected


BAD_FINDS = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
    ('{"$where": "1"}', "$where"),
    ('{"tags": {"$foo": 1}}', "$foo"),
    ('{"tags": {"$in": "a"}}', "$in needs a list"),
    ('{"tags": {"$nin": {"a": 1}}}', "$nin needs a list"),
    ('{"tags": {"$all": "a"}}', "$all needs a list"),
    ('{"$or": []}', "$or needs"),
    ('{"$and": {"a": 1}}', "$and needs"),
    ('{"$or": [1]}', "expected an object"),
    ('{"desc": {"$regex": "("}}', "invalid $regex"),
    ('{"desc": {"$regex": "a", "$options": "q"}}', "unknown $options"),
    ('{"desc": {"$options": "i"}}', "$options needs $regex"),
    ('{"desc": {"$regex": 5}}', "$regex needs a string"),
    ('{"desc": {"$not": 5}}', "$not needs"),
    ('{"desc": {"$elemMatch": 5}}', "$elemMatch needs"),
    ('{"tags": {"$size": -1}}', "$size"),
    ('{"size": "big"}', "size is a number"),
    ('{"removed": "maybe"}', "removed is true or false"),
    ('{"create_date": {"$gt": "yesterday"}}', "is a date"),
    ('{"desc": {"$regex": "a", "name": 1}}', "mixes operators"),
    ('{"a..b": 1}', "invalid field name"),
]


@pytest.mark.parametrize(("find", "message"), BAD_FINDS)
def test_bad_find(archive, find: str, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        compile_find(specs.DATASETS, parse_find(find))
    assert message in err.value.message


def test_cli_data_query_find(archive, world) -> None:
    """The exact document `bl data query` sends with every flag (brainlife-cli.md §4.3)."""
    find = {
        "removed": False,
        "$and": [
            {"tags": {"$all": ["a"]}},
            {"tags": {"$nin": ["b"]}},
            {"datatype_tags": {"$all": ["acpc"]}},
            {"datatype_tags": {"$nin": ["x"]}},
            {"project": world["p1"]},
            {"datatype": world["t1"]},
            {"meta.subject": "0001"},
            {"meta.session": "1"},
            {"meta.run": "1"},
            {"prov.task_id": "T1"},
            {"$or": [
                {"_id": "t1 (x)"},
                {"name": {"$regex": "t1 \\(x\\)", "$options": "ig"}},
                {"desc": {"$regex": "t1 \\(x\\)", "$options": "ig"}},
            ]},
        ],
    }  # fmt: skip
    assert run(archive, world, "ds", json.dumps(find)) == {"d1"}
    find["$and"][-1]["$or"][0]["_id"] = world["d2"]  # type: ignore[index]
    find["$and"][-1]["$or"][2]["desc"]["$regex"] = "nothing"  # type: ignore[index]
    assert run(archive, world, "ds", json.dumps(find)) == set()


# ---------------------------------------------------------------------------------------------
# sort / select / skip / limit


def test_parse_sort_forms() -> None:
    assert parse_sort('{"name": 1}') == (("name", 1),)
    assert parse_sort('{"create_date": -1, "name": "asc"}') == (("create_date", -1), ("name", 1))
    assert parse_sort("meta.subject meta.session -create_date") == (
        ("meta.subject", 1),
        ("meta.session", 1),
        ("create_date", -1),
    )
    assert parse_sort("") == ()
    with pytest.raises(BadRequest):
        parse_sort('{"name": 2}')
    with pytest.raises(BadRequest):
        parse_sort("{bad")


def _sorted(archive, world, coll: str, sort: str) -> list[str]:
    by_id = {v: k for k, v in world.items()}
    model, spec = MODELS[coll], SPECS[coll]
    params = parse_list_params(sort=sort)
    with archive.session() as s:
        stmt = select(model.id).order_by(*order_by(spec, params.sort, model.id))
        return [by_id[r] for r in s.scalars(stmt)]


def test_sort(archive, world) -> None:
    assert _sorted(archive, world, "ds", "-create_date") == ["d4", "d3", "d2", "d1"]
    assert _sorted(archive, world, "ds", '{"size": -1}') == ["d2", "d1", "d4", "d3"]
    assert _sorted(archive, world, "ds", "meta.subject -create_date") == ["d4", "d1", "d2", "d3"]
    assert _sorted(archive, world, "ds", "meta.TaskName") == ["d1", "d2", "d3", "d4"]
    assert _sorted(archive, world, "ds", "") == ["d1", "d2", "d3", "d4"]
    assert _sorted(archive, world, "proj", '{"name": -1}') == ["p2", "p1"]
    assert _sorted(archive, world, "task", "-_group_id") == ["tk3", "tk1", "tk2"]


@pytest.mark.parametrize("sort", ["nosuchfield", "tags", '{"releases": 1}', "-publications"])
def test_sort_unknown_field(archive, world, sort: str) -> None:
    coll = "pub" if "releases" in sort else "ds"
    with pytest.raises(BadRequest, match="cannot sort"):
        _sorted(archive, world, coll, sort)


def test_skip_limit(archive, world) -> None:
    assert parse_list_params().limit == 100
    assert parse_list_params(limit="0").limit is None
    assert parse_list_params(limit="7", skip="3").skip == 3
    for bad in ({"limit": "-1"}, {"limit": "ten"}, {"skip": "-5"}, {"limit": "100001"}):
        with pytest.raises(BadRequest):
            parse_list_params(**bad)
    assert parse_list_params(limit="100000").limit == 100000
    params = parse_list_params(skip="1", limit="2")
    with archive.session() as s:
        stmt = page(select(Dataset.id).order_by(Dataset.id), params)
        assert list(s.scalars(stmt)) == [world["d2"], world["d3"]]


DOC = {
    "_id": "x",
    "name": "n",
    "meta": {"subject": "1", "session": "2"},
    "config": {"_inputs": [{"meta": {"subject": "s"}, "id": "t1"}, {"meta": {"subject": "t"}}, 5]},
}


def test_select_inclusion() -> None:
    assert parse_select("name")
    assert parse_select("name").apply(DOC) == {"_id": "x", "name": "n"}  # type: ignore[union-attr]
    proj = parse_select("config._inputs.meta")
    assert proj is not None
    assert proj.apply(DOC) == {
        "_id": "x",
        "config": {"_inputs": [{"meta": {"subject": "s"}}, {"meta": {"subject": "t"}}]},
    }
    proj = parse_select("meta.subject -_id")
    assert proj is not None and proj.apply(DOC) == {"meta": {"subject": "1"}}
    proj = parse_select('{"name": 1, "meta": 1}')
    assert proj is not None and proj.apply(DOC) == {"_id": "x", "name": "n", "meta": DOC["meta"]}


def test_select_exclusion() -> None:
    proj = parse_select("-config -meta.session")
    assert proj is not None
    assert proj.apply(DOC) == {"_id": "x", "name": "n", "meta": {"subject": "1"}}
    assert DOC["meta"] == {"subject": "1", "session": "2"}  # the input is not modified
    proj = parse_select("-_id")
    assert proj is not None and "_id" not in proj.apply(DOC)
    proj = parse_select("-config._inputs.meta")
    assert proj is not None
    assert proj.apply(DOC)["config"] == {"_inputs": [{"id": "t1"}, {}, 5]}


def test_select_errors() -> None:
    assert parse_select("") is None
    with pytest.raises(BadRequest, match="mix"):
        parse_select("name -desc")
    with pytest.raises(BadRequest):
        parse_select("{bad")
    with pytest.raises(BadRequest):
        parse_select("meta..subject")


NEGATIONS = [
    ('{"meta.session": {"$ne": "1"}}', {"d2", "d3", "d4"}),
    ('{"meta.session": {"$nin": ["1", "2"]}}', {"d3", "d4"}),
    ('{"meta.session": {"$not": {"$regex": "1"}}}', {"d2", "d3", "d4"}),
    ('{"prov.task_id": {"$ne": "T1"}}', {"d2", "d3", "d4"}),
    ('{"meta.nums": {"$ne": [5, 10]}}', {"d1", "d2", "d4"}),
    ('{"size": {"$not": {"$lt": 150}}}', {"d2", "d3"}),
]


@pytest.mark.parametrize(("find", "expected"), NEGATIONS)
def test_negation_matches_missing(archive, world, find: str, expected: set[str]) -> None:
    """Mongo: a negated test matches documents where the field is missing."""
    assert run(archive, world, "ds", find) == expected
