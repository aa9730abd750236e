"""Debian's chromium, headless, driven by Playwright for Python (its own browser downloads are not
available here): one launch recipe for the browser tests and `scripts/web_screenshots.py`."""

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
