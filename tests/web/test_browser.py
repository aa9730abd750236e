"""The web pages in a real browser: Debian's chromium, headless, driven by Playwright, against a
real `bl serve` over the demo world. Sign in, search, browse, filter, open an object, download a
file and a selection (and resume the selection with curl after a cut), keyboard use, a phone-sized
screen, what an anonymous visitor cannot see, and a POST without a CSRF token."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import LiveServer, served_copy
from tests.web.chromium import launch_browser, new_context
from tests.web.conftest import O3D, PRIVATE, T1, TP


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> LiveServer:
    """The session's read-only `live_server`: these tests sign in and out and read (sessions
    are rows of their own, no demo object changes)."""
    return live_server


@pytest.fixture(scope="module")
def writable_server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server on a copy of the demo of this module's own, for the tests that upload."""
    with served_copy(demo_archive_dir, tmp_path_factory, "web-live") as live:
        yield live


@pytest.fixture(scope="module")
def playwright() -> Iterator:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright) -> Iterator:  # type: ignore[no-untyped-def]
    """One chromium for the module (the only one driving a browser); each test gets its own
    context (`new_context`). Module-scoped, not session-scoped: Playwright's sync API keeps an
    event loop of its own on the main thread, which must not outlive this module into tests
    that run theirs."""
    browser = launch_browser(playwright)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium, server: LiveServer) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    context = new_context(chromium, base_url=server.url)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def upage(chromium, writable_server: LiveServer) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A page on `writable_server`."""
    context = new_context(chromium, base_url=writable_server.url)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, username: str) -> None:
    page.goto("/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(username)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_sign_in_search_browse_filter_open_and_download_a_file(page: Page) -> None:
    sign_in(page, "demo")
    page.get_by_label("Search projects and publications").fill("O3D")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="O3D", exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("O3D")
    expect(page.get_by_text("2,708")).to_be_visible()
    page.get_by_role("link", name="Browse the data objects").click()
    page.get_by_label("Datatype", exact=True).fill("neuro/anat/t1w")
    page.get_by_label("Subject", exact=True).fill("0001")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("status")).to_contain_text("1 data object match.")
    expect(page.get_by_label("bl command")).to_have_count(0)  # labelled by its <label>
    command = page.get_by_label("Download the same set with bl:")
    expect(command).to_have_value(
        re.compile(r"bl data download -p \w+ --datatype neuro/anat/t1w -b 0001")
    )
    page.get_by_role("link", name=T1).click()
    expect(page).to_have_url(re.compile(f"/object/{T1}$"))
    shown = page.locator("code.hash").first.inner_text()
    with page.expect_download() as info:
        page.get_by_role("link", name="t1.nii.gz").click()
    data = Path(info.value.path()).read_bytes()
    assert info.value.suggested_filename == "t1.nii.gz"
    assert hashlib.sha256(data).hexdigest() == shown


def test_download_a_selection_as_a_tar_and_resume_it_with_curl(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    page.goto(f"/project/{O3D}/data?datatype=neuro/wmc&subject=0002")
    boxes = page.locator('input[name="ids"]')
    chosen = [boxes.nth(i).get_attribute("value") for i in range(3)]
    for i in range(3):  # by keyboard: focus each box, Space ticks it
        boxes.nth(i).focus()
        page.keyboard.press("Space")
        expect(boxes.nth(i)).to_be_checked()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download selected as one tar").click()
    whole = Path(info.value.path()).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        assert sorted({n.split("/")[0] for n in tar.getnames()}) == sorted(chosen)
    # the transfer is cut after 5,000 bytes; curl -C - fetches the rest
    partial = tmp_path / "selection.tar"
    partial.write_bytes(whole[:5000])
    url = info.value.url
    assert url.startswith(server.url + "/download/tar?")
    done = subprocess.run(
        ["curl", "-sS", "-f", "-C", "-", "-o", str(partial), url], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert partial.read_bytes() == whole
    head = subprocess.run(["curl", "-sSI", "-r", "5000-", url], capture_output=True, text=True)
    assert "206" in head.stdout.splitlines()[0] and "etag:" in head.stdout.lower()


def test_select_all_and_copy_button_work_with_javascript(page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/project/{O3D}/data?datatype=neuro/anat/t1w")
    page.get_by_label("Select all on this page").check()
    expect(page.locator('input[name="ids"]:checked')).to_have_count(21)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"bl data download -p {O3D} --datatype neuro/anat/t1w")


def test_pages_work_without_javascript(chromium, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    context = new_context(chromium, base_url=server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Search projects and publications").fill("tractprofiles")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="2019 tractprofiles").click()
    page.get_by_role("link", name="Browse the data objects").click()
    page.get_by_label("Subject", exact=True).fill("100206")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("data objects match")
    # the command is still there to select and copy by hand; the Copy button stays hidden
    expect(page.get_by_label("Download the same set with bl:")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_have_count(0)
    context.close()


def test_private_project_is_invisible_when_signed_out(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_text("Private demo")).to_have_count(0)
    response = page.goto(f"/project/{PRIVATE}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    sign_in(page, "avesani")
    page.goto(f"/project/{PRIVATE}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Private demo")


def test_post_without_csrf_token_is_refused(page: Page) -> None:
    sign_in(page, "demo")
    status = page.evaluate(
        "fetch('/signout', {method: 'POST', headers: {'Content-Type':"
        " 'application/x-www-form-urlencoded'}, body: 'x=1'}).then(r => r.status)"
    )
    assert status == 403
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still signed in
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_sign_out_ends_the_session_for_a_copied_cookie_too(
    page: Page, chromium, server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, "avesani")
    copied = [c for c in page.context.cookies() if c["name"] == "bl_session"]
    assert copied and copied[0]["httpOnly"]
    other = new_context(chromium, base_url=server.url)
    other.add_cookies(copied)  # the same cookie in another browser
    second = other.new_page()
    second.goto(f"/project/{PRIVATE}")
    expect(second.get_by_role("heading", level=1)).to_have_text("Private demo")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    response = second.goto(f"/project/{PRIVATE}")
    assert response is not None and response.status == 404
    expect(second.get_by_role("link", name="Sign in")).to_be_visible()
    second.goto("/")  # a page (not an error) also clears the dead cookie
    assert not [c for c in other.cookies() if c["name"] == "bl_session"]
    other.close()


def test_keyboard_skip_link_and_phone_width(chromium, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    context = new_context(chromium, base_url=server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    for path in ("/", f"/project/{O3D}", f"/project/{O3D}/data", f"/object/{T1}"):
        page.goto(path)
        # nothing wider than the screen: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    context.close()


def test_upload_a_data_object_from_the_project_page(upage: Page, tmp_path: Path) -> None:
    page = upage
    sign_in(page, "demo")  # a member of 2019 tractprofiles
    page.goto(f"/project/{TP}")
    expect(page.get_by_text("Uploading from this page needs JavaScript")).to_be_hidden()
    # the page's SHA-256 agrees with hashlib at the padding's edge lengths
    for n in (0, 1, 55, 56, 63, 64, 65, 1000):
        data = bytes((i * 7 + n) % 256 for i in range(n))
        got = page.evaluate("(a) => window.blSha256(new Uint8Array(a))", list(data))
        assert got == hashlib.sha256(data).hexdigest(), n
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(b"web upload " * 100_000)  # 1.1 MB
    form = page.get_by_role("region", name="Upload a data object")
    form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
    form.get_by_label("Subject").fill("web-upload-01")
    form.get_by_label("Description").fill("from the browser")
    form.get_by_label("Tags (comma-separated)", exact=True).fill("web, test")
    form.get_by_label("Datatype tags (comma-separated)").fill("acpc_aligned, web\\,dt")
    form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).set_input_files(str(t1))
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("status")).to_contain_text("Uploaded", timeout=60_000)
    expect(form.get_by_role("progressbar")).to_have_attribute("value", "1")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('bl-upload:'))") == []
    page.goto(f"/project/{TP}/data?subject=web-upload-01")
    expect(page.get_by_role("status")).to_contain_text("1 data object match.")
    page.locator("table.objects a[href^='/object/']").first.click()
    expect(page.get_by_text("from the browser")).to_be_visible()
    expect(page.locator("a.tag.dt")).to_have_text(["acpc_aligned", "web,dt"])
    expect(page.locator("a.tag:not(.dt)")).to_have_text(["web", "test"])
    assert (
        page.locator("code.hash").first.inner_text() == hashlib.sha256(t1.read_bytes()).hexdigest()
    )
    # the page's session token never reached a URL, and the upload token is not in the page
    assert "token" not in page.url


def test_upload_form_needs_javascript_and_a_writer(chromium, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    context = new_context(chromium, base_url=server.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")
    expect(page.get_by_text("Uploading from this page needs JavaScript")).to_be_visible()
    expect(page.get_by_text(f"bl data upload -p {TP}")).to_be_visible()
    expect(page.get_by_role("button", name="Upload")).to_be_hidden()
    page.goto(f"/project/{O3D}")  # demo may read O3D but not write it
    expect(page.get_by_role("heading", name="Upload a data object")).to_have_count(0)
    context.close()


def test_an_interrupted_browser_upload_resumes_after_a_reload(upage: Page, tmp_path: Path) -> None:
    page = upage
    sign_in(page, "demo")
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(bytes(range(256)) * (36 * 1024 + 7))  # 9 MiB and a bit: two PUTs
    puts: list[str] = []

    def cut_after_the_first(route) -> None:  # type: ignore[no-untyped-def]
        puts.append(route.request.headers.get("content-range", ""))
        if len(puts) == 1:
            route.continue_()
        else:
            route.abort("connectionreset")

    def fill_and_send() -> None:
        form = page.get_by_role("region", name="Upload a data object")
        form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
        form.get_by_label("Subject").fill("web-resume-01")
        form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).set_input_files(str(t1))
        form.get_by_role("button", name="Upload").click()

    page.route("**/api/warehouse/upload/*/file/*", cut_after_the_first)
    # the page's retries of the cut PUT, every one cut too, pause 5 ms, 10 ms, … instead of
    # 0.5 s, 1 s, … (15.5 s in all); their number and the message after them are unchanged
    page.add_init_script("window.blUploadRetryMs = 5;")
    page.goto(f"/project/{TP}")
    fill_and_send()
    expect(page.get_by_role("status").last).to_contain_text("The upload stopped", timeout=60_000)
    assert puts[0] == f"bytes 0-{8 * 1024 * 1024 - 1}/{t1.stat().st_size}"
    assert len(puts) == 1 + 1 + 5  # the first, the cut one, and its five retries
    page.unroute("**/api/warehouse/upload/*/file/*")
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.headers.get("content-range", "")) if "/file/" in r.url else None,
    )
    page.reload()
    expect(page.get_by_text("was interrupted")).to_be_visible()
    fill_and_send()
    expect(page.get_by_role("status").last).to_contain_text("Uploaded", timeout=60_000)
    # only the rest was sent: the first 8 MiB were kept by the server
    assert sent == [f"bytes {8 * 1024 * 1024}-{t1.stat().st_size - 1}/{t1.stat().st_size}"]
    page.get_by_role("link", name=re.compile(r"^data object [0-9a-f]{24}$")).click()
    assert (
        page.locator("code.hash").first.inner_text() == hashlib.sha256(t1.read_bytes()).hexdigest()
    )


def test_pages_load_without_console_errors_or_failed_requests(page: Page) -> None:
    """Every kind of page, anonymous and signed in, loads with nothing refused or missing in
    the browser's console (a page without a declared icon made it fetch /favicon.ico: a 404)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    paths = ("/", "/pubs", f"/project/{O3D}", f"/project/{O3D}/data", f"/object/{T1}", "/signin")
    for path in paths:
        page.goto(path)
        page.wait_for_load_state("load")
        assert problems == [], (path, problems)
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")  # with the upload form and its script
    page.wait_for_load_state("load")
    assert problems == [], problems


