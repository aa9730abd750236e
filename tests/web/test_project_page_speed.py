"""The project page's cost (issue #12: under 100 ms at 1,000,000 objects, bench/bench_web.py):
its statements are few and do not grow with the project, and the subjects × datatypes table,
now written by `web.render.matrix_rows` instead of per-cell template code, keeps every value
escaped in text and quoted in links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.web.conftest import HTML

MEMBER = 41


def _cookie(archive, sub: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    claims = {"sub": sub, "gids": [], "scopes": {}, "profile": {"username": f"u{sub}"}}
    return {"Cookie": "bl_session=" + archive.signer.sign(claims, 600_000)}


@contextmanager
def _statements(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _project(archive, name: str, subjects: int, per_subject: int = 1) -> str:  # type: ignore[no-untyped-def]
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name=name, access="public", members=[MEMBER])
        factories.publication(session, p, releases=["1"])
        dts = [factories.datatype(session, name=f"neuro/{name}{i}") for i in range(3)]
        for n in range(subjects):
            for k in range(per_subject):
                factories.dataset(session, p, dts[(n + k) % 3], meta={"subject": f"s{n:04d}"})
        session.commit()
        return str(p.id)


def test_the_project_page_runs_few_statements_whatever_its_size(http, archive) -> None:  # type: ignore[no-untyped-def]
    """A member (who also gets the upload form) and an anonymous visitor: the visitor's check,
    the project with the visitor's rights in one statement, totals, one statement for the
    matrix page, the datatypes, the people, the publications and their releases, the upload
    form's datatypes. A project four times larger runs the same statements."""
    small = _project(archive, "small", 60)
    large = _project(archive, "large", 240, per_subject=2)
    counts = {}
    for name, pid in (("small", small), ("large", large)):
        for who, headers in (("member", _cookie(archive, MEMBER)), ("anonymous", {})):
            http.get(f"/project/{pid}", headers={**HTML, **headers})  # once-per-process work
            with _statements(archive.engine) as seen:
                page = http.get(f"/project/{pid}", headers={**HTML, **headers})
            assert page.status_code == 200
            assert ("Upload a data object" in page.text) == (who == "member")
            assert "subjects_after=s0049" in page.text  # a page of the matrix, more follow
            counts[name, who] = len(seen)
            # the visitor's rights come with the project row, not in statements of their own
            assert not [s for s in seen if re.match(r"SELECT count\(\*\).*FROM projects", s, re.S)]
    assert counts["small", "member"] == counts["large", "member"] <= 12
    assert counts["small", "anonymous"] == counts["large", "anonymous"] <= 10


def test_matrix_cells_escape_text_and_quote_links(http, archive) -> None:  # type: ignore[no-untyped-def]
    """Subjects and datatype names with markup and URL syntax: escaped where shown, quoted in
    the cells' links, exactly as the template wrote them."""
    from tests.server import factories

    hostile = "a<b>&\"c' d/é?x=1#f"
    with archive.session() as session:
        p = factories.project(session, name="hostile", access="public")
        dt = factories.datatype(session, name='neuro/a&b "x"')
        factories.dataset(session, p, dt, meta={"subject": hostile})
        factories.dataset(session, p, dt, meta={"subject": hostile})
        factories.dataset(session, p, dt)  # no subject: shown as (none)
        session.commit()
        pid = p.id
    page = http.get(f"/project/{pid}", headers=HTML).text
    quoted = "a%3Cb%3E%26%22c%27%20d/%C3%A9%3Fx%3D1%23f"
    shown = "a&lt;b&gt;&amp;&#34;c&#39; d/é?x=1#f"
    assert (
        f'<tr><th scope="row"><a href="/project/{pid}/data?subject={quoted}">{shown}</a></th>\n'
        f'<td class="num"><a href="/project/{pid}/data?subject={quoted}&amp;datatype='
        f'neuro/a%26b%20%22x%22" aria-label="2 neuro/a&amp;b &#34;x&#34; of subject {shown}">'
        "2</a></td>      </tr>"
    ) in page
    # the objects without a subject: their own filter (`subject=` would be no filter at all)
    none = f'<a href="/project/{pid}/data?no_subject=1">(none)</a></th>\n<td class="num">'
    assert none in page
    assert hostile not in page and "<b>" not in page
