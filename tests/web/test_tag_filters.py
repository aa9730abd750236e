"""Filtering a project's data objects on any tag a data object can have, by clicking the tag or
by typing it: tags with a comma, a leading `!`, a space, non-ASCII letters, or the escape
character itself (`web.filters`: a backslash makes the next `,`, `!`, `\\` or blank part of the
tag), while the URLs written before the rule keep their meaning."""

from __future__ import annotations

import html
import json
import random
import re
import shlex
from urllib.parse import quote

import pytest

from tests.web.conftest import HTML

#: tag -> the objects having it (built by `tagged`)
ODD = ["a,b", "!x", "x y", "héllo✓", "\\,", "\\", " lead", "trail ", "!", ","]


def rows_of(page: str) -> list[str]:
    return re.findall(r'name="ids" value="([0-9a-f]{24})"', page)


@pytest.fixture
def tagged(archive):  # type: ignore[no-untyped-def]
    """A public project: one object per odd tag, and objects tagged `a`, `b`, `a`+`b`, `x`."""
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name="odd tags")
        dt = factories.datatype(session)
        ids = {}
        for tag in ODD:
            ids[tag] = factories.dataset(session, p, dt, tags=[tag], datatype_tags=[tag]).id
        for name, tags in (("A", ["a"]), ("B", ["b"]), ("AB", ["a", "b"]), ("X", ["x"])):
            ids[name] = factories.dataset(session, p, dt, tags=tags).id
        session.commit()
        return p.id, ids


def test_a_typed_tag_is_read_with_the_escaping_rule(http, tagged) -> None:  # type: ignore[no-untyped-def]
    pid, ids = tagged

    def found(**params: str) -> set[str]:
        query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
        page = http.get(f"/project/{pid}/data?{query}", headers=HTML)
        assert page.status_code == 200, page.text
        return set(rows_of(page.text))

    assert found(tag="a\\,b") == {ids["a,b"]}
    assert found(tag="\\!x") == {ids["!x"]}
    assert found(tag="x y") == {ids["x y"]}
    assert found(tag="héllo✓") == {ids["héllo✓"]}
    assert found(tag="\\\\\\,") == {ids["\\,"]}
    assert found(tag="\\\\") == {ids["\\"]}
    assert found(tag="\\ lead") == {ids[" lead"]}
    assert found(tag="trail\\ ") == {ids["trail "]}
    assert found(tag="\\!") == {ids["!"]}
    assert found(tag="\\,") == {ids[","]}
    assert found(datatype_tag="a\\,b") == {ids["a,b"]}
    # excluding an odd tag: `!` then the escaped tag
    everything = set(ids.values())
    assert found(tag="!\\!x") == everything - {ids["!x"]}
    assert found(tag="!a\\,b, !x y") == everything - {ids["a,b"], ids["x y"]}


def test_the_urls_written_before_the_rule_keep_their_meaning(http, tagged) -> None:  # type: ignore[no-untyped-def]
    pid, ids = tagged

    def found(query: str) -> set[str]:
        return set(rows_of(http.get(f"/project/{pid}/data?{query}", headers=HTML).text))

    assert found("tag=a,b") == {ids["AB"]}
    assert found("tag=a&tag=b") == {ids["AB"]}
    assert found("tag=a,!b") == {ids["A"]}
    assert found("tag=!x") == set(ids.values()) - {ids["X"]}
    assert found("tag=%20a%20,%20b%20") == {ids["AB"]}  # blanks around a tag are not part of it


def test_every_tag_shown_in_the_list_is_a_link_filtering_on_it(http, tagged) -> None:  # type: ignore[no-untyped-def]
    pid, ids = tagged
    page = http.get(f"/project/{pid}/data", headers=HTML).text
    for kind, param in (("tag", "tag"), ("tag dt", "datatype_tag")):
        links = dict(
            (html.unescape(text), html.unescape(href))
            for href, text in re.findall(
                rf'<a class="{kind}" href="([^"]+)"[^>]*>([^<]*)</a>', page
            )
        )
        assert set(links) >= set(ODD), f"{kind}: {sorted(links)}"
        for tag in ODD:
            assert f"{param}=" in links[tag]
            got = http.get(links[tag], headers=HTML)
            assert set(rows_of(got.text)) == {ids[tag]}, (kind, tag, links[tag])


