"""Memory of one large upload (issue #10): peak RSS of `bl data upload` and of `bl serve` while
a `--size-mib` file (default 5 GiB, sparse: made with truncate, so the disk holds nothing until
the server writes it) goes up, sampled every 50 ms (client) and 100 ms (server).

    .venv/bin/python bench/bench_upload_memory.py [--size-mib 5120]

Writes the "Upload memory (issue #10)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_upload import env_for, upload_cmd
from bench.common import (
    OUT,
    RssSampler,
    bl_serve,
    login,
    machine_notes,
    say,
    tree_rss_kib,
    write_section,
)

START = "<!-- upload-memory:start -->"
END = "<!-- upload-memory:end -->"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=5120)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-upload-memory-", dir=OUT))
    try:
        src = work / "big.nii.gz"
        with open(src, "wb") as fh:
            fh.truncate(args.size_mib << 20)
        with bl_serve(work / "data", ["--demo"]) as server:
            env = env_for(work / "home", server.url, login(server.port, "demo", "demo"))
            idle = tree_rss_kib(server.pid) / 1024
            say(f"uploading {args.size_mib} MiB")
            t0 = time.perf_counter()
            proc = subprocess.Popen(upload_cmd(src, "memory"), env=env, stdout=subprocess.PIPE)
            with RssSampler(proc.pid, 0.05) as client, RssSampler(server.pid, 0.1) as srv:
                out, _ = proc.communicate()
            seconds = time.perf_counter() - t0
            if proc.returncode != 0 or b"successfully uploaded" not in out:
                raise RuntimeError(f"bl data upload failed ({proc.returncode}): {out!r}")
            after = tree_rss_kib(server.pid) / 1024
        md = f"""## Upload memory (issue #10)

`.venv/bin/python bench/bench_upload_memory.py --size-mib {args.size_mib}`
({machine_notes()})

One {args.size_mib} MiB file (sparse) by `bl data upload` in {seconds:.0f} s: **peak RSS of the
`bl` process {client.peak_mib:.0f} MiB** (target < 150 MB; {len(client.samples)} samples);
`bl serve` {idle:.0f} MiB before, **peak {srv.peak_mib:.0f} MiB** during the upload, {after:.0f}
MiB after (flat: the body is written as it arrives, never held).
"""
        write_section(md, START, END)
        print(md)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
