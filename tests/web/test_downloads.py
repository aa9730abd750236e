"""Downloads from the pages and the selection tar (`GET/POST /api/warehouse/dataset/tar`): a file
and an object with their sha256s, many objects as one tar whose bytes and ETag are stable so that
`Range`/`If-Range` resume it, bounded selections, and the API's access rules."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile

from tests.web.conftest import HTML, O3D, PRIVATE, RELEASE, T1, sign_in


def _ids(browser, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}/data?{query}").text
    return re.findall(r'name="ids" value="([0-9a-f]{24})"', page)


def _sha256_on_page(browser, oid: str, path: str) -> str:  # type: ignore[no-untyped-def]
    page = browser.get(f"/object/{oid}").text
    row = re.search(rf">{re.escape(path)}</a></td>.*?class=\"hash\">([0-9a-f]{{64}})<", page, re.S)
    assert row
    return row.group(1)


def test_file_download_matches_the_sha256_shown(browser) -> None:  # type: ignore[no-untyped-def]
    got = browser.get(f"/download/file/{T1}/t1.nii.gz")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == _sha256_on_page(browser, T1, "t1.nii.gz")
    assert got.headers["etag"] == f'"{_sha256_on_page(browser, T1, "t1.nii.gz")}"'


def test_object_download_is_its_tar(browser) -> None:  # type: ignore[no-untyped-def]
    got = browser.get(f"/download/object/{T1}")
    assert got.status_code == 200 and got.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        assert tar.getnames() == ["t1.nii.gz"]


def test_selection_tar_holds_each_object_under_its_id(browser) -> None:  # type: ignore[no-untyped-def]
    ids = _ids(browser, "datatype=neuro/wmc&subject=0002")[:3]
    got = browser.get("/download/tar", params=[("ids", i) for i in ids])
    assert got.status_code == 200
    assert "filename=selection.tar" in got.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        tops = sorted({name.split("/")[0] for name in tar.getnames()})
        assert tops == sorted(ids)
        one = next(m for m in tar.getmembers() if m.isfile())
        oid, path = one.name.split("/", 1)
        data = tar.extractfile(one).read()  # type: ignore[union-attr]
    assert hashlib.sha256(data).hexdigest() == _sha256_on_page(browser, oid, path)


def test_selection_tar_resumes_after_a_cut(browser) -> None:  # type: ignore[no-untyped-def]
    url = f"/download/tar?project={O3D}&datatype=neuro/wmc&subject=0002"
    whole = browser.get(url)
    assert whole.status_code == 200 and len(whole.content) > 10_000
    etag = whole.headers["etag"]
    again = browser.get(url)
    assert again.headers["etag"] == etag and again.content == whole.content  # stable
    cut = 7_777
    rest = browser.get(url, headers={"Range": f"bytes={cut}-", "If-Range": etag})
    assert rest.status_code == 206
    assert (
        rest.headers["content-range"]
        == f"bytes {cut}-{len(whole.content) - 1}/{len(whole.content)}"
    )
    assert whole.content[:cut] + rest.content == whole.content
    # a changed validator gets the whole body again, not a wrong tail
    stale = browser.get(url, headers={"Range": f"bytes={cut}-", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == whole.content


def test_download_all_link_on_a_filtered_list(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(f"/project/{O3D}/data?datatype=neuro/anat/t1w").text
    link = re.search(r'href="(/download/tar\?[^"]+)"', page)
    assert link
    got = browser.get(link.group(1).replace("&amp;", "&"))
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        assert len({n.split("/")[0] for n in tar.getnames()}) == 21  # one t1w per subject


def test_release_as_one_tar_for_anyone(browser) -> None:  # type: ignore[no-untyped-def]
    got = browser.get(f"/download/tar?pub={RELEASE}")
    assert (
        got.status_code == 200 and f"filename={RELEASE}.tar" in got.headers["content-disposition"]
    )


def test_selection_refuses_what_the_visitor_may_not_read(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from brainlife.server.models import Dataset

    with demo_web.state.archive.session() as session:
        private = session.scalar(select(Dataset.id).where(Dataset.project_id == PRIVATE).limit(1))
    refused = browser.get("/download/tar", params=[("ids", T1), ("ids", private)])
    assert refused.status_code == 403 and private in refused.text
    assert browser.get(f"/download/tar?project={PRIVATE}").status_code == 404
    unknown = browser.get("/download/tar?ids=0123456789abcdef01234567")
    assert unknown.status_code == 404
    sign_in(browser, "avesani")
    assert browser.get("/download/tar", params=[("ids", T1), ("ids", private)]).status_code == 200


def test_selection_is_bounded_and_checked(browser) -> None:  # type: ignore[no-untyped-def]
    from brainlife.wire import DATASET_TAR_MAX_OBJECTS

    assert browser.get("/download/tar?ids=not-an-id").status_code == 400
    assert browser.get("/download/tar").status_code == 400
    # more ids than a tar may hold: refused before any is looked up (a POST: no URL holds them)
    many = [f"{n:024x}" for n in range(DATASET_TAR_MAX_OBJECTS + 1)]
    import pytest

    from brainlife.server.errors import BadRequest
    from brainlife.server.services import selection

    with pytest.raises(BadRequest, match="at most"):
        selection.parse_ids(many)


def test_a_filtered_list_too_large_for_one_tar_is_refused(browser, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from brainlife.server.services import selection

    monkeypatch.setattr(selection, "DATASET_TAR_MAX_OBJECTS", 5)
    got = browser.get(f"/download/tar?project={O3D}&datatype=neuro/wmc")
    assert got.status_code == 400 and "narrow the filters" in got.text
    # the list page offers no "download all" link then
    page = browser.get(f"/project/{O3D}/data?datatype=neuro/wmc").text
    assert "as one tar</a>" not in page


def test_api_selection_tar_needs_a_token_and_takes_ids_or_find(demo_web) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from brainlife.wire import DATASET_TAR_MAX_OBJECTS, routes
    from tests.conftest import make_token

    url = routes.DATASET_TAR.full
    with TestClient(demo_web) as api:
        assert api.get(url, params={"ids": T1}).status_code == 401
        auth = {"Authorization": "Bearer " + make_token(demo_web.state.archive, "demo")}
        by_get = api.get(url, params={"ids": T1}, headers=auth)
        by_post = api.post(url, json={"ids": [T1]}, headers=auth)
        assert by_get.status_code == by_post.status_code == 200
        assert by_get.content == by_post.content
        assert by_get.headers["etag"] == by_post.headers["etag"]
        head = api.head(url, params={"ids": T1}, headers=auth)
        assert head.headers["content-length"] == str(len(by_get.content))
        find = {"project": O3D, "datatype": "58c33bcee13a50849b25879a", "meta.subject": "0001"}
        found = api.post(url, json={"find": find}, headers=auth)
        assert found.status_code == 200 and found.content == by_get.content
        too_many = [f"{n:024x}" for n in range(DATASET_TAR_MAX_OBJECTS + 1)]
        refused = api.post(url, json={"ids": too_many}, headers=auth)
        assert refused.status_code == 400 and "at most" in refused.json()["message"]
        nothing = api.get(url, headers=auth)
        assert nothing.status_code == 400 and "ids" in nothing.json()["message"]
        bad = api.post(url, json={"other": 1}, headers=auth)
        assert bad.status_code == 400 and "ids" in bad.json()["message"]


def test_html_errors_for_browser_downloads(browser) -> None:  # type: ignore[no-untyped-def]
    got = browser.get(f"/download/file/{T1}/nope.txt", headers=HTML)
    assert got.status_code == 404 and got.headers["content-type"].startswith("text/html")
