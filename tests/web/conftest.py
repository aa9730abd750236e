"""Fixtures of the web pages' tests: the demo world served in-process (`demo_web`), and a
browser-like client that signs in through the sign-in form (`sign_in`)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

O3D = "5a022fc99c0d250055709e9c"
TP = "5b0dad8041711001e958b519"
PRIVATE = "5c3f8a1e7d4b2c0031a6e210"
LISTED = "5c3f8b027d4b2c0031a6e214"
T1 = "5a050ad5d76a2a002737e572"
PUB = "5bab9918a918ae002702418f"
RELEASE = "5bab993aa918ae0027024192"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def demo_web(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The application over a private copy of the demo archive (logins without delay)."""
    from brainlife.server.app import create_app
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("web") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    archive = open_archive(Settings(data_dir=data_dir, failed_login_delay=0.0))
    yield create_app(archive=archive)
    archive.engine.dispose()


@pytest.fixture
def browser(demo_web) -> Iterator:
    """A fresh TestClient (its own cookie jar) that asks for pages as a browser does."""
    from fastapi.testclient import TestClient

    with TestClient(demo_web, headers=HTML, follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client, username: str, password: str | None = None):  # type: ignore[no-untyped-def]
    """Sign in through the form, as a browser would; returns the POST's response."""
    form = client.get("/signin")
    return client.post(
        "/signin",
        data={
            "csrf": csrf_of(form.text),
            "username": username,
            "password": password if password is not None else username,
            "next": "/",
        },
    )
