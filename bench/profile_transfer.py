"""Where the time of one 1 GiB download goes in the client (figure 2's analysis).

In one process, against a plain-http `bl serve` over the cached archive (client_common.py), the
1 GiB file route is read with the pieces of the client's transfer loop added one at a time:
urllib3's `readinto` alone, http.client's `readinto` alone (what `_transfer._body_readinto`
picks for plain bodies), + sha256, + `os.write` to /dev/shm, both, then the real
`_transfer.fetch_file` (to /dev/shm, and to bench/out on disk after `sync` and a 3 s pause);
plus sha256 of 1 GiB in memory and `curl -o /dev/null` from the same
route (the server's side alone). 3 runs each, medians in seconds.

    .venv/bin/python bench/profile_transfer.py [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from client_common import GIB, PASSWORD, USERNAME, ensure_fixture
from common import OUT, bl_serve, login, median, save_json, say

MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    from brainlife.client._http import HttpClient
    from brainlife.client.transfer import files as _transfer

    fx = ensure_fixture()
    big = fx.big_ids[0]
    route = f"/api/warehouse/dataset/file/{big}/data.bin"
    tmpdir = Path(tempfile.mkdtemp(prefix="bench-profile-", dir="/dev/shm"))
    target = tmpdir / "data.bin"
    diskdir = Path(tempfile.mkdtemp(prefix="bench-profile-", dir=OUT))
    results: dict[str, list[float]] = {}
    disk_times: list[float] = []
    try:
        with bl_serve(fx.data_dir) as server:
            token = login(server.port, USERNAME, PASSWORD)
            http = HttpClient(server.url)

            def loop(direct: bool, sha: bool, write: bool) -> None:
                view = memoryview(bytearray(MIB))
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else -1
                got = 0
                try:
                    with http.stream(route, token=token) as resp:
                        readinto = _transfer._body_readinto(resp) if direct else resp.readinto
                        while n := readinto(view):
                            got += n
                            if sha:
                                digest.update(view[:n])
                            if write:
                                pos = 0
                                while pos < n:
                                    pos += os.write(fd, view[pos:n])
                finally:
                    if write:
                        os.close(fd)
                        target.unlink()
                if got != GIB or (sha and digest.hexdigest() != fx.big_sha256[big]):
                    raise RuntimeError("wrong bytes")

            def fetch() -> None:
                _transfer.fetch_file(
                    http, token, route, target, size=GIB, sha256=fx.big_sha256[big]
                )
                target.unlink()

            def fetch_disk() -> None:
                os.sync()
                time.sleep(3)  # as figure 2: a quiet disk (not counted: timed inside)
                t0 = time.perf_counter()
                _transfer.fetch_file(
                    http, token, route, diskdir / "data.bin", size=GIB, sha256=fx.big_sha256[big]
                )
                disk_times.append(time.perf_counter() - t0)
                (diskdir / "data.bin").unlink()

            def sha_memory() -> None:
                block = os.urandom(MIB)
                digest = hashlib.sha256()
                for _ in range(GIB // MIB):
                    digest.update(block)

            def curl() -> None:
                auth = f"Authorization: Bearer {token}"
                cmd = ["curl", "-sSf", "-o", "/dev/null", "-H", auth, server.url + route]
                subprocess.run(cmd, check=True)

            shapes: dict[str, Callable[[], None]] = {
                "urllib3 readinto (read only)": lambda: loop(False, False, False),
                "http.client readinto (read only)": lambda: loop(True, False, False),
                "http.client readinto + sha256": lambda: loop(True, True, False),
                "http.client readinto + write /dev/shm": lambda: loop(True, False, True),
                "http.client readinto + sha256 + write /dev/shm": lambda: loop(True, True, True),
                "urllib3 readinto + sha256 + write /dev/shm": lambda: loop(False, True, True),
                "_transfer.fetch_file to /dev/shm": fetch,
                "_transfer.fetch_file to disk (bench/out)": fetch_disk,
                "sha256 of 1 GiB in memory (no I/O)": sha_memory,
                "curl -o /dev/null from bl serve (server alone)": curl,
            }
            fetch()  # warm-up (page cache, connection)
            for _ in range(opts.runs):
                for name, fn in shapes.items():
                    t0 = time.perf_counter()
                    fn()
                    secs = time.perf_counter() - t0
                    if fn is fetch_disk:
                        secs = disk_times[-1]
                    results.setdefault(name, []).append(secs)
            http.close()
    finally:
        for folder in (tmpdir, diskdir):
            for p in folder.glob("*"):
                p.unlink()
            folder.rmdir()
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load": os.getloadavg(),
        "runs": results,
        "median": {k: median(v) for k, v in results.items()},
    }
    save_json("client-profile.json", out)
    for name, secs in out["median"].items():
        say(f"{name:<50} {secs:6.2f} s  {GIB / secs / 1e9:5.2f} GB/s")
    say(f"profile: {OUT / 'client-profile.json'}")


if __name__ == "__main__":
    main()