def test_long_unbroken_names_do_not_widen_the_page(chromium, writable_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    """A project, subject, tag or description of one long word (no space to wrap at) wraps
    inside its box: the page never scrolls sideways, and on a laptop-wide screen the list's
    table fits without scrolling either."""
    from brainlife.server.archive import open_archive
    from brainlife.server.models import Datatype
    from brainlife.server.settings import Settings
    from tests.server import factories

    archive = open_archive(Settings(data_dir=writable_server.data_dir))
    with archive.session() as session:
        project = factories.project(session, name="Longname" * 40, desc="desc" * 200)
        dt = session.query(Datatype).filter_by(name="neuro/anat/t1w").one()
        obj = factories.dataset(
            session,
            project,
            dt,
            meta={"subject": "subj" * 30, "session": "ses" * 30},
            tags=["tag" * 60],
            datatype_tags=["dtag" * 40],
            desc="d" * 300,
        )
        session.commit()
        pid, oid = project.id, obj.id
    archive.engine.dispose()
    paths = ("/?q=Longname", f"/project/{pid}", f"/project/{pid}/data", f"/object/{oid}")
    for width in (1280, 390):
        context = new_context(
            chromium, base_url=writable_server.url, viewport={"width": width, "height": 900}
        )
        page = context.new_page()
        for path in paths:
            page.goto(path)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, (width, path, wide)
        if width == 1280:
            page.goto(f"/project/{pid}/data")
            box = page.locator(".table-wrap").first
            assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
        context.close()


def test_the_upload_forms_datatype_list_looks_like_its_fields(page: Page) -> None:
    """The datatype `<select>` had the browser's small default font and padding beside the
    form's inputs."""
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")
    form = page.get_by_role("region", name="Upload a data object")
    select = form.get_by_label("Datatype", exact=True).bounding_box()
    subject = form.get_by_label("Subject").bounding_box()
    assert select and subject and abs(select["height"] - subject["height"]) <= 2
    size = "e => getComputedStyle(e).fontSize"
    assert form.get_by_label("Datatype", exact=True).evaluate(size) == form.get_by_label(
        "Subject"
    ).evaluate(size)


def test_an_interrupted_upload_sent_again_with_other_metadata_keeps_the_new(
    upage: Page, tmp_path: Path
) -> None:
    """After an interruption, a researcher corrects the subject and presses Upload again with
    the same files: the object has the corrected subject (the page resumed the interrupted
    upload, with the subject first typed, whatever the form now said)."""
    page = upage
    sign_in(page, "demo")
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(bytes(range(256)) * (36 * 1024 + 11))  # two PUTs

    def cut(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.headers.get("content-range", "").startswith("bytes 0-"):
            route.continue_()
        else:
            route.abort("connectionreset")

    def send(subject: str) -> None:
        form = page.get_by_role("region", name="Upload a data object")
        form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
        form.get_by_label("Subject").fill(subject)
        form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).set_input_files(str(t1))
        form.get_by_role("button", name="Upload").click()

    page.route("**/api/warehouse/upload/*/file/*", cut)
    page.add_init_script("window.blUploadRetryMs = 5;")
    page.goto(f"/project/{TP}")
    send("web-typo-01")
    expect(page.get_by_role("status").last).to_contain_text("The upload stopped", timeout=60_000)
    page.unroute("**/api/warehouse/upload/*/file/*")
    page.reload()
    send("web-fixed-01")
    expect(page.get_by_role("status").last).to_contain_text("Uploaded", timeout=60_000)
    page.get_by_role("link", name=re.compile(r"^data object [0-9a-f]{24}$")).click()
    expect(page.locator(".meta")).to_contain_text("web-fixed-01")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('bl-upload:'))") == []


