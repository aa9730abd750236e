"""Concurrent queries (issue #11 item 5): 50 `bl data query` clients at once against one
`bl serve` over 1,000,000 data objects, with 1 and with 2 `--workers`.

Each client is a thread of this process with its own keep-alive HTTP/1.1 connection
(http.client) and the member token of `bench_listing.py`; it sends what `bl data query` sends,
`GET /api/warehouse/dataset?find=…&skip=…&limit=…` (plus `sort` and `select` variants and the
`{"_id": …}` lookup `bl data download` starts with), cycling through the mix from its own
offset. Two phases per server:

- **saturated** (closed loop): every client sends its next request as soon as the previous
  answer arrived, for `--seconds`. Throughput = answered requests / wall time; latency here is
  mostly queueing (Little's law: 50 requests in flight / throughput).
- **paced** (each client one request every `1 / --rate` seconds, starts spread over the first
  interval; a late answer makes the next request go at once): the latency a user sees when the
  server is busy but not beyond its capacity; p50/p95/p99 of these requests.

Meanwhile the VmRSS of every server process (the uvicorn supervisor and each worker) is read
every 100 ms; the peak per process is reported. CPU sharing: the server processes' and this
process's CPU seconds (from /proc and `os.times`) over each phase are reported, so the share of
the 2 cores taken by the load generator is visible.

    .venv/bin/python bench/bench_concurrent_queries.py [--rows 1000000] [--workers 1 2]
        [--clients 50] [--seconds 20] [--rate 1] [--database-url postgresql+psycopg://…]

With `--database-url` the server runs on that (PostgreSQL) database, built by `pg_listing_db.py`
with the same world as `listing_db.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import bench_listing
import listing_db
from common import (
    KeepAlive,
    _children,
    bl_serve,
    load_json,
    login,
    machine_notes,
    median,
    percentile,
    save_json,
    say,
    set_nice,
    write_section,
)

START = "<!-- concurrent-queries:start -->"
END = "<!-- concurrent-queries:end -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def request_mix(world: listing_db.World, ids: list[str]) -> list[tuple[str, str]]:
    """(label, path) of every request shape the clients send."""
    paths: list[tuple[str, str]] = []
    for shape in bench_listing.shapes(world):
        paths.append((shape.name, bench_listing.path_for(shape, 100)))
    p, dt = world.projects, world.datatypes
    base = {"removed": False, "$and": [{"project": p[0]}, {"datatype": dt[0]}]}

    def path(**query: Any) -> str:
        q = {k: str(v) for k, v in query.items()}
        q["find"] = json.dumps(query["find"], separators=(",", ":"))
        return "/api/warehouse/dataset?" + urlencode(q)

    # sorted on a narrower find: sorting the 80,925 objects of `base` by date costs seconds
    # (no index serves it; see RESULTS.md)
    subject = {"removed": False, "$and": [*base["$and"], {"meta.subject": "0008"}]}
    paths.append(("sort=-create_date", path(find=subject, sort="-create_date", skip=0, limit=100)))
    paths.append(("sort=meta.subject", path(find=base, sort="meta.subject", skip=0, limit=100)))
    paths.append(
        ("select=_id meta datatype", path(find=base, select="_id meta datatype", skip=0, limit=100))
    )
    paths.append(("page 2 (skip=100)", path(find=base, skip=100, limit=100)))
    for i, oid in enumerate(ids):
        paths.append((f"by _id #{i}", path(find={"_id": oid}, limit=1)))
    return paths


def sample_ids(world: listing_db.World, n: int) -> list[str]:
    db = world.data_dir / "archive.sqlite3"
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            # objects of a project the member reads (p0), spread over the table
            rows = conn.execute(
                "SELECT id FROM datasets WHERE project_id = ? AND removed = 0 ORDER BY id"
                " LIMIT ? OFFSET 1000",
                (world.projects[0], n * 997),
            ).fetchall()
        finally:
            conn.close()
        return [r[0] for r in rows[::997]][:n]
    return []


@dataclass
class Sample:
    at: float
    seconds: float
    status: int
    label: str


@dataclass
class ProcSampler:
    """Peak VmRSS (KiB) of each process of a tree, and their CPU ticks, sampled in a thread."""

    pid: int
    interval: float = 0.1
    peaks: dict[int, int] = field(default_factory=dict)
    #: pid → (RssAnon, RssFile) in KiB at the moment of its peak VmRSS
    parts: dict[int, tuple[int, int]] = field(default_factory=dict)
    threads: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def pids(self) -> list[int]:
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += _children(p)
        return out

    def status(self, pid: int) -> dict[str, int]:
        out: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(value.split()[0])
        return out

    def rss(self, pid: int) -> int:
        return self.status(pid).get("VmRSS", 0)

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def sample(self) -> None:
        for pid in self.pids():
            st = self.status(pid)
            if st.get("VmRSS", 0) > self.peaks.get(pid, 0):
                self.peaks[pid] = st["VmRSS"]
                self.parts[pid] = (st.get("RssAnon", 0), st.get("RssFile", 0))
            self.threads[pid] = max(self.threads.get(pid, 0), st.get("Threads", 0))

    def __enter__(self) -> ProcSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def run_phase(
    port: int,
    token: str,
    mix: list[tuple[str, str]],
    clients: int,
    seconds: float,
    rate: float | None,
) -> tuple[list[Sample], float]:
    """`clients` threads for `seconds`; closed loop when `rate` is None. Returns the samples
    and the wall time."""
    samples: list[Sample] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    t_start = [0.0]

    def client(k: int) -> None:
        conn = KeepAlive(port, token)
        mine: list[Sample] = []
        try:
            i = k * 7
            barrier.wait()
            t0 = t_start[0]
            interval = 1 / rate if rate else 0.0
            next_at = t0 + interval * k / clients
            while True:
                now = time.perf_counter()
                if rate:
                    if next_at > now:
                        time.sleep(next_at - now)
                    next_at += interval
                if time.perf_counter() - t0 >= seconds:
                    break
                label, path = mix[i % len(mix)]
                i += 1
                a = time.perf_counter()
                status, _body = conn.request("GET", path)
                mine.append(Sample(a - t0, time.perf_counter() - a, status, label))
        finally:
            conn.close()
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    t_start[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return samples, time.perf_counter() - t_start[0]


@contextlib.contextmanager
def server_for(args: argparse.Namespace, world: listing_db.World, workers: int) -> Iterator[Any]:
    extra = ["--workers", str(workers)]
    if args.query_slots:
        extra += ["--query-slots", str(args.query_slots)]
    if args.database_url:
        extra += ["--database-url", args.database_url]
    with bl_serve(world.data_dir, extra) as server:
        yield server


def summarise(samples: list[Sample], wall: float) -> dict[str, Any]:
    times = [s.seconds for s in samples if s.status == 200]
    slowest = sorted(samples, key=lambda s: -s.seconds)
    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if s.status != 200),
        "statuses": sorted({s.status for s in samples}),
        "wall_s": wall,
        "throughput_rps": len(times) / wall if wall else 0.0,
        "p50_s": median(times),
        "p95_s": percentile(times, 95),
        "p99_s": percentile(times, 99),
        "max_s": max(times, default=float("nan")),
        "slowest_labels": sorted({s.label for s in slowest[: max(1, len(samples) // 100)]}),
    }


def measure(
    args: argparse.Namespace, world: listing_db.World, mix: list[tuple[str, str]], workers: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": workers}
    with server_for(args, world, workers) as server:
        token = login(server.port, listing_db.USERNAME, listing_db.PASSWORD)
        # every worker opens its connections and warms its caches: one pass of the mix per client
        run_phase(server.port, token, mix, args.clients, 3.0, None)
        with ProcSampler(server.pid) as procs:
            idle = {pid: procs.rss(pid) for pid in procs.pids()}
            for phase, rate in (("saturated", None), ("paced", args.rate)):
                cpu0, me0, t0 = procs.cpu_seconds(), os.times(), time.perf_counter()
                samples, wall = run_phase(server.port, token, mix, args.clients, args.seconds, rate)
                cpu1, me1, t1 = procs.cpu_seconds(), os.times(), time.perf_counter()
                row = summarise(samples, wall)
                row["server_cpu_cores"] = (cpu1 - cpu0) / (t1 - t0)
                row["client_cpu_cores"] = (me1.user + me1.system - me0.user - me0.system) / (
                    t1 - t0
                )
                row["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
                out[phase] = row
                say(
                    f"  workers={workers} {phase}: {row['requests']} requests "
                    f"({row['errors']} errors), {row['throughput_rps']:.1f} req/s, p50 "
                    f"{row['p50_s'] * 1000:.1f} ms, p95 {row['p95_s'] * 1000:.1f} ms, server "
                    f"{row['server_cpu_cores']:.2f} cores, client {row['client_cpu_cores']:.2f}"
                )
        supervisor = server.pid
        out["idle_rss_mib"] = {str(pid): kib / 1024 for pid, kib in idle.items()}
        peaks = dict(procs.peaks)
        out["peak_rss_mib"] = {str(pid): kib / 1024 for pid, kib in peaks.items()}
        out["peak_rss_anon_file_mib"] = {
            str(pid): (a / 1024, f / 1024) for pid, (a, f) in procs.parts.items()
        }
        out["peak_threads"] = {str(pid): n for pid, n in procs.threads.items()}
        serving = [kib for pid, kib in peaks.items() if workers == 1 or pid != supervisor]
        out["peak_rss_per_serving_process_mib"] = max(serving) / 1024
        say(
            f"  workers={workers}: peak RSS per serving process {max(serving) / 1024:.0f} MiB "
            f"(anon, file: {out['peak_rss_anon_file_mib']}; threads {out['peak_threads']})"
        )
    return out


def render(data: dict[str, Any]) -> str:
    runs = data["runs"]
    by_w = {r["workers"]: r for r in runs}
    lines = [
        f"## Concurrent queries (issue #11 item 5) on {data['engine']}",
        "",
        f"Command: `{data['command']}` (run {data['started']}; {data['clients']} clients, "
        f"{data['seconds']:g} s per phase, paced rate {data['rate']:g} request/s per client; "
        f"{data['n_rows']:,} data objects in {data['engine']}; {len(data['mix'])} request "
        "shapes; the load generator and the servers at niceness "
        f"{data.get('nice', 0)}). See the script's docstring for the phases.",
        "",
        "| workers | phase | requests | errors | req/s | p50 ms | p95 ms | p99 ms | server CPU "
        "(cores) | client CPU (cores) | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        for phase in ("saturated", "paced"):
            p = r[phase]
            lines.append(
                f"| {r['workers']} | {phase} | {p['requests']} | {p['errors']} | "
                f"{p['throughput_rps']:.1f} | {p['p50_s'] * 1000:.1f} | {p['p95_s'] * 1000:.1f} "
                f"| {p['p99_s'] * 1000:.1f} | {p['server_cpu_cores']:.2f} | "
                f"{p['client_cpu_cores']:.2f} | {' '.join(p['loadavg'])} |"
            )
    lines += ["", "Peak RSS per process (MiB, idle before the phases → peak):", ""]
    for r in runs:
        parts = [
            f"pid {pid}: {r['idle_rss_mib'].get(pid, 0):.0f} → {peak:.0f}"
            for pid, peak in r["peak_rss_mib"].items()
        ]
        lines.append(
            f"- {r['workers']} worker(s): " + "; ".join(parts) + " (max per serving process "
            f"**{r['peak_rss_per_serving_process_mib']:.0f} MiB**"
            + (", the first pid is uvicorn's supervisor)" if r["workers"] > 1 else ")")
        )
    if 1 in by_w and 2 in by_w:
        ratio = by_w[2]["saturated"]["throughput_rps"] / by_w[1]["saturated"]["throughput_rps"]
        p95 = by_w[2]["paced"]["p95_s"] * 1000
        rss = max(r["peak_rss_per_serving_process_mib"] for r in runs)
        lines += [
            "",
            f"Targets: p95 < 100 ms with 2 workers (paced): **{p95:.1f} ms**; peak RSS per "
            f"worker < 250 MB (238 MiB): **{rss:.0f} MiB**; throughput 2 workers ÷ 1 worker "
            f"(saturated) ≥ 1.6: **{ratio:.2f}**.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=listing_db.N_ROWS)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1.0, help="paced requests/s per client")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--query-slots", type=int, default=None, help="bl serve --query-slots")
    parser.add_argument("--no-report", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument(
        "--report", action="store_true", help="only re-render RESULTS.md from the saved JSON"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run this process and the servers it starts at this niceness (negative: ahead of "
        "other work on a shared machine; needs root)",
    )
    args = parser.parse_args()
    if args.nice:
        set_nice(args.nice)

    if args.report:
        for tag in ("", "-pg"):
            saved = load_json(f"concurrent-queries{tag}.json")
            if saved:
                write_section(
                    render(saved) + "\n\n" + saved.get("machine", ""),
                    START.replace(":start", f"{tag}:start"),
                    END.replace(":end", f"{tag}:end"),
                )
        return
    world = listing_db.ensure_world(args.rows)
    ids = sample_ids(world, 4)
    mix = request_mix(world, ids)
    if args.database_url:  # the same world, copied into PostgreSQL
        import pg_listing_db

        args.database_url, data_dir = pg_listing_db.ensure_pg_world(args.database_url, world)
        world = listing_db.World(
            data_dir, world.projects, world.datatypes, world.releases, world.n_rows
        )
    data: dict[str, Any] = {
        "command": ".venv/bin/python bench/bench_concurrent_queries.py "
        + " ".join(
            a if not a.startswith("postgresql") else "postgresql+psycopg://…" for a in sys.argv[1:]
        ),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "n_rows": world.n_rows,
        "engine": "PostgreSQL" if args.database_url else "SQLite",
        "clients": args.clients,
        "seconds": args.seconds,
        "rate": args.rate,
        "nice": args.nice,
        "query_slots": args.query_slots,
        "mix": [label for label, _ in mix],
        "runs": [],
    }
    for workers in args.workers:
        data["runs"].append(measure(args, world, mix, workers))
    name = "concurrent-queries" + ("-pg" if args.database_url else "") + ".json"
    data["machine"] = machine_notes()
    save_json(name, data)
    if not args.no_report:
        tag = "-pg" if args.database_url else ""
        write_section(
            render(data) + "\n\n" + data["machine"],
            START.replace(":start", f"{tag}:start"),
            END.replace(":end", f"{tag}:end"),
        )


if __name__ == "__main__":
    main()
