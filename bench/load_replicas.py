"""Replicas behind nginx (issue #11, item 4), one command:

    .venv/bin/python bench/load_replicas.py [--clients 50] [--objects 10] [--size-mib 32]

The deployment of docs/deploy.md on this machine (tests/deploy/stack.py): a private PostgreSQL
(scripts/pg-start, bench/out/replicas-run/pg), two `bl serve` replicas sharing the database, the
data folder (local store) and a signing key, behind Debian's nginx running the repository's
deploy/nginx/bl-archive.conf with TLS. `--objects` objects of `--size-mib` pseudo-random bytes are
stored through the real ingest.

1. **Benchmark**: `--clients` curl processes download at once through nginx (per-file route,
   `--clients / --objects` clients per object), every output's sha256 checked, while each
   replica's RSS (process tree, /proc VmRSS) is sampled every 100 ms. Same run, same files:
   nginx serving the store's bytes statically (`sendfile on`) to the same curls, in plain HTTP
   and over TLS with the proxy's certificate.
2. **Load test**: `--clients` downloads at once through nginx by our client's engine
   (`Client.download_dataset`, one client per thread, its retry policy); replica 1 is killed
   with SIGKILL once a third of the bytes have arrived, and restarted a second later. Every
   download must complete with the right sha256. Reported: requests nginx answered, the errors it
   saw (5xx answers, upstream failures in its error log), the retries our clients made (waits
   told to their `Liveness` listener), the completions.

Results: printed, and written into bench/RESULTS.md between the load-replicas markers (and
bench/out/load-replicas.json). Exit status 1 if a download is lost or a byte is wrong.
Every process is stopped at the end (PostgreSQL purged), also on failure; the downloaded copies
and the data folder are removed once verified (the logs stay in bench/out/replicas-run/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import OUT, ROOT, RssSampler, machine_notes, nginx, save_json, say, write_section

sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer, start_server, stop_server
from tests.deploy.stack import (
    Nginx,
    add_objects,
    replica_args,
    sha256_file,
    start_nginx,
    stop_nginx,
)

START = "<!-- load-replicas:start -->"
END = "<!-- load-replicas:end -->"
WORK = OUT / "replicas-run"


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    folder = WORK / "pg"
    out = subprocess.run(
        [str(ROOT / "scripts/pg-start"), str(folder)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    url = dict(line.split("=", 1) for line in out.splitlines())["BL_PG_URL"]
    try:
        yield url
    finally:
        subprocess.run([str(ROOT / "scripts/pg-stop"), str(folder), "--purge"], check=False)


def fresh_database(admin: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(admin)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
        autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute('DROP DATABASE IF EXISTS "bl_load" WITH (FORCE)')
        conn.execute('CREATE DATABASE "bl_load" TEMPLATE template0 LOCALE "C.UTF-8"')
    return u.set(database="bl_load").render_as_string(hide_password=False)


def build(data_dir: Path, url: str, objects: int, size: int) -> dict[str, str]:
    from brainlife.server.archive import open_archive
    from brainlife.server.demo import build_demo
    from brainlife.server.services.auth import use_password_cost
    from brainlife.server.settings import Settings

    use_password_cost("test")  # the demo's accounts, password = username
    arch = open_archive(Settings(data_dir=data_dir, database_url=url))
    with arch.session() as session:
        build_demo(session, arch)
    arch.engine.dispose()
    return add_objects(data_dir, url, objects, size, seed="load-replicas")


def make_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def login(front: Nginx) -> str:
    from brainlife.client import Client

    with Client(front.url, ca_bundle=front.cert) as client:
        return client.login("hayashis", "hayashis", save=False).jwt


TLS_STATIC = """\
daemon off;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
    }}
}}
"""


@contextlib.contextmanager
def tls_static(root: Path, front: Nginx) -> Iterator[str]:
    """nginx serving `root` over TLS with the proxy's certificate: the baseline with the same
    encryption as the path through the replicas."""
    from common import free_port, stop_process, wait_port

    folder = WORK / "nginx-tls-static"
    folder.mkdir()
    port = free_port()
    conf = folder / "nginx.conf"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        user
        + TLS_STATIC.format(
            folder=folder,
            port=port,
            cert=front.cert,
            key=front.cert.with_name("key.pem"),
            root=root.resolve(),
        )
    )
    log = folder / "stderr.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", str(folder), "-c", str(conf)],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc, log, timeout=20)
        yield f"https://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def curls(urls: list[str], folder: Path, headers: list[str], cacert: Path | None) -> float:
    """Run one curl per URL at once into folder/<n>; seconds until the last one ended."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    extra = [a for h in headers for a in ("-H", h)]
    if cacert is not None:
        extra += ["--cacert", str(cacert)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(["curl", "-sS", "-f", "-o", str(folder / str(n)), *extra, u])
        for n, u in enumerate(urls)
    ]
    codes = [p.wait() for p in procs]
    took = time.monotonic() - started
    if any(codes):
        raise RuntimeError(f"curl failed: exit codes {sorted(set(codes))}")
    return took


