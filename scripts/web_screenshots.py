"""Screenshots of the main web pages for the README, from a running `bl serve` over the demo world.

    bl serve --data-dir /tmp/demo --port 8080 &   # after `bl serve --demo` built it, or any demo copy
    .venv/bin/python scripts/web_screenshots.py http://127.0.0.1:8080 docs/screenshots

Uses Debian's chromium through Playwright (`tests/web/chromium.py`), as the browser tests do.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.web.chromium import launch  # noqa: E402

O3D = "5a022fc99c0d250055709e9c"
T1 = "5a050ad5d76a2a002737e572"
TP = "5b0dad8041711001e958b519"
PAGES = {
    "home": "/?q=O3D",
    "project": f"/project/{O3D}",
    "data": f"/project/{O3D}/data?datatype=neuro/wmc&subject=0002",
    "object": f"/object/{T1}",
}


def main(base: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = launch(p, Path(profile), base_url=base, viewport={"width": 1280, "height": 860})
        page = context.new_page()
        for name, path in PAGES.items():
            page.goto(path)
            page.screenshot(path=str(out / f"{name}.png"), full_page=False)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(PAGES["data"])
        page.screenshot(path=str(out / "data-phone.png"))
        # the upload form, as a member of 2019 tractprofiles sees it
        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto("/signin")
        page.get_by_label("Username or e-mail").fill("demo")
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/project/{TP}")
        form = page.get_by_role("region", name="Upload a data object")
        form.get_by_label("Datatype").select_option(label="neuro/anat/t1w")
        form.get_by_label("Subject").fill("0001")
        form.screenshot(path=str(out / "upload.png"))
        context.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
