"""Signing in and out on the pages: the API's accounts and rules, a session cookie that scripts
cannot read (HttpOnly, SameSite=Lax, Secure under https), CSRF tokens tied to the session on every
form, and no token in a URL, a page or the log."""

from __future__ import annotations

import logging
import re

from tests.web.conftest import HTML, PRIVATE, csrf_of, sign_in


def test_sign_in_sets_a_protected_session_cookie(browser) -> None:  # type: ignore[no-untyped-def]
    done = sign_in(browser, "avesani")
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("bl_session="))
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token.count(".") == 2  # the signed token, as a login gives
    low = cookie.lower()
    assert "httponly" in low and "samesite=lax" in low and "path=/" in low
    assert "secure" not in low  # plain http: a Secure cookie would never come back
    page = browser.get("/").text
    assert "avesani" in page and "Sign out" in page
    assert token not in page  # never shown


def test_secure_cookie_over_https(demo_web) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(demo_web, base_url="https://testserver", follow_redirects=False) as client:
        done = sign_in(client, "avesani")
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("bl_session="))
        assert "secure" in cookie.lower()


def test_wrong_password_shows_the_form_again(browser) -> None:  # type: ignore[no-untyped-def]
    bad = sign_in(browser, "avesani", "wrong")
    assert bad.status_code == 401 and 'role="alert"' in bad.text
    assert "bl_session=" not in bad.headers.get("set-cookie", "")
    assert 'value="avesani"' in bad.text  # the username is kept, never the password
    assert "wrong" not in bad.text


def test_post_without_csrf_token_is_refused(browser) -> None:  # type: ignore[no-untyped-def]
    browser.get("/signin")  # has an anonymous cookie, but sends no token
    got = browser.post("/signin", data={"username": "avesani", "password": "avesani"})
    assert got.status_code == 403 and "CSRF" in got.text
    assert "bl_session=" not in got.headers.get("set-cookie", "")
    forged = browser.post(
        "/signin", data={"csrf": "0" * 64, "username": "avesani", "password": "avesani"}
    )
    assert forged.status_code == 403