def verify(folder: Path, expected: list[str]) -> int:
    """How many of folder/<n> have the sha256 expected[n]."""
    return sum(sha256_file(folder / str(n)) == d for n, d in enumerate(expected))


def benchmark(
    front: Nginx, replicas: list[LiveServer], objects: dict[str, str], clients: int, token: str
) -> dict[str, Any]:
    ids = list(objects)
    chosen = [ids[n % len(ids)] for n in range(clients)]
    expected = [objects[i] for i in chosen]
    urls = [f"{front.url}/api/warehouse/dataset/file/{i}/t1.nii.gz" for i in chosen]
    samplers = [RssSampler(r.process.pid) for r in replicas]
    for s in samplers:
        s.__enter__()
    try:
        took = curls(urls, WORK / "curl-proxy", [f"Authorization: Bearer {token}"], front.cert)
    finally:
        for s in samplers:
            s.__exit__(None, None, None)
    good = verify(WORK / "curl-proxy", expected)
    # the same bytes from nginx's disk: the store's blobs linked under the objects' ids
    static = WORK / "static"
    shutil.rmtree(static, ignore_errors=True)
    static.mkdir()
    store = replicas[0].data_dir / "store"
    for oid, digest in objects.items():
        os.link(store / digest[:2] / digest[2:4] / digest, static / oid)
    with nginx(static) as plain:
        base = curls([f"{plain.url}/{i}" for i in chosen], WORK / "curl-static", [], None)
    base_good = verify(WORK / "curl-static", expected)
    with tls_static(static, front) as tls_url:
        tls = curls([f"{tls_url}/{i}" for i in chosen], WORK / "curl-tls", [], front.cert)
    tls_good = verify(WORK / "curl-tls", expected)
    size = (WORK / "curl-proxy" / "0").stat().st_size
    return {
        "clients": clients,
        "bytes_each": size,
        "verified": good,
        "seconds": took,
        "static_verified": base_good,
        "static_seconds": base,
        "static_tls_verified": tls_good,
        "static_tls_seconds": tls,
        "peak_rss_mib": [round(s.peak_mib, 1) for s in samplers],
    }


