"""The web pages against a real `bl serve`: the project page and the first page of its object
list at 1,000,000 objects (`listing_db`, the listing benchmark's archive), and 1,000 small objects
as one selection tar against 1,000 separate object downloads with curl (the demo world).

    .venv/bin/python bench/bench_web.py [--rows 1000000] [--repeat 30]

Times are client-side medians over one keep-alive connection on loopback (what the server takes
plus a loopback round trip), signed in as the listing benchmark's member user through the pages'
own sign-in cookie; beside them, the CPU time the `bl serve` process spent per request (all its
threads, from /proc), which the shared machine's load changes far less than wall time. Results
go to bench/out/web.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from urllib.parse import urlencode

import listing_db
from common import (
    OUT,
    KeepAlive,
    bl_serve,
    load_json,
    login,
    machine_notes,
    median,
    percentile,
    save_json,
    say,
    write_section,
)

START = "<!-- web-benchmarks:start -->"
END = "<!-- web-benchmarks:end -->"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of process `pid` so far."""
    ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def time_page(
    client: KeepAlive, path: str, cookie: str, warmup: int, repeat: int, pid: int
) -> tuple[list[float], float]:
    """(client-side times, the server's CPU seconds per request)."""
    headers = {"Cookie": f"bl_session={cookie}", "Accept": "text/html"}
    for _ in range(warmup):
        status, body = client.request("GET", path, headers=headers)
        if status != 200:
            raise RuntimeError(f"GET {path} → {status}: {body[:300]!r}")
    times = []
    cpu0 = cpu_seconds(pid)
    for _ in range(repeat):
        t0 = time.perf_counter()
        status, body = client.request("GET", path, headers=headers)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path} → {status}")
    return times, (cpu_seconds(pid) - cpu0) / repeat


def pages(rows: int, warmup: int, repeat: int) -> list[dict]:
    world = listing_db.ensure_world(rows)
    out = []
    with bl_serve(world.data_dir) as server:
        token = login(server.port, listing_db.USERNAME, listing_db.PASSWORD)
        client = KeepAlive(server.port)  # no Authorization header: the pages read the cookie
        try:
            biggest = world.projects[0]  # 30 % of the rows, the user is a member
            public = world.projects[3]
            for name, path in (
                ("project page (largest project, member)", f"/project/{biggest}"),
                ("object list, first page (largest project)", f"/project/{biggest}/data"),
                (
                    "object list, first page, datatype filter",
                    f"/project/{biggest}/data?datatype={world.datatypes[0]}",
                ),
                ("project page (public project)", f"/project/{public}"),
                ("home (all projects)", "/"),
            ):
                times, cpu = time_page(client, path, token, warmup, repeat, server.pid)
                row = {"page": name, "path": path, "median_s": median(times)}
                row["p90_s"] = percentile(times, 90)
                row["server_cpu_s"] = cpu
                out.append(row)
                ms = row["median_s"] * 1000
                say(f"  {name}: median {ms:.1f} ms, server CPU {cpu * 1000:.1f} ms")
        finally:
            client.close()
    return out


