"""Start-up time of `bl --help` and `bl data query --help` against `python -c pass`, and of
`import brainlife.client` (what every command that talks to a server pays before its first request).

Median of N runs of each command in a fresh process (subprocess), and the ratios to bare Python.
Whether brainlife's own modules have cached bytecode is printed too: without it (an editable
install run with PYTHONDONTWRITEBYTECODE=1) every start compiles them, tens of milliseconds.
Usage: .venv/bin/python bench/bench_startup.py [-n 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BL = str(Path(sys.executable).parent / "bl")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "bl --help": [BL, "--help"],
    "bl data query --help": [BL, "data", "query", "--help"],
    "bl version": [BL, "version"],
    "import brainlife.client": [sys.executable, "-c", "import brainlife.client"],
}


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules(args: list[str]) -> list[str]:
    """Which heavy modules a command imports (it should be none for help)."""
    code = (
        f"import sys; sys.argv=['bl', *{args!r}]\nfrom brainlife.cli.main import cli\n"
        "try:\n    cli(standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(' '.join(m for m in ('urllib3', 'rich', 'fastapi', 'sqlalchemy', "
        "'brainlife.client', 'brainlife.server') if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return proc.stderr.split()


def bytecode_cached() -> str:
    """Whether the client's largest module has a .pyc next to it (the others follow suit)."""
    spec = importlib.util.find_spec("brainlife.client._client")
    assert spec is not None and spec.origin is not None
    cached = os.path.exists(importlib.util.cache_from_source(spec.origin))
    env = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return f"{'cached' if cached else 'not cached'} (PYTHONDONTWRITEBYTECODE={env or 'unset'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=20)
    opts = parser.parse_args()
    base = median_seconds(COMMANDS["python -c pass"], opts.runs)
    print(f"{'command':<24} {'median':>9} {'ratio':>7}")
    for name, cmd in COMMANDS.items():
        t = base if name.startswith("python") else median_seconds(cmd, opts.runs)
        print(f"{name:<24} {t * 1000:7.1f}ms {t / base:6.2f}x")
    for args in (["--help"], ["data", "query", "--help"]):
        print(f"heavy imports of bl {' '.join(args)}: {heavy_modules(args) or 'none'}")
    print(f"bytecode of brainlife's modules: {bytecode_cached()}")


if __name__ == "__main__":
    main()