def test_odd_tags_typed_at_upload_are_filtered_on_by_a_click_and_by_typing(
    upage: Page, tmp_path: Path
) -> None:
    """Tags with a comma, a leading `!`, a space, non-ASCII letters and the escape itself:
    typed in the upload form with the filters' escaping rule, then found again by clicking the
    tag in the list and by typing it in the Tags filter."""
    import random

    from brainlife.server.web.filters import split_tags

    page = upage
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")
    # the upload form reads typed tags as the filters do (without their "!" for "not")
    rng = random.Random(3)
    typed = ["a\\,b", "\\\\", "\\ x ", "x\\b", " a , b ,, "]
    typed += ["".join(rng.choice("ab ,\\\t✓") for _ in range(8)) for _ in range(300)]
    js = page.evaluate("(all) => all.map(window.blSplitTags)", typed)
    assert js == [list(dict.fromkeys(t.tag for t in split_tags(one))) for one in typed]
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(b"odd tags " * 1000)
    form = page.get_by_role("region", name="Upload a data object")
    form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
    form.get_by_label("Subject").fill("odd-tags-01")
    form.get_by_label("Tags (comma-separated)", exact=True).fill(
        "a\\,b, \\!x, x y, héllo✓, \\\\\\,"
    )
    form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).set_input_files(str(t1))
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("status")).to_contain_text("Uploaded", timeout=60_000)
    page.goto(f"/project/{TP}/data?subject=odd-tags-01")
    tags = page.locator("table.objects a.tag")
    expect(tags).to_have_text(["a,b", "!x", "x y", "héllo✓", "\\,"])
    for tag in ("a,b", "!x", "x y", "héllo✓", "\\,"):
        page.goto(f"/project/{TP}/data?subject=odd-tags-01")
        page.locator("table.objects a.tag", has_text=re.compile("^" + re.escape(tag) + "$")).click()
        expect(page.get_by_role("status")).to_contain_text("1 data object match.")
        expect(page.locator("table.objects a.tag").filter(has_text=tag).first).to_be_visible()
    for typed_tag, matches in (("a\\,b", 1), ("\\!x", 1), ("!\\!x", 0), ("x y", 1), ("\\\\\\,", 1)):
        page.goto(f"/project/{TP}/data")
        page.get_by_label("Subject", exact=True).fill("odd-tags-01")
        page.get_by_label("Tags", exact=True).fill(typed_tag)
        page.get_by_role("button", name="Filter").click()
        want = "1 data object match." if matches else "0 data objects match."
        expect(page.get_by_role("status")).to_contain_text(want)
        expect(page.get_by_label("Tags", exact=True)).to_have_value(typed_tag)


