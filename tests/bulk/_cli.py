"""Helpers of the bulk tests that run the real `bl` in a subprocess against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def bl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "brainlife", *args]


def cli_env(url: str, token: str, home: Path) -> dict[str, str]:
    """A private HOME, BLHOST and BL_TOKEN; the caller's own BL* settings left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "BLHOST": url, "BL_TOKEN": token}


def summary(stdout: str) -> dict[str, Any]:
    """The `summary` event of a `--json` bulk run."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return next(e for e in rows if e["event"] == "summary")  # type: ignore[no-any-return]


def kill_when(path: Path, at_least: int, proc: subprocess.Popen[bytes], limit: float = 60) -> int:
    """SIGKILL ``proc`` once ``path`` holds ``at_least`` bytes; the bytes it then holds."""
    deadline = time.monotonic() + limit
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size >= at_least:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return path.stat().st_size
        assert proc.poll() is None, "the download ended before it could be killed"
        assert time.monotonic() < deadline, f"{path} did not grow"
        time.sleep(0.001)
