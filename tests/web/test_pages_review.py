"""The web pages as a demanding visitor uses them, in-process over a copy of the demo world of
this module's own (some tests add rows): any character in a search, what a private project's
publication tells an outsider, removed releases, counts that agree between pages, and messages
that say what to do."""

from __future__ import annotations

from urllib.parse import quote

from tests.web.conftest import PRIVATE, PUB, sign_in


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
