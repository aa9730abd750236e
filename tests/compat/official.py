"""The official CLI (npm brainlife@1.8.2), installed once into a cache folder (BL_TEST_CACHE,
default ~/.cache/bl-test) for the compatibility tests and the benchmarks alike."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("BL_TEST_CACHE") or Path("~/.cache/bl-test").expanduser())
# The environment as the test run was started, taken at import (collection) time: npm needs the
# machine's own settings (a proxy's CA in NODE_EXTRA_CA_CERTS, its cache, HOME), which every test
# function runs without (conftest's `_clean_environ`, a per-test HOME). A test that calls
# install_official_cli() from its body would otherwise fail on a machine behind a TLS proxy
# (SELF_SIGNED_CERT_IN_CHAIN), as a CI run that scheduled such a test first showed.
_INSTALL_ENV = dict(os.environ)
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
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(partial),
                 "brainlife@1.8.2"],
                capture_output=True,
                text=True,
                timeout=900,
                env=_INSTALL_ENV,
            )  # fmt: skip
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-8:])
                raise RuntimeError(
                    f"npm install brainlife@1.8.2 failed ({done.returncode}):\n{tail}"
                )
            partial.rename(NPM_DIR)
    return OFFICIAL_BL


if __name__ == "__main__":  # scripts/test installs it once, before the test workers start
    print(install_official_cli())
