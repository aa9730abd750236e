"""The official CLI (npm brainlife@1.8.2), installed once into a cache folder (BL_TEST_CACHE,
default ~/.cache/bl-test) for the compatibility tests and the benchmarks alike."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("BL_TEST_CACHE") or Path("~/.cache/bl-test").expanduser())
NPM_DIR = CACHE / "npm"
OFFICIAL_BL = NPM_DIR / "node_modules" / ".bin" / "bl"


def install_official_cli() -> Path:
    """The official `bl`, installed if missing. Processes that need it at the same time
    (pytest-xdist workers, a benchmark) wait on a file lock instead of running two `npm install`
    into one folder (a half-installed package looks present to the second one). The install goes
    to a fresh folder renamed into place when it is complete, so an interrupted one (Ctrl-C, a
    network error) is started again next time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not OFFICIAL_BL.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed for the official CLI (scripts/test installs it)")
            partial = CACHE / "npm.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(NPM_DIR, ignore_errors=True)  # a folder from an interrupted install
            partial.mkdir()
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(partial),
                 "brainlife@1.8.2"],
                check=True,
                capture_output=True,
                timeout=900,
            )  # fmt: skip
            partial.rename(NPM_DIR)
    return OFFICIAL_BL