def test_pressing_upload_again_after_an_upload_makes_no_copy(upage: Page, tmp_path: Path) -> None:
    """After an upload the form still held the files: pressing Upload again (to be sure, or
    for the next subject before choosing its files) stored a second, identical object."""
    page = upage
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(b"once " * 2000)
    form = page.get_by_role("region", name="Upload a data object")
    form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
    form.get_by_label("Subject").fill("once-01")
    form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).set_input_files(str(t1))
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("status")).to_contain_text("Uploaded", timeout=60_000)
    file_input = form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)"))
    assert file_input.evaluate("i => i.files.length") == 0
    expect(form.get_by_label("Subject")).to_have_value("once-01")  # kept for the next one
    expect(form.get_by_role("status")).to_contain_text("Choose files to upload another.")
    form.get_by_role("button", name="Upload").click()  # the browser asks for the file first
    assert file_input.evaluate("i => i.validity.valueMissing")
    page.wait_for_timeout(1000)
    page.goto(f"/project/{TP}/data?subject=once-01")
    expect(page.get_by_role("status")).to_contain_text("1 data object match.")


def _watch(page: Page) -> list[str]:
    """What goes wrong on `page` from now on: dialogs, console errors, uncaught exceptions."""
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog {d.message}"), d.dismiss()))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


