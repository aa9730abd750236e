"""The find documents of reference §4, flag by flag."""

from __future__ import annotations

import pytest

from brainlife.client import DatasetFilter, ReleaseFilter
from brainlife.client._queries import (
    dataset_find,
    escape_regex,
    project_find,
    pub_find,
    release_set,
)


def rx(text: str) -> dict[str, str]:
    return {"$regex": text, "$options": "ig"}


def test_escape_regex_like_the_official() -> None:
    assert escape_regex("t1 (x)") == "t1 \\(x\\)"
    assert escape_regex("a.b*c?[d]") == "a\\.b\\*c\\?\\[d\\]"


def test_dataset_find_full_command_line() -> None:
    # reference §4.3 [tested], with -i and -q in separate clauses (ANDed: our fix)
    filters = DatasetFilter(
        id="5a050ad5d76a2a002737e572",
        query="t1 (x)",
        tags=["a", "!b"],
        datatype_tags=["acpc", "!x"],
        subject="0008",
        session="1",
        run="2",
        taskid="TID",
    )
    find = dataset_find(filters, datatype_id="DT", project_id="PID")
    assert find == {
        "removed": False,
        "$and": [
            {"tags": {"$all": ["a"]}},
            {"tags": {"$nin": ["b"]}},
            {"datatype_tags": {"$all": ["acpc"]}},
            {"datatype_tags": {"$nin": ["x"]}},
            {"project": "PID"},
            {"datatype": "DT"},
            {"meta.subject": "0008"},
            {"meta.session": "1"},
            {"meta.run": "2"},
            {"prov.task_id": "TID"},
            {"$or": [{"_id": "5a050ad5d76a2a002737e572"}]},
            {"$or": [{"name": rx("t1 \\(x\\)")}, {"desc": rx("t1 \\(x\\)")}]},
        ],
    }


def test_dataset_find_each_flag_alone() -> None:
    none = DatasetFilter()
    assert dataset_find(none) == {"removed": False}
    assert dataset_find(DatasetFilter(id="X")) == {
        "removed": False,
        "$and": [{"$or": [{"_id": "X"}]}],
    }
    assert dataset_find(DatasetFilter(query="q")) == {
        "removed": False,
        "$and": [{"$or": [{"name": rx("q")}, {"desc": rx("q")}]}],
    }
    assert dataset_find(none, project_id="P") == {"removed": False, "$and": [{"project": "P"}]}
    assert dataset_find(DatasetFilter(tags=["!b"])) == {
        "removed": False,
        "$and": [{"tags": {"$nin": ["b"]}}],
    }


def test_dataset_find_pub_drops_removed_and_goes_first() -> None:
    assert dataset_find(DatasetFilter(pub="R", subject="0001")) == {
        "$and": [{"publications": "R"}, {"meta.subject": "0001"}]
    }


def test_dataset_filter_given_leaves_out_what_is_not_set() -> None:
    assert DatasetFilter().given() == {}
    assert DatasetFilter(query="", tags=(), project="P", datatype_tags=["x"]).given() == {
        "project": "P",
        "datatype_tags": ["x"],
    }


def test_release_set_sends_ours_only_when_given() -> None:
    assert release_set(ReleaseFilter()) == {"datatype_tags": [], "tags": [], "subjects": []}
    one = ReleaseFilter(tags=("!bad",), subjects=("01",), runs=("2",), ids=("X",))
    assert release_set(one, datatype_id="DT") == {
        "datatype_tags": [],
        "tags": ["!bad"],
        "subjects": ["01"],
        "datatype": "DT",
        "runs": ["2"],
        "ids": ["X"],
    }


def test_client_takes_a_filter_or_keywords_not_both() -> None:
    from brainlife.client import Client

    client = Client(host="localhost:1")
    find = client.dataset_find(DatasetFilter(subject="0001", tags=["a"]))
    assert find == client.dataset_find(subject="0001", tags=["a"])
    assert find == {"removed": False, "$and": [{"tags": {"$all": ["a"]}}, {"meta.subject": "0001"}]}
    with pytest.raises(TypeError, match="not both"):
        client.dataset_find(DatasetFilter(subject="0001"), tags=["a"])
    with pytest.raises(TypeError):
        client.dataset_find(subjects=["0001"])  # a typo is refused, as the keywords were


def test_project_find_users_and_search() -> None:
    assert project_find() == {"removed": False}
    assert project_find(admins=["1"], members=["2", "3"], guests=["4"], query="o3d") == {
        "removed": False,
        "$and": [
            {"admins": {"$in": ["1"]}},
            {"members": {"$in": ["2", "3"]}},
            {"guests": {"$in": ["4"]}},
            {"$or": [{"name": rx("o3d")}, {"desc": rx("o3d")}]},
        ],
    }


def test_pub_find() -> None:
    assert pub_find(authors=["1"], doi="10.25663/bl.p.3") == {
        "removed": False,
        "$and": [{"authors": {"$in": ["1"]}}, {"doi": rx("10\\.25663/bl\\.p\\.3")}],
    }


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("a", ("a", False)),
        ("!a", ("a", True)),
        ("\\!a", ("!a", False)),
        ("!!a", ("!a", True)),
        ("!\\!a", ("!a", True)),
        ("\\\\a", ("\\a", False)),
        ("a\\b", ("a\\b", False)),
        ("\\a", ("\\a", False)),
        ("!", ("", True)),
        ("\\!", ("!", False)),
    ],
)
def test_a_tag_filter_is_read_with_one_escape(typed: str, read: tuple[str, bool]) -> None:
    from brainlife.wire.tags import parse_tag

    assert parse_tag(typed) == read


def test_every_tag_can_be_typed_wanted_or_excluded() -> None:
    from brainlife.wire.tags import parse_tag, typed_tag

    for tag in ["a", "!a", "!!a", "\\a", "\\!a", "\\\\a", "a\\", "!", "\\", "a,b", " x "]:
        for excluded in (False, True):
            assert parse_tag(typed_tag(tag, excluded=excluded)) == (tag, excluded), tag


def test_dataset_find_can_want_a_tag_starting_with_an_exclamation_mark() -> None:
    assert dataset_find(DatasetFilter(tags=["\\!x", "!!y"])) == {
        "removed": False,
        "$and": [{"tags": {"$all": ["!x"]}}, {"tags": {"$nin": ["!y"]}}],
    }