def selection_vs_curl(n: int) -> dict:
    """n small demo objects: one POST of the selection tar vs n curl downloads of their tars."""
    from brainlife.server.archive import open_archive
    from brainlife.server.demo import build_demo
    from brainlife.server.settings import Settings

    data_dir = OUT / "web-demo" / "data"
    if not (OUT / "web-demo" / ".built").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        arch = open_archive(Settings(data_dir=data_dir))
        with arch.session() as session:
            build_demo(session, arch)
        arch.engine.dispose()
        (OUT / "web-demo" / ".built").touch()
    with bl_serve(data_dir) as server:
        token = login(server.port, "demo", "demo")
        client = KeepAlive(server.port, token)
        find = {"project": "5a022fc99c0d250055709e9c", "removed": False, "status": "stored"}
        query = urlencode({"limit": "0", "select": "_id size", "find": json.dumps(find)})
        _status, body = client.request("GET", "/api/warehouse/dataset?" + query)
        docs = sorted(json.loads(body)["datasets"], key=lambda d: (d["size"], d["_id"]))[:n]
        ids = [d["_id"] for d in docs]
        client.close()
        base = f"http://127.0.0.1:{server.port}/api/warehouse"
        auth = f"Authorization: Bearer {token}"
        work = OUT / "web-curl"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "ids.json").write_text(json.dumps({"ids": ids}))
        t0 = time.perf_counter()
        subprocess.run(
            [
                "curl",
                "-sSf",
                "-H",
                auth,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                f"@{work / 'ids.json'}",
                "-o",
                str(work / "all.tar"),
                f"{base}/dataset/tar",
            ],
            check=True,
        )
        one_tar = time.perf_counter() - t0
        t0 = time.perf_counter()
        for oid in ids:
            subprocess.run(
                [
                    "curl",
                    "-sSf",
                    "-H",
                    auth,
                    "-o",
                    str(work / f"{oid}.tar"),
                    f"{base}/dataset/download/{oid}",
                ],
                check=True,
            )
        separate = time.perf_counter() - t0

    # same bytes: every file of every object, by name and content
    def digests(tar_bytes: bytes, prefix: str = "") -> dict[str, str]:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            return {
                prefix + m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile()
            }

    together = digests((work / "all.tar").read_bytes())
    apart: dict[str, str] = {}
    for oid in ids:
        apart.update(digests((work / f"{oid}.tar").read_bytes(), f"{oid}/"))
    return {
        "objects": n,
        "bytes_of_files": sum(d["size"] or 0 for d in docs),
        "one_tar_s": one_tar,
        "separate_curl_s": separate,
        "speedup": separate / one_tar,
        "same_files": together == apart,
        "files": len(together),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=listing_db.N_ROWS)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--reuse-pages", action="store_true", help="keep web.json's page times")
    args = parser.parse_args()
    say(f"web: pages at {args.rows} objects")
    old = load_json("web.json")
    if args.reuse_pages and old:
        page_rows = old["pages"]
    else:
        page_rows = pages(args.rows, args.warmup, args.repeat)
    say(f"web: {args.objects} objects, one tar vs curl each")
    tar = selection_vs_curl(args.objects)
    say(f"  one tar {tar['one_tar_s']:.2f} s, curl each {tar['separate_curl_s']:.2f} s")
    save_json("web.json", {"pages": page_rows, "selection": tar, "rows": args.rows})
    lines = [
        "## Web pages (bench/bench_web.py)",
        "",
        f"`bl serve` over the listing benchmark's archive ({args.rows:,} objects), signed in",
        "through the pages' session cookie; client-side medians over one keep-alive connection on",
        "loopback",
        f"({args.repeat} requests after {args.warmup} warm-ups); server CPU: the `bl serve`",
        "process's CPU time (all threads) over those requests, per request.",
        f"({machine_notes()})",
        "",
        "| page | median ms | p90 ms | server CPU ms |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['page']} | {r['median_s'] * 1000:.1f} | {r['p90_s'] * 1000:.1f} | "
        f"{r['server_cpu_s'] * 1000:.1f} |"
        if "server_cpu_s" in r
        else f"| {r['page']} | {r['median_s'] * 1000:.1f} | {r['p90_s'] * 1000:.1f} | – |"
        for r in page_rows
    ]
    lines += [
        "",
        f"{tar['objects']:,} small data objects of the demo ({tar['files']:,} files,",
        f"{tar['bytes_of_files']:,} bytes): one `POST /api/warehouse/dataset/tar` with curl took",
        f"{tar['one_tar_s']:.2f} s; {tar['objects']:,} `curl` downloads of "
        f"`/dataset/download/:id` took {tar['separate_curl_s']:.2f} s",
        f"(**{tar['speedup']:.0f}×**); same files, same bytes: {tar['same_files']}.",
    ]
    write_section("\n".join(lines), START, END)


if __name__ == "__main__":
    main()
