"""The web pages as a demanding visitor uses them, in-process over a copy of the demo world of
this module's own (some tests add rows): any character in a search, what a private project's
publication tells an outsider, removed releases, counts that agree between pages, and messages
that say what to do."""

from __future__ import annotations

import re
from urllib.parse import quote

from tests.web.conftest import O3D, PRIVATE, PUB, RELEASE, sign_in

REMOVED_RELEASE = "5bb2437c19fdb40027307f7b"  # the O3D publication's removed release (no name)


def test_home_search_takes_any_character(browser) -> None:  # type: ignore[no-untyped-def]
    """Punctuation beyond ASCII (a dash, a middle dot, an emoji) is text to look for, not a
    pattern the database refuses (it was a 400 naming an invalid `$regex`)."""
    for q in ("fMRI — resting state", "a·b", "🧠", "Müller–Lyer", "x\\y", "100%"):
        page = browser.get("/?q=" + quote(q))
        assert page.status_code == 200, (q, page.text[-400:])
        assert "No project matches" in page.text and "regex" not in page.text
    # ASCII punctuation still matches literally: the publication's description has the colon
    found = browser.get("/?q=" + quote("Derivatives: diffusion"))
    assert found.status_code == 200 and f'href="/pub/{PUB}"' in found.text


def _private_publication(demo_web) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A publication of the unlisted private project, with a release of one new object of it:
    (publication id, object id)."""
    from brainlife.server.models import Datatype, Project
    from tests.server import factories

    with demo_web.state.archive.session() as session:
        project = session.get(Project, PRIVATE)
        dt = session.query(Datatype).filter_by(name="neuro/anat/t1w").one()
        pub = factories.publication(session, project, name="Quiet paper")
        obj = factories.dataset(
            session, project, dt, meta={"subject": "q1"}, publications=[pub.releases[0].id]
        )
        session.commit()
        return pub.id, obj.id


def test_private_project_name_stays_private_on_publication_and_object_pages(
    browser, demo_web
) -> None:  # type: ignore[no-untyped-def]
    """A publication and its objects are public, the unlisted private project they come from
    is not: an outsider sees neither its name nor links to its (404) pages."""
    pub_id, obj_id = _private_publication(demo_web)
    for path in (f"/pub/{pub_id}", f"/object/{obj_id}"):
        page = browser.get(path)
        assert page.status_code == 200 and "Quiet paper" in page.text
        assert "Private demo" not in page.text, path
        assert f'href="/project/{PRIVATE}' not in page.text, path
    assert browser.get(f"/project/{PRIVATE}").status_code == 404
    sign_in(browser, "avesani")  # an admin of the project
    for path in (f"/pub/{pub_id}", f"/object/{obj_id}"):
        page = browser.get(path).text
        assert "Private demo" in page and f'href="/project/{PRIVATE}"' in page, path


def test_release_counts_agree_and_removed_releases_say_so(browser) -> None:  # type: ignore[no-untyped-def]
    """The home page counts the releases the publications page lists (not the removed one),
    and a removed release's page says it was removed (and names it by its id when it has no
    name, not "Release ")."""
    listed = re.findall(r'href="/release/([0-9a-f]{24})"', browser.get(f"/pub/{PUB}").text)
    assert REMOVED_RELEASE in listed and len(listed) == 3
    pubs = browser.get("/pubs").text
    assert REMOVED_RELEASE not in pubs
    home = browser.get("/?q=O3D").text
    assert "2 releases" in home and "3 release" not in home
    removed = browser.get(f"/release/{REMOVED_RELEASE}")
    assert removed.status_code == 200
    assert "This release was removed" in removed.text
    assert "<h1>Release </h1>" not in removed.text and REMOVED_RELEASE in removed.text


def test_downloading_an_empty_selection_says_what_to_do(browser) -> None:  # type: ignore[no-untyped-def]
    """The list's "Download selected" button with no box ticked sends no `ids`: the page says
    to tick some, in the page's words rather than the query string's."""
    page = browser.get("/download/tar")
    assert page.status_code == 400
    assert "No data objects were selected" in page.text and "ids=" not in page.text


def test_a_list_too_long_for_one_tar_says_how_to_get_it(browser) -> None:  # type: ignore[no-untyped-def]
    """Past the tar's bound the "Download all" button is gone; the page says why and what to
    use instead (narrower filters or the `bl` command), rather than nothing."""
    from brainlife.wire import DATASET_TAR_MAX_OBJECTS

    page = browser.get(f"/project/{O3D}/data").text
    assert "2,708 data objects match" in page and "Download all" not in page
    assert f"at most {DATASET_TAR_MAX_OBJECTS:,}" in page and "narrow the filters" in page
    small = browser.get(f"/project/{O3D}/data?datatype=neuro/anat/t1w").text
    assert "Download all 21 as one tar" in small and "narrow the filters" not in small


def test_pages_name_an_icon_so_browsers_do_not_ask_for_a_missing_one(browser) -> None:  # type: ignore[no-untyped-def]
    """Without a declared icon every page view made the browser fetch /favicon.ico, a 404
    logged in its console."""
    for path in ("/", "/pubs", f"/project/{O3D}", "/no/such/page"):
        assert re.search(r'<link rel="icon" href="data:,">', browser.get(path).text), path


def test_a_full_last_page_offers_no_next_page(browser) -> None:  # type: ignore[no-untyped-def]
    """Subject 0001 has exactly one page of tracts (50): no "Next" link to an empty page."""
    page = browser.get(f"/project/{O3D}/data?subject=0001&datatype=neuro/wmc").text
    assert "50 data objects match" in page and len(rows_of(page)) == 50
    assert 'rel="next"' not in page
    # a longer list still pages, and the link promises no page size the next page may not have
    longer = browser.get(f"/project/{O3D}/data?datatype=neuro/tractprofile").text
    assert "524 data objects match" in longer and 'rel="next">Next page ›</a>' in longer


def rows_of(html: str) -> list[str]:
    return re.findall(r'name="ids" value="([0-9a-f]{24})"', html)


def test_later_pages_say_which_rows_they_show(browser) -> None:  # type: ignore[no-untyped-def]
    """A page after the first has no totals; it says which rows it shows ("51–100", from the
    page number the "Next page" link carries) instead of only the id it starts after, and a
    cursor past the end says there is nothing more rather than "No data objects match"."""
    first = browser.get(f"/project/{O3D}/data?datatype=neuro/tractprofile").text
    link = re.search(r'href="\?([^"]+)" rel="next"', first)
    assert link and "page=2" in link.group(1)
    second = browser.get(f"/project/{O3D}/data?" + link.group(1).replace("&amp;", "&")).text
    assert "Data objects 51–100 (page 2; the total is on the first page)." in second
    following = re.search(r'href="\?([^"]+)" rel="next"', second)
    assert following and "page=3" in following.group(1)
    # a hand-made cursor without a page number is labelled by the cursor; junk pages are ignored
    after = rows_of(first)[-1]
    for extra in ("", "&page=0", "&page=x", "&page=99999999999"):
        page = browser.get(f"/project/{O3D}/data?datatype=neuro/tractprofile&after={after}{extra}")
        assert page.status_code == 200 and f"Data objects after <code>{after}</code>" in page.text
    past = browser.get(f"/project/{O3D}/data?after=ffffffffffffffffffffffff&page=9").text
    assert "No more data objects after" in past and "First page" in past
    release = browser.get(f"/release/{RELEASE}").text
    onward = re.search(r'href="\?([^"]+)" rel="next"', release)
    assert onward and "page=2" in onward.group(1)
    more = browser.get(f"/release/{RELEASE}?" + onward.group(1).replace("&amp;", "&")).text
    assert "Data objects 51–" in more


def test_an_empty_list_offers_nothing_to_select_or_download(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}/data?subject=nobody").text
    assert "0 data objects match" in page and "No data objects match" in page
    assert "Download selected as one tar" not in page and "select-all" not in page
    full = browser.get(f"/project/{O3D}/data?subject=0001").text
    assert "Download selected as one tar" in full and "select-all" in full


def test_long_lists_of_projects_and_publications_page_or_say_they_are_cut(http, archive) -> None:  # type: ignore[no-untyped-def]
    """The home page shows the first 100 projects and publications and says so (it showed
    "Projects (105)" over 100 cards, no word of the rest); the publications page pages through
    every publication, 100 a page (it listed them all on one page, unbounded)."""
    from tests.server import factories
    from tests.web.conftest import HTML

    with archive.session() as session:
        for n in range(105):
            project = factories.project(session, name=f"study {n:03d}")
            factories.publication(session, project, name=f"paper {n:03d}")
        session.commit()
    home = http.get("/", headers=HTML).text
    assert "Projects <span" in home and "(105)" in home
    assert home.count('href="/project/') == 100 and home.count('href="/pub/') == 100
    assert "Showing the first 100 of 105 projects" in home
    assert "Showing the first 100 of 105 publications" in home
    first = http.get("/pubs", headers=HTML)
    assert first.status_code == 200 and first.text.count('<li class="card">') == 100
    assert "Publications 1–100 of 105" in first.text
    nxt = re.search(r'href="(/pubs\?page=2)" rel="next"', first.text)
    assert nxt
    second = http.get(nxt.group(1), headers=HTML).text
    assert second.count('<li class="card">') == 5 and 'rel="next"' not in second
    assert "Publications 101–105 of 105" in second and 'href="/pubs" rel="prev"' in second
    shown = set(re.findall(r'href="/pub/([0-9a-f]{24})"', first.text + second))
    assert len(shown) == 105
    far = http.get("/pubs?page=999999", headers=HTML)
    assert far.status_code == 200 and "No publications on this page" in far.text
    assert 'href="/pubs"' in far.text
    for bad in ("x", "0", "-1", "1" * 30):
        page = http.get(f"/pubs?page={bad}", headers=HTML)
        assert page.status_code == 400 and "must be a number from 1 to" in page.text, bad


def test_an_object_with_many_files_lists_a_bounded_number(http, archive) -> None:  # type: ignore[no-untyped-def]
    """A data object of thousands of files (a folder datatype) made a page of every one; the
    page lists the first `FILES_SHOWN` in tar order and says how many there are in all."""
    from brainlife.server.models import DatasetFile
    from brainlife.server.services import browse
    from tests.server import factories
    from tests.web.conftest import HTML

    n = browse.FILES_SHOWN + 7
    with archive.session() as session:
        project = factories.project(session, name="many files")
        obj = factories.dataset(session, project, factories.datatype(session))
        for i in range(n):
            session.add(
                DatasetFile(dataset_id=obj.id, pos=i, path=f"out/f{i:05d}", sha256="0" * 64, size=1)
            )
        small = factories.dataset(session, project, factories.datatype(session, name="x/y"))
        session.add(DatasetFile(dataset_id=small.id, pos=0, path="a", sha256="0" * 64, size=1))
        session.commit()
        oid, small_id = obj.id, small.id
    page = http.get(f"/object/{oid}", headers=HTML).text
    shown = re.findall(rf'href="/download/file/{oid}/out/f(\d+)"', page)
    assert shown == [f"{i:05d}" for i in range(browse.FILES_SHOWN)]
    assert f"The first {browse.FILES_SHOWN:,} of {n:,} files" in page
    few = http.get(f"/object/{small_id}", headers=HTML).text
    assert f'href="/download/file/{small_id}/a"' in few and "The first" not in few


def test_error_pages_show_who_is_signed_in(browser) -> None:  # type: ignore[no-untyped-def]
    """An error page drew every visitor as signed out ("Sign in" in the header), so a signed-in
    researcher meeting a 404 thought the session had ended."""
    sign_in(browser, "demo")
    for path in (f"/project/{PRIVATE}", "/object/nope", "/no/such/page", "/pubs?page=x"):
        page = browser.get(path)
        assert page.status_code in (400, 404), path
        assert "Sign out" in page.text and ">demo</span>" in page.text, path
        assert ">Sign in</a>" not in page.text, path
    # signed out, the error page offers to sign in and come back
    browser.cookies.clear()
    page = browser.get(f"/project/{PRIVATE}")
    assert page.status_code == 404
    assert f'href="/signin?next=/project/{PRIVATE}"' in page.text


def test_filter_fields_stop_at_the_length_the_server_takes(browser) -> None:  # type: ignore[no-untyped-def]
    """A filter typed past 256 characters sent the researcher to a 400 page; the fields stop
    at the bound (the home search field already did)."""
    from brainlife.server.web.filters import MAX_VALUE

    page = browser.get(f"/project/{O3D}/data").text
    fields = re.findall(r'<input id="f-[a-z]+"[^>]*>', page)
    fields = [f for f in fields if 'type="checkbox"' not in f]
    assert len(fields) == 7
    for field in fields:
        assert f'maxlength="{MAX_VALUE}"' in field or "f-dtag" in field or "f-tag" in field, field
    # the tag fields hold up to 20 comma-separated tags of 256 characters each, every
    # character escaped (`a\,b`: `web.filters`), with a comma and a blank between tags
    tags = [f for f in fields if 'id="f-dtag"' in f or 'id="f-tag"' in f]
    assert len(tags) == 2 and all('maxlength="10280"' in f for f in tags)


def test_a_url_too_long_is_a_page_for_browsers(browser) -> None:  # type: ignore[no-untyped-def]
    """The server's URL bound (414) answered a browser with the API's JSON; a browser gets the
    same message as a page, an API client the JSON as before."""
    long = "/?q=" + "x" * 20_000
    page = browser.get(long)
    assert page.status_code == 414 and page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text and "The URL is too long" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    api = browser.get(long, headers={"Accept": "application/json"})
    assert api.status_code == 414 and api.json()["message"].startswith("The URL is too long")
    under_api = browser.get("/api/warehouse/dataset?find=" + "x" * 20_000)
    assert under_api.status_code == 414 and "message" in under_api.json()