def test_the_filter_field_shows_the_typed_form_that_filters_the_same(http, tagged) -> None:  # type: ignore[no-untyped-def]
    """The form's field after a filter holds the tags as they are typed (escaped): submitted
    again, it selects the same objects."""
    pid, ids = tagged
    for tag in ODD:
        from brainlife.server.web.filters import escape_tag

        page = http.get(f"/project/{pid}/data?tag={quote(escape_tag(tag))}", headers=HTML).text
        value = re.search(r'id="f-tag" name="tag"[^>]*value="([^"]*)"', page)
        assert value, "no tag field"
        again = http.get(f"/project/{pid}/data?tag={quote(html.unescape(value.group(1)))}")
        assert set(rows_of(again.text)) == {ids[tag]}, tag


def test_escape_then_parse_gives_back_any_tag() -> None:
    from starlette.datastructures import QueryParams

    from brainlife.server.web.filters import Filters, escape_tag

    rng = random.Random(7)
    alphabet = "ab !,\\ \t✓"
    for _ in range(2_000):
        tags = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(3)]
        tags = list(dict.fromkeys(tags))
        typed = ",".join(escape_tag(t) for t in tags)
        parsed = Filters.parse(QueryParams({"tag": typed}))
        assert [(t.tag, t.exclude) for t in parsed.tags] == [(t, False) for t in tags], typed
        negated = Filters.parse(QueryParams({"tag": ",".join("!" + escape_tag(t) for t in tags)}))
        assert [(t.tag, t.exclude) for t in negated.tags] == [(t, True) for t in tags]


def test_the_command_line_gets_the_tags_verbatim(http, tagged) -> None:  # type: ignore[no-untyped-def]
    """`bl data download --tag` takes a tag as one word, `!` excluding: a comma needs no
    escape, an excluded `!x` is `--tag '!!x'`, a wanted one `--tag '\\!x'`."""
    pid, _ids = tagged
    page = http.get(f"/project/{pid}/data?tag=a\\,b,!\\!x", headers=HTML).text
    assert "--tag a,b --tag &#39;!!x&#39; -d" in page
    page = http.get(f"/project/{pid}/data?tag=\\!x", headers=HTML).text
    assert "--tag &#39;\\!x&#39; -d" in page
    assert "cannot select a tag" not in page


@pytest.mark.parametrize("exclude", [False, True])
def test_the_offered_command_selects_what_the_page_shows(http, archive, tagged, exclude) -> None:  # type: ignore[no-untyped-def]
    """For every odd tag, wanted and excluded: the `--tag` word of the command the page
    offers, read as `bl` reads it and sent as its query, finds the objects the page lists."""
    from brainlife.client import DatasetFilter
    from brainlife.client._queries import dataset_find
    from brainlife.server.web.filters import escape_tag
    from tests.server._bytes_factories import auth

    pid, _ids = tagged
    headers = auth(archive, sub=1, gids=[])
    for tag in ODD:
        typed = ("!" if exclude else "") + escape_tag(tag)
        page = http.get(f"/project/{pid}/data?tag={quote(typed)}", headers=HTML).text
        shown = set(rows_of(page))
        assert shown, (tag, typed)
        command = re.search(r'value="(bl data download [^"]*)"', page)
        assert command is not None, (tag, typed)
        offered = shlex.split(html.unescape(command.group(1)))
        words = [offered[i + 1] for i, w in enumerate(offered) if w == "--tag"]
        assert len(words) == 1, offered
        find = dataset_find(DatasetFilter(tags=words))
        find["project"] = pid
        got = http.get(
            "/api/warehouse/dataset",
            params={"find": json.dumps(find), "limit": "100", "select": "_id"},
            headers=headers,
        )
        assert got.status_code == 200, got.text
        assert {d["_id"] for d in got.json()["datasets"]} == shown, (tag, words)