def test_csrf_token_is_tied_to_the_session(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    token = csrf_of(browser.get("/signin").text)
    with TestClient(demo_web, follow_redirects=False) as other:
        other.get("/signin")  # another visitor's cookie: the first one's token is not its own
        got = other.post("/signin", data={"csrf": token, "username": "demo", "password": "demo"})
        assert got.status_code == 403
    # signing in changes the session: a token from before no longer signs out
    sign_in(browser, "demo")
    assert browser.post("/signout", data={"csrf": token}).status_code == 403


def test_sign_out_needs_the_token_and_forgets_the_session(browser) -> None:  # type: ignore[no-untyped-def]
    sign_in(browser, "avesani")
    assert browser.get(f"/project/{PRIVATE}").status_code == 200
    assert browser.post("/signout", data={}).status_code == 403
    assert browser.get(f"/project/{PRIVATE}").status_code == 200
    token = csrf_of(browser.get("/").text)
    out = browser.post("/signout", data={"csrf": token})
    assert out.status_code == 303
    assert browser.get(f"/project/{PRIVATE}").status_code == 404


def test_next_stays_on_this_site(browser) -> None:  # type: ignore[no-untyped-def]
    form = browser.get("/signin?next=//evil.example/x")
    assert 'name="next" value="/"' in form.text
    done = browser.post(
        "/signin",
        data={
            "csrf": csrf_of(form.text),
            "username": "demo",
            "password": "demo",
            "next": "https://evil.example/",
        },
    )
    assert done.headers["location"] == "/"


def test_a_bad_session_cookie_is_anonymous_not_an_error(browser) -> None:  # type: ignore[no-untyped-def]
    browser.cookies.set("bl_session", "not.a.token")
    page = browser.get("/")
    assert page.status_code == 200 and "Sign in" in page.text
    assert 'bl_session=""' in page.headers.get("set-cookie", "")


def test_forms_are_not_json_and_are_bounded(browser) -> None:  # type: ignore[no-untyped-def]
    browser.get("/signin")
    assert browser.post("/signin", json={"username": "a"}).status_code == 400
    big = browser.post("/signin", data={"username": "x" * 20_000, "password": "y"})
    assert big.status_code == 400


def test_no_token_in_the_log(browser, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    done = sign_in(browser, "demo")
    token = done.cookies.get("bl_session") or ""
    browser.get("/")
    assert token and token not in caplog.text


def test_sign_out_revokes_the_token_so_a_copied_cookie_stops_working(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    done = sign_in(browser, "avesani")
    token = done.cookies.get("bl_session") or ""
    with TestClient(demo_web, headers=HTML, follow_redirects=False) as thief:
        thief.cookies.set("bl_session", token)  # a copy of the cookie, in another browser
        assert thief.get(f"/project/{PRIVATE}").status_code == 200
        out = browser.post("/signout", data={"csrf": csrf_of(browser.get("/").text)})
        assert out.status_code == 303
        assert thief.get(f"/project/{PRIVATE}").status_code == 404
        page = thief.get("/")
        assert "Sign in" in page.text and "avesani" not in page.text
        assert 'bl_session=""' in page.headers.get("set-cookie", "")  # the dead cookie is cleared
        # the API refuses the token too, and the archive records it as revoked
        api = thief.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 401 and "revoked" in api.json()["message"]
    from brainlife.server.models import AuthToken

    archive = demo_web.state.archive
    jti = archive.signer.principal(token).jti
    with archive.session() as session:
        assert session.get(AuthToken, jti).revoked is not None


def test_signing_out_of_a_session_revoked_elsewhere_just_clears_the_cookie(
    browser, demo_web
) -> None:  # type: ignore[no-untyped-def]
    done = sign_in(browser, "demo")
    token = done.cookies.get("bl_session") or ""
    stale = csrf_of(browser.get("/").text)  # a page opened before the revocation
    from brainlife.server.services.accounts import revoke_token

    archive = demo_web.state.archive
    with archive.session() as session:
        revoke_token(session, archive.signer.principal(token).jti)
        session.commit()
    out = browser.post("/signout", data={"csrf": stale})
    assert out.status_code == 303 and 'bl_session=""' in out.headers.get("set-cookie", "")


def test_upload_token_needs_csrf_a_session_and_dies_with_it(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    anon = csrf_of(browser.get("/signin").text)
    assert browser.post("/upload-token", data={"csrf": anon}).status_code == 401
    sign_in(browser, "demo")
    assert browser.post("/upload-token", data={}).status_code == 403  # no CSRF token
    assert browser.post("/upload-token", data={"csrf": anon}).status_code == 403  # old one
    csrf = csrf_of(browser.get("/").text)
    got = browser.post("/upload-token", data={"csrf": csrf})
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    token = got.json()["token"]
    with TestClient(demo_web) as api:
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.get("/api/auth/me", headers=bearer).json()["username"] == "demo"
        assert browser.post("/signout", data={"csrf": csrf}).status_code == 303
        assert api.get("/api/auth/me", headers=bearer).status_code == 401  # revoked with it


def test_upload_form_only_for_writers(browser) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import O3D, TP

    assert "Upload a data object" not in browser.get(f"/project/{TP}").text  # anonymous
    sign_in(browser, "demo")
    page = browser.get(f"/project/{TP}").text  # a member
    assert 'id="upload-form"' in page and "neuro/anat/t1w" in page
    assert f"bl data upload -p {TP}" in page  # what to do without JavaScript
    assert "Upload a data object" not in browser.get(f"/project/{O3D}").text  # may only read


def test_signing_in_returns_to_the_page_with_its_filters(browser) -> None:  # type: ignore[no-untyped-def]
    """The header's "Sign in" link carried the page's path only: a researcher signing in from
    a filtered list came back to the whole list."""
    from urllib.parse import unquote

    from tests.web.conftest import O3D

    here = f"/project/{O3D}/data?datatype=neuro/anat/t1w&subject=0001&tag=a%5C%2Cb"
    page = browser.get(here).text
    link = re.search(r'<a href="/signin\?next=([^"]+)">Sign in</a>', page)
    assert link, "no sign-in link"
    nxt = unquote(link.group(1).replace("&amp;", "&"))
    assert nxt == here
    form = browser.get("/signin", params={"next": nxt})
    done = browser.post(
        "/signin",
        data={"csrf": csrf_of(form.text), "username": "demo", "password": "demo", "next": nxt},
    )
    assert done.status_code == 303 and done.headers["location"] == here


def test_a_session_holds_a_bounded_number_of_upload_tokens(browser, demo_web) -> None:  # type: ignore[no-untyped-def]
    """Each `POST /upload-token` recorded a token, however many a script asked for: past
    `MAX_UPLOAD_TOKENS` live ones a new one revokes the oldest."""
    from fastapi.testclient import TestClient

    from brainlife.server.web.session import MAX_UPLOAD_TOKENS

    sign_in(browser, "demo")
    csrf = csrf_of(browser.get("/").text)
    tokens = []
    for _ in range(MAX_UPLOAD_TOKENS + 3):
        got = browser.post("/upload-token", data={"csrf": csrf})
        assert got.status_code == 200, got.text
        tokens.append(got.json()["token"])
    with TestClient(demo_web) as api:
        alive = [
            api.get("/api/auth/me", headers={"Authorization": f"Bearer {t}"}).status_code == 200
            for t in tokens
        ]
    assert alive == [False] * 3 + [True] * MAX_UPLOAD_TOKENS
