"""How long a bulk `bl data download` runs once its server is killed for good (issue #8).

A real `bl serve` with one 160 MiB object and 300 small ones; `bl data download` (no terminal,
default 8 jobs) is started, the server is SIGKILLed once 20 MiB of the big file are on disk, and
the time from the kill to the command's end is printed with its exit code, the bytes kept and
its stderr (the `Waiting: …` lines and the `Error:` naming what is left).

Usage: .venv/bin/python bench/bench_give_up.py [--give-up-after SECONDS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bulk._cli import bl_cmd, cli_env
from tests.conftest import start_server, stop_server
from tests.server._bytes_factories import make_dataset, make_project, token

from brainlife.server.archive import open_archive
from brainlife.server.settings import Settings


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = open_archive(Settings(data_dir=root / "srv" / "data"))
        project = make_project(archive)
        big = make_dataset(archive, project, [("big.bin", os.urandom(160 << 20))])
        small = [
            make_dataset(archive, project, [("own.txt", str(i).encode() * 1000)])
            for i in range(300)
        ]
        tok = token(archive, ttl_ms=24 * 3600_000)
        archive.engine.dispose()
        srv = start_server(root / "srv" / "data")
        ids = [a for i in [big, *small] for a in ("-i", i)]
        args = bl_cmd("data", "download", *ids, "-d", str(root / "out"), *extra)
        env = cli_env(srv.url, tok, root / "home")
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        part = root / "out" / big / "big.bin.bl-part"
        try:
            while not (part.exists() and part.stat().st_size > 20 << 20):
                if proc.poll() is not None:
                    raise SystemExit("the download ended before the server was killed")
                time.sleep(0.001)
            srv.process.kill()
            srv.process.wait()
            start = time.monotonic()
            _, err = proc.communicate(timeout=1800)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
            if srv.process.poll() is None:
                stop_server(srv)
        print(
            f"{' '.join(extra) or '(default give-up time)'}: exit {proc.returncode}, "
            f"{took:.1f} s after the kill, {part.stat().st_size} bytes of the big file kept"
        )
        for line in err.splitlines():
            print("  " + (line if len(line) < 200 else line[:200] + "…"))


if __name__ == "__main__":
    main()
