"""The web pages, in-process over the demo world: what each page shows, to whom (the API's access
rules: anonymous visitors see public and published data only), the filters and paging of the
data-object list, Markdown without HTML, and HTML 404s for browsers beside JSON for API clients."""

from __future__ import annotations

import re

from tests.web.conftest import HTML, LISTED, O3D, PRIVATE, PUB, RELEASE, T1, TP, sign_in


def rows_of(html: str) -> list[str]:
    return re.findall(r'name="ids" value="([0-9a-f]{24})"', html)


def test_home_searches_projects_and_publications(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get("/?q=O3D")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'href="/project/{O3D}"' in page.text and f'href="/pub/{PUB}"' in page.text
    assert f'href="/project/{TP}"' not in page.text
    none = browser.get("/?q=" + "no such thing")
    assert "No project matches" in none.text
    # a regex metacharacter is text, not a pattern (nor an error)
    assert browser.get("/?q=O3D(").status_code == 200


def test_home_lists_public_projects_only_when_signed_out(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get("/")
    assert f"/project/{O3D}" in page.text
    assert f"/project/{PRIVATE}" not in page.text and "Private demo" not in page.text
    assert sign_in(browser, "avesani").status_code == 303
    assert f"/project/{PRIVATE}" in browser.get("/").text


def test_home_on_an_empty_archive(http) -> None:  # type: ignore[no-untyped-def]
    page = http.get("/", headers=HTML)
    assert page.status_code == 200 and "No project matches" in page.text
    assert http.get("/pubs", headers=HTML).status_code == 200


def test_project_page(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}").text
    assert "<h1>O3D</h1>" in page
    assert "2,708" in page  # objects not removed
    assert "Soichi Hayashi" in page and "Admins" in page
    assert f"bl data download -p {O3D} -d {O3D}" in page
    # the matrix: subject 0001 has one t1w, linked to the filtered list
    cell = re.search(
        rf'href="/project/{O3D}/data\?subject=0001&amp;datatype=neuro/anat/t1w"[^>]*>(\d+)<', page
    )
    assert cell and cell.group(1) == "1"


def test_private_project_is_invisible_when_signed_out(browser) -> None:  # type: ignore[no-untyped-def]
    for path in (f"/project/{PRIVATE}", f"/project/{PRIVATE}/data"):
        page = browser.get(path)
        assert page.status_code == 404 and "may not see it" in page.text
        assert "Private demo" not in page.text
    assert sign_in(browser, "avesani").status_code == 303
    page = browser.get(f"/project/{PRIVATE}")
    assert page.status_code == 200 and "Private demo" in page.text


def test_listed_private_project_shows_no_data_to_outsiders(browser) -> None:  # type: ignore[no-untyped-def]
    sign_in(browser, "demo")
    page = browser.get(f"/project/{LISTED}")
    assert page.status_code == 200 and "published data objects only" in page.text
    listing = browser.get(f"/project/{LISTED}/data")
    assert rows_of(listing.text) == [] and "0 data objects match" in listing.text


def test_data_list_filters_like_bl_data_query(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}/data?datatype=neuro/anat/t1w&subject=0001")
    assert rows_of(page.text) == [T1]
    assert "1 data object match." in page.text
    assert (
        f"bl data download -p {O3D} --datatype neuro/anat/t1w -b 0001 -d {O3D}-neuro_anat_t1w"
        in page.text
    )
    tracts = browser.get(f"/project/{O3D}/data?datatype=neuro/wmc&subject=0002").text
    with_tag = browser.get(f"/project/{O3D}/data?datatype=neuro/wmc&subject=0002&tag=dt_stream")
    without = browser.get(f"/project/{O3D}/data?datatype=neuro/wmc&subject=0002&tag=!dt_stream")
    both = set(rows_of(with_tag.text)) | set(rows_of(without.text))
    assert rows_of(with_tag.text) and rows_of(without.text)
    assert both == set(rows_of(tracts)) and not set(rows_of(with_tag.text)) & set(
        rows_of(without.text)
    )
    assert "--tag &#39;!dt_stream&#39;" in without.text  # shell-quoted in the command


def test_unknown_datatype_is_said_not_an_error(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}/data?datatype=neuro/nope")
    assert page.status_code == 200 and "There is no datatype named" in page.text
    assert rows_of(page.text) == []


def test_data_list_pages_by_id(browser) -> None:  # type: ignore[no-untyped-def]
    first = browser.get(f"/project/{O3D}/data?datatype=neuro/wmc").text
    ids = rows_of(first)
    assert len(ids) == 50 and ids == sorted(ids)
    following = re.search(r'href="\?([^"]+)" rel="next"', first)
    assert following
    second = browser.get(f"/project/{O3D}/data?" + following.group(1).replace("&amp;", "&")).text
    more = rows_of(second)
    assert len(more) == 50 and more[0] > ids[-1]
    assert "First page" in second


def test_bad_paging_cursor_and_oversized_filters_are_400s(browser) -> None:  # type: ignore[no-untyped-def]
    assert browser.get(f"/project/{O3D}/data?after=xyz").status_code == 400
    assert browser.get(f"/project/{O3D}/data?subject=" + "x" * 300).status_code == 400


def test_object_page(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/object/{T1}").text
    assert "t1.nii.gz" in page and re.search(r'class="hash">[0-9a-f]{64}<', page)
    assert f'href="/release/{RELEASE}"' in page
    assert f"bl data download {T1}" in page
    assert f'href="/download/file/{T1}/t1.nii.gz"' in page


def test_private_object_is_404_when_signed_out(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from brainlife.server.models import Dataset

    with demo_web.state.archive.session() as session:
        oid = session.scalar(select(Dataset.id).where(Dataset.project_id == PRIVATE).limit(1))
    assert browser.get(f"/object/{oid}").status_code == 404
    assert browser.get(f"/download/object/{oid}").status_code == 403
    sign_in(browser, "avesani")
    assert browser.get(f"/object/{oid}").status_code == 200


def test_publications_and_releases(browser) -> None:  # type: ignore[no-untyped-def]
    assert f'href="/release/{RELEASE}"' in browser.get("/pubs").text
    assert f'href="/release/{RELEASE}"' in browser.get(f"/pub/{PUB}").text
    release = browser.get(f"/release/{RELEASE}")
    assert release.status_code == 200 and rows_of(release.text)
    assert f"bl data download --pub {RELEASE}" in release.text


def test_task_files_for_group_members_only(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from brainlife.server.models import Task

    with demo_web.state.archive.session() as session:
        task = session.scalars(select(Task).where(Task.group_id == 851).limit(1)).one()
    assert browser.get(f"/task/{task.id}").status_code == 404
    sign_in(browser, "demo")
    page = browser.get(f"/task/{task.id}")
    assert page.status_code == 200
    first = re.search(rf'href="/task/{task.id}/file/([^"]+)"', page.text)
    assert first
    assert browser.get(f"/task/{task.id}/file/{first.group(1)}").status_code == 200
    assert browser.get(f"/task/{task.id}/file/../../etc/passwd").status_code in (400, 404)


def test_unknown_pages_are_html_for_browsers_json_for_api_clients(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get("/no/such/page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page" in page.text
    api = browser.get("/no/such/page", headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.json() == {"message": "No such route: GET /no/such/page"}
    # under /api, even a browser gets the API's JSON
    under_api = browser.get("/api/warehouse/nope")
    assert under_api.status_code == 404 and under_api.json()["message"].startswith("No such route")


def test_no_page_shadows_the_api(demo_web) -> None:  # type: ignore[no-untyped-def]
    from brainlife.server.web import pages

    assert pages.router.routes
    assert not [r for r in pages.router.routes if getattr(r, "path", "").startswith("/api")]


def test_readme_markdown_is_rendered_without_html(http, archive) -> None:  # type: ignore[no-untyped-def]
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(
            session,
            name="md",
            readme="# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) **bold**",
        )
        session.commit()
        pid = p.id
    page = http.get(f"/project/{pid}", headers=HTML).text
    assert "<h1>Title</h1>" in page and "<strong>bold</strong>" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert "script-src 'self'" in http.get(f"/project/{pid}").headers["content-security-policy"]


def test_the_matrix_pages_through_subjects(http, archive) -> None:  # type: ignore[no-untyped-def]
    from brainlife.server.services import browse
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name="many subjects")
        dt = factories.datatype(session)
        for n in range(browse.MATRIX_SUBJECTS + 3):
            factories.dataset(session, p, dt, meta={"subject": f"s{n:03d}"})
        session.commit()
        pid = p.id
    first = http.get(f"/project/{pid}", headers=HTML).text
    shown = re.findall(r'data\?subject=(s\d{3})">', first)
    assert len(shown) == browse.MATRIX_SUBJECTS and shown[0] == "s000"
    following = re.search(r'href="(/project/[0-9a-f]+\?subjects_after=[^"#]+)#matrix-h"', first)
    assert following
    rest = re.findall(r'data\?subject=(s\d{3})">', http.get(following.group(1), headers=HTML).text)
    assert rest == [f"s{n:03d}" for n in range(browse.MATRIX_SUBJECTS, browse.MATRIX_SUBJECTS + 3)]


def test_the_matrix_counts_are_exact_for_members_and_for_the_published_view(archive) -> None:  # type: ignore[no-untyped-def]
    """The page's counts (read from the trigger-kept per-subject table) equal a recount of the
    objects: all of them for a reader, only the published ones otherwise; removed objects and
    subjects moved or cleared after the fact are not counted where they were."""
    import random
    from collections import Counter

    from sqlalchemy import update

    from brainlife.server.models import Dataset
    from brainlife.server.services import browse
    from tests.server import factories

    rng = random.Random(12)
    with archive.session() as session:
        p = factories.project(session, name="matrix counts", access="private")
        pub = factories.publication(session, p, releases=["1"])
        dts = [factories.datatype(session, name=f"neuro/m{i}") for i in range(3)]
        rows = []
        for _ in range(200):
            subject = rng.choice(("a", "b", "c", None))
            rows.append(
                factories.dataset(
                    session,
                    p,
                    rng.choice(dts),
                    meta={"subject": subject} if subject else None,
                    removed=rng.random() < 0.2,
                    publications=[pub.releases[0].id] if rng.random() < 0.3 else [],
                )
            )
        session.commit()
        session.execute(
            update(Dataset).where(Dataset.id.in_([r.id for r in rows[:20]])).values(subject="d")
        )
        session.execute(
            update(Dataset).where(Dataset.id.in_([r.id for r in rows[20:30]])).values(subject=None)
        )
        session.commit()
        session.expire_all()
        live = [r for r in session.query(Dataset).filter_by(project_id=p.id, removed=False)]
        for readable in (True, False):
            want: Counter[tuple[str, str]] = Counter(
                (r.subject or "", r.datatype_id) for r in live if readable or r.publications
            )
            got, following = browse._matrix(session, None, p.id, readable, None)
            flat = {(s, t): n for s, by in got.items() for t, n in by.items()}
            assert flat == dict(want) and following is None
            assert list(got) == sorted(got)


def test_task_page_lists_a_bounded_number_of_files(browser, demo_web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A task folder of many files makes a page of `PAGE_FILES` rows that says how many there
    are (the rest are counted, not hashed)."""
    from sqlalchemy import select

    from brainlife.server.models import Task
    from brainlife.server.services import taskfiles

    with demo_web.state.archive.session() as session:
        task = session.scalars(select(Task).where(Task.group_id == 851).limit(1)).one()
    sign_in(browser, "demo")

    def links(html: str) -> list[str]:
        return re.findall(rf'href="/task/{task.id}/file/([^"]+)"', html)

    whole = links(browser.get(f"/task/{task.id}").text)
    assert len(whole) >= 2
    assert "files, in the tar's order" not in browser.get(f"/task/{task.id}").text
    monkeypatch.setattr(taskfiles, "PAGE_FILES", 1)
    page = browser.get(f"/task/{task.id}")
    assert page.status_code == 200
    assert len(links(page.text)) == 1
    assert links(page.text) == whole[:1]
    assert f"The first 1 of {len(whole):,} files, in the tar's order" in page.text
    assert f"bl task download {task.id}</code> gets them all" in page.text


def test_the_subject_count_is_exact_past_one_page_of_the_matrix(http, archive) -> None:  # type: ignore[no-untyped-def]
    """A project of more subjects than the matrix's page shows their number (with thousands
    separators), not "many"; an anonymous visitor of a private project counts the subjects of
    its published objects; removed objects and objects without a subject count for none."""
    from brainlife.server.models import Project
    from brainlife.server.principal import Principal
    from brainlife.server.services import browse
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name="many subjects", listed=True)
        pub = factories.publication(session, p, releases=["1"])
        dt = factories.datatype(session)
        for n in range(1_003):
            published = [pub.releases[0].id] if n < 7 else []
            factories.dataset(session, p, dt, meta={"subject": f"s{n:04d}"}, publications=published)
        factories.dataset(session, p, dt, meta={"subject": "gone"}, removed=True)
        factories.dataset(session, p, dt)  # no subject
        session.commit()
        pid = p.id
        assert browse.subject_count(session, pid, readable=True) == 1_003
        assert browse.subject_count(session, pid, readable=False) == 7

    def subjects(html: str) -> str:
        found = re.search(r"<dt>Subjects</dt><dd>([^<]*)</dd>", html)
        assert found, "the page shows no subject count"
        return found.group(1)

    assert subjects(http.get(f"/project/{pid}", headers=HTML).text) == "1,003"
    later = http.get(f"/project/{pid}?subjects_after=s0100", headers=HTML).text
    assert subjects(later) == "1,003"
    with archive.session() as session:
        session.get(Project, pid).access = "private"
        session.commit()
        outsider = Principal(sub=4242, scopes={"warehouse": ["user"]})
        info = browse.get_project(session=session, principal=outsider, project_id=pid)
        assert not info.readable and info.subjects == 7


def test_the_matrix_row_of_objects_without_a_subject_lists_those_objects(http, archive) -> None:  # type: ignore[no-untyped-def]
    """The "(none)" row of the subjects × datatypes table linked to `?subject=` (no filter:
    every object of the project); it lists the objects without a subject, and its cells those
    of one datatype, as the counts say. The list's form keeps the filter, the tar takes it,
    and no `bl` command is offered (`-b` cannot ask for a missing subject)."""
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name="some without subject")
        t1, dwi = factories.datatype(session), factories.datatype(session, name="neuro/dwi")
        named = factories.dataset(session, p, t1, meta={"subject": "a"}).id
        none_t1 = factories.dataset(session, p, t1).id
        none_dwi = factories.dataset(session, p, dwi, meta={"session": "1"}).id
        session.commit()
        pid = p.id
    page = http.get(f"/project/{pid}", headers=HTML).text
    row = re.search(r'<th scope="row"><a href="([^"]+)">\(none\)</a></th>', page)
    assert row, "no (none) row"
    listed = http.get(row.group(1).replace("&amp;", "&"), headers=HTML).text
    assert set(rows_of(listed)) == {none_t1, none_dwi}
    assert named not in rows_of(listed)
    cell = re.search(r'href="([^"]+)" aria-label="1 neuro/dwi of subject \(none\)"', page)
    assert cell, "no (none) × neuro/dwi cell"
    one = http.get(cell.group(1).replace("&amp;", "&"), headers=HTML).text
    assert rows_of(one) == [none_dwi] and "1 data object match." in one
    assert re.search(r'<input[^>]*name="no_subject"[^>]*checked', listed)
    assert "bl data download -p" not in listed and "without a subject" in listed
    tar = re.search(r'href="/download/tar\?([^"]+)"', listed)
    assert tar and "no_subject=1" in tar.group(1)


def test_an_object_that_cannot_be_downloaded_offers_no_download(http, archive) -> None:  # type: ignore[no-untyped-def]
    """A failed, still uploading or removed object's page offered "Download object" and the
    command, which ended on an error page; it says why instead. A removed object still in a
    release is served (its release keeps it), so its page keeps the download."""
    from brainlife.server.models import DatasetFile
    from tests.server import factories

    with archive.session() as session:
        p = factories.project(session, name="statuses")
        pub = factories.publication(session, p, releases=["1"])
        dt = factories.datatype(session)
        made = {
            "failed": factories.dataset(session, p, dt, status="failed"),
            "waiting": factories.dataset(session, p, dt, status="waiting"),
            "removed": factories.dataset(session, p, dt, removed=True),
            "released": factories.dataset(
                session, p, dt, removed=True, publications=[pub.releases[0].id]
            ),
            "stored": factories.dataset(session, p, dt),
        }
        for row in made.values():
            session.add(DatasetFile(dataset_id=row.id, path="t1.nii.gz", sha256="0" * 64, size=1))
        session.commit()
        ids = {k: v.id for k, v in made.items()}
    for kind, oid in ids.items():
        page = http.get(f"/object/{oid}", headers=HTML).text
        offered = f'href="/download/object/{oid}"' in page
        linked = f'href="/download/file/{oid}/' in page
        said = f"bl data download {oid}" in page
        can = kind in ("stored", "released")
        assert offered == linked == said == can, kind
        if kind in ("failed", "waiting"):
            assert f"status is not stored: {kind}" in page
        if kind == "removed":
            assert "was removed; a project admin can restore it" in page


def test_a_removed_project_says_so(http, archive) -> None:  # type: ignore[no-untyped-def]
    """A removed project's page (an old link: the lists no longer show it) looked like a live
    one's."""
    from tests.server import factories

    with archive.session() as session:
        gone = factories.project(session, name="gone", removed=True).id
        live = factories.project(session, name="live").id
        session.commit()
    assert "This project was removed" in http.get(f"/project/{gone}", headers=HTML).text
    assert "This project was removed" in http.get(f"/project/{gone}/data", headers=HTML).text
    assert "This project was removed" not in http.get(f"/project/{live}", headers=HTML).text