#: markup, a script, an attribute break-out, template syntax and a javascript: URL
HOSTILE = "\"'><img src=x onerror=alert(1)><script>alert(2)</script>{{7*7}}javascript:alert(3)"


def test_names_people_chose_stay_text_on_every_page(chromium, writable_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    """A project's name, description and readme, a person's full name, a datatype's name, an
    object's subject, session, tags, description, metadata, file names and provenance, a
    publication's and a release's name, DOI, licence and description, all holding markup:
    every page shows them as text (no dialog, no element they describe, nothing the page's
    Content-Security-Policy had to refuse), anonymous and signed in (the upload form too)."""
    from datetime import UTC, datetime

    from brainlife.server.archive import open_archive
    from brainlife.server.models import DatasetFile, User
    from brainlife.server.settings import Settings
    from tests.server import factories

    archive = open_archive(Settings(data_dir=writable_server.data_dir))
    with archive.session() as session:
        person = User(username="hostile", fullname=HOSTILE, create_date=datetime.now(UTC))
        session.add(person)
        session.flush()
        project = factories.project(
            session,
            name=HOSTILE,
            desc=HOSTILE,
            readme=f"{HOSTILE} [link](javascript:alert(4)) <a href=x>y</a>",
            admins=[4, person.sub],  # 4: demo, who may then upload (the form and its JSON)
        )
        dt = factories.datatype(session, name="neuro/" + HOSTILE)
        pub = factories.publication(session, project, name=HOSTILE, releases=[HOSTILE])
        pub.desc, pub.doi, pub.license = HOSTILE, HOSTILE, HOSTILE
        pub.releases[0].desc = HOSTILE
        obj = factories.dataset(
            session,
            project,
            dt,
            meta={"subject": HOSTILE, "session": HOSTILE, "run": HOSTILE, HOSTILE: HOSTILE},
            tags=[HOSTILE, "a,b"],
            datatype_tags=[HOSTILE],
            desc=HOSTILE,
            publications=[pub.releases[0].id],
            prov={"task_id": HOSTILE},
        )
        session.add(DatasetFile(dataset_id=obj.id, path=f"{HOSTILE}/f", sha256="0" * 64, size=1))
        session.commit()
        pid, oid, pub_id, rel_id = project.id, obj.id, pub.id, pub.releases[0].id
    archive.engine.dispose()
    paths = (
        "/?q=img",
        f"/project/{pid}",
        f"/project/{pid}/data",
        f"/project/{pid}/data?tag={HOSTILE}&subject={HOSTILE}&datatype={HOSTILE}",
        f"/object/{oid}",
        "/pubs",
        f"/pub/{pub_id}",
        f"/release/{rel_id}",
        f"/signin?next=/{HOSTILE}",
    )
    for signed_in in (False, True):
        context = new_context(chromium, base_url=writable_server.url)
        page = context.new_page()
        problems = _watch(page)
        if signed_in:
            sign_in(page, "demo")
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("load")
            injected = page.evaluate(
                'document.querySelectorAll(\'img[src=x], a[href^="javascript:"], main'
                ' script:not(#upload-datatypes):not([src="/static/upload.js"])\').length'
            )
            assert injected == 0 and problems == [], (signed_in, path, injected, problems)
        if signed_in:
            page.goto(f"/project/{pid}")
            form = page.get_by_role("region", name="Upload a data object")
            form.get_by_label("Datatype", exact=True).select_option(label="neuro/" + HOSTILE)
            expect(form.locator("#up-files label").first).to_contain_text("t1 (t1.nii.gz)")
            assert problems == [], problems
        context.close()


def test_a_file_of_the_same_name_size_and_time_as_one_sent_before_is_sent(upage: Page) -> None:
    """The page kept each file's sha256 under its name, size and time, across uploads: another
    subject's file of the same name, size and time (files unpacked from one archive) was
    declared with the first file's digest, and since the server held that content (the same
    researcher's) nothing was sent: the second subject's object silently held the first
    subject's file. A new upload reads its files' digests every time (a resumed one needs
    none: the server checks the bytes it receives)."""
    page = upage
    sign_in(page, "demo")
    page.goto(f"/project/{TP}")
    form = page.get_by_role("region", name="Upload a data object")
    status = form.get_by_role("status")

    def send(byte: str, subject: str) -> None:
        form.get_by_label("Datatype", exact=True).select_option(label="neuro/anat/t1w")
        form.get_by_label("Subject").fill(subject)
        # a File of a fixed time (a path given to Playwright gets the time of its reading)
        form.get_by_label(re.compile(r"^t1 \(t1\.nii\.gz\)")).evaluate(
            """(input, byte) => {
                const file = new File([byte.repeat(30000)], "t1.nii.gz",
                                      {lastModified: 1600000000000});
                const list = new DataTransfer();
                list.items.add(file);
                input.files = list.files;
            }""",
            byte,
        )
        form.get_by_role("button", name="Upload").click()
        expect(status).to_contain_text("Uploaded", timeout=60_000)

    send("1", "same-name-01")
    send("2", "same-name-02")
    for byte, subject in (("1", "same-name-01"), ("2", "same-name-02")):
        page.goto(f"/project/{TP}/data?subject={subject}")
        page.locator("table.objects a[href^='/object/']").first.click()
        digest = hashlib.sha256(byte.encode() * 30_000).hexdigest()
        assert page.locator("code.hash").first.inner_text() == digest, subject


def _serving(html: str):  # type: ignore[no-untyped-def]
    """A route handler answering every request with `html` (another site's page)."""
    return lambda route: route.fulfill(content_type="text/html", body=html)


def test_a_form_posted_from_another_site_changes_nothing(page: Page, server: LiveServer) -> None:
    """Another site's page posting this site's forms in the visitor's browser (the forms
    that change something: sign out, the upload token, sign in) is refused, and a script
    there cannot read an upload token either."""
    sign_in(page, "demo")
    forms = {
        "signout": "",
        "upload-token": '<input name="csrf" value="0">',
        "signin": '<input name="username" value="avesani"><input name="password" value="x">',
    }
    for action, fields in forms.items():
        html = (
            f'<form id="f" method="post" action="{server.url}/{action}">{fields}</form>'
            '<script>document.getElementById("f").submit()</script>'
        )
        page.route("http://elsewhere.test/**", _serving(html))
        with page.expect_response(f"{server.url}/{action}") as answer:
            page.goto("http://elsewhere.test/", wait_until="commit")
        assert answer.value.status == 403, action
        page.unroute("http://elsewhere.test/**")
    page.goto("/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still demo
    page.route("http://elsewhere.test/**", _serving("<p>elsewhere</p>"))
    page.goto("http://elsewhere.test/")
    got = page.evaluate(
        """url => fetch(url + "/upload-token", {method: "POST", credentials: "include",
              headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf=0"})
           .then(r => r.text()).catch(e => "unreadable: " + e.name)""",
        server.url,
    )
    assert got.startswith("unreadable"), got
