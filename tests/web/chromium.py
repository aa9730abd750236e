"""Debian's chromium, headless, driven by Playwright for Python (its own browser downloads are not
available here): one launch recipe for the browser tests and `scripts/web_screenshots.py`.

The tests start chromium once per process (`launch_browser`) and give each test a new context
(`new_context`: its own cookies, storage and permissions, like a fresh profile): a chromium start
costs about a second of CPU, a context a few milliseconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_browser(playwright: Any) -> Any:
    """A headless chromium, for `new_context`."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def new_context(browser: Any, **options: Any) -> Any:
    """A fresh context of a running browser (nothing shared with the others) that accepts
    downloads."""
    return browser.new_context(accept_downloads=True, **options)


def launch(playwright: Any, user_data_dir: Path, **options: Any) -> Any:
    """A fresh browser context (its own profile folder) that accepts downloads."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=ARGS,
        accept_downloads=True,
        **options,
    )
