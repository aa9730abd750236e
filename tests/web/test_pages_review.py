"""The web pages as a demanding visitor uses them, in-process over a copy of the demo world of
this module's own (some tests add rows): any character in a search, what a private project's
publication tells an outsider, removed releases, counts that agree between pages, and messages
that say what to do."""

from __future__ import annotations

from urllib.parse import quote

from tests.web.conftest import PUB


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