def load_test(
    front: Nginx,
    replicas: list[LiveServer],
    objects: dict[str, str],
    clients: int,
    token: str,
    url: str,
    key_file: Path,
) -> dict[str, Any]:
    from brainlife.client import Client

    ids = list(objects)
    folder = WORK / "engine"
    shutil.rmtree(folder, ignore_errors=True)
    size = (WORK / "curl-proxy" / "0").stat().st_size
    total = size * clients
    received = [0] * clients
    retries = [0] * clients
    results: list[str | None] = [None] * clients
    first_access = len(front.access_lines())
    first_error = len(front.error_lines())

    def one(n: int) -> None:
        oid = ids[n % len(ids)]

        def progress(done: int, _total: int | None) -> None:
            received[n] = done

        def waiting(w: Any) -> None:
            if w is not None:
                retries[n] += 1

        try:
            with Client(front.url, token=token, ca_bundle=front.cert) as client:
                client.http.liveness.listener = waiting
                client.download_dataset(oid, folder / str(n), progress=progress, jobs=1)
            got = sha256_file(folder / str(n) / "t1.nii.gz")
            results[n] = "ok" if got == objects[oid] else "wrong bytes"
        except Exception as exc:  # reported, never hidden
            results[n] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    while sum(received) < total / 3 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    killed_at = sum(received)
    victim = replicas[0]
    victim.process.kill()
    victim.process.wait()
    time.sleep(1.0)
    replicas[0] = start_server(victim.data_dir, extra=replica_args(url, key_file), port=victim.port)
    for t in threads:
        t.join()
    took = time.monotonic() - started
    access = front.access_lines()[first_access:]
    errors = front.error_lines()[first_error:]
    statuses = [int(m.group(1)) for line in access if (m := re.search(r'" (\d{3}) ', line))]
    upstream_failures = [
        line for line in errors if "upstream" in line or "connect() failed" in line
    ]
    return {
        "clients": clients,
        "bytes_each": size,
        "killed_after_bytes": killed_at,
        "seconds": took,
        "requests": len(access),
        "answers_5xx": sum(s >= 500 for s in statuses),
        "nginx_upstream_errors": len(upstream_failures),
        "client_retries": sum(retries),
        "completed": sum(r == "ok" for r in results),
        "failures": sorted({r for r in results if r != "ok"}, key=str),
    }


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def report(bench: dict[str, Any], load: dict[str, Any]) -> str:
    mib = bench["bytes_each"] / 1024**2
    n = bench["clients"]
    ratio = bench["seconds"] / bench["static_seconds"] if bench["static_seconds"] else 0
    tls_ratio = bench["seconds"] / bench["static_tls_seconds"] if bench["static_tls_seconds"] else 0
    peaks = ", ".join(f"{p:.0f} MiB" for p in bench["peak_rss_mib"])
    target = "met" if max(bench["peak_rss_mib"]) < 150 else "**not met**"
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    lost = (
        "Lost: " + "; ".join(load["failures"])
        if load["failures"]
        else "Nothing lost: every download completed with its bytes."
    )
    lines = [
        "## Replicas behind nginx (issue #11, item 4)",
        "",
        f"`.venv/bin/python bench/load_replicas.py --clients {n}` ({when}).",
        machine_notes(),
        "",
        "Two `bl serve` replicas (PostgreSQL, local store in one shared data folder, one signing",
        "key) behind nginx with the repository's `deploy/nginx/bl-archive.conf` (TLS). Same run,",
        "same files.",
        "",
        f"**{n} concurrent downloads** of {mib:.0f} MiB objects (curl, per-file route):",
        "",
        _row("", "wall time", "sha256 verified", "peak RSS per replica"),
        _row("---", "---", "---", "---"),
        _row(
            "nginx → 2 replicas (TLS)",
            f"{bench['seconds']:.2f} s",
            f"{bench['verified']}/{n}",
            peaks,
        ),
        _row(
            "nginx static (sendfile, plain HTTP)",
            f"{bench['static_seconds']:.2f} s",
            f"{bench['static_verified']}/{n}",
            "–",
        ),
        _row(
            "nginx static (sendfile, TLS)",
            f"{bench['static_tls_seconds']:.2f} s",
            f"{bench['static_tls_verified']}/{n}",
            "–",
        ),
        "",
        f"Through the replicas: {ratio:.1f}× the plain static baseline's time, "
        f"{tls_ratio:.1f}× the TLS one's (the proxy's certificate: the same encryption); peak RSS",
        f"target (< 150 MB per replica) {target}. The machine is shared (2 cores, other engineers'",
        "test runs): times vary from run to run, the ratio and the memory less.",
        "",
        "**Load test: a replica killed mid-run.** "
        f"{load['clients']} concurrent downloads by our client's engine",
        "(`Client.download_dataset`, its retries) through nginx; replica 1 SIGKILLed after "
        f"{load['killed_after_bytes'] / 1024**2:.0f} MiB",
        f"of {load['clients'] * mib:.0f} MiB had arrived, restarted 1 s later.",
        "",
        _row(
            "requests (nginx)",
            "5xx answers (nginx)",
            "upstream errors (nginx's log)",
            "client retries",
            "completed, sha256 verified",
        ),
        _row("---", "---", "---", "---", "---"),
        _row(
            load["requests"],
            load["answers_5xx"],
            load["nginx_upstream_errors"],
            load["client_retries"],
            f"{load['completed']}/{load['clients']}",
        ),
        "",
        lost,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--size-mib", type=int, default=32)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for name in list(os.environ):
        if name.startswith("BL_"):
            del os.environ[name]
    with postgresql() as admin:
        url = fresh_database(admin)
        data_dir = WORK / "data"
        say("building the demo world and the objects ...")
        objects = build(data_dir, url, args.objects, args.size_mib << 20)
        key_file = make_key(WORK / "signing.pem")
        replicas: list[LiveServer] = []
        front = None
        try:
            replicas = [start_server(data_dir, extra=replica_args(url, key_file)) for _ in range(2)]
            front = start_nginx(WORK / "nginx", [r.hostport for r in replicas])
            token = login(front)
            say(f"benchmark: {args.clients} curls through nginx, then from static nginx ...")
            bench = benchmark(front, replicas, objects, args.clients, token)
            say(f"load test: {args.clients} engine downloads, replica 1 killed mid-run ...")
            load = load_test(front, replicas, objects, args.clients, token, url, key_file)
        finally:
            if front is not None:
                stop_nginx(front)
            for replica in replicas:
                if replica.process.poll() is None:
                    stop_server(replica)
        pg_note = f"{admin.rsplit('@', 1)[-1]}"
    for name in ("curl-proxy", "curl-static", "curl-tls", "engine", "static", "data"):
        shutil.rmtree(WORK / name, ignore_errors=True)  # gigabytes of verified copies
    markdown = report(bench, load)
    print(markdown)
    write_section(markdown, START, END)
    save_json("load-replicas", {"benchmark": bench, "load": load, "postgresql": pg_note})
    lost = load["completed"] != load["clients"] or bench["verified"] != bench["clients"]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
