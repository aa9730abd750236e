"""Download benchmarks (issue #2, figures 2 and 3).

2. One 1 GiB data object through `GET /api/warehouse/dataset/download/:id` to curl, against
   nginx (`sendfile on`) serving the very same tar bytes to curl, 3 runs each, alternating.
3. 50 curl processes downloading at once (10 distinct 64 MiB objects, 5 clients each) while the
   server's RSS (process and children, /proc/<pid>/status VmRSS) is sampled every 100 ms; the
   sha256 of every download is checked. The same 50 downloads from nginx give the baseline.

The archive (objects stored through the real ingest, `store_dataset_files`, from random bytes)
and nginx's copy of the tars are cached under bench/out/download-*/. The tars nginx serves are
the bytes our server produced, checked independently: `tarfile` must find the one member with
the size and sha256 of the bytes that were stored.

    .venv/bin/python bench/bench_download.py [--runs 3] [--clients 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import (
    OUT,
    KeepAlive,
    RssSampler,
    bl_serve,
    login,
    median,
    nginx,
    save_json,
    say,
    tree_rss_kib,
)

VERSION = "download-v1"  # bump when the fixture changes
USERNAME = "bench"
PASSWORD = "bench-password-123"
BIG = 1024**3
SMALL = 64 * 1024**2
N_SMALL = 10
GEN_CHUNK = 4 * 1024**2


@dataclass
class Fixture:
    data_dir: Path
    nginx_root: Path
    big: str  # dataset id
    small: list[str]
    tar_sha256: dict[str, str]  # dataset id -> sha256 of its whole tar
    tar_size: dict[str, int]


def _random_chunks(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    left = size
    while left:
        chunk = os.urandom(min(GEN_CHUNK, left))
        digest.update(chunk)
        left -= len(chunk)
        yield chunk


def _cache_key() -> str:
    """Changes when the schema or the tar layout rules change (nginx's copy would be stale)."""
    from brainlife.server import archive, tarstream

    digest = hashlib.sha256(VERSION.encode() + tarstream.LAYOUT_VERSION)
    for path in sorted((archive.MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_fixture() -> Fixture:
    key = _cache_key()
    root = OUT / f"download-{key}"
    for old in OUT.glob("download-*"):
        if old.is_dir() and old != root:
            shutil.rmtree(old, ignore_errors=True)
    meta_file = root / "fixture.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        say(f"download: reusing the cached archive {root / 'data'}")
        return Fixture(
            root / "data",
            root / "nginx",
            meta["big"],
            meta["small"],
            meta["tar_sha256"],
            meta["tar_size"],
        )
    shutil.rmtree(root, ignore_errors=True)
    data_dir = root / "data"
    t0 = time.perf_counter()
    ids, content = _store_objects(data_dir)
    say(f"download: stored {len(ids)} objects in {time.perf_counter() - t0:.1f} s")
    big, *small = ids
    nginx_root = root / "nginx"
    nginx_root.mkdir(parents=True)
    tar_sha: dict[str, str] = {}
    tar_size: dict[str, int] = {}
    with bl_serve(data_dir) as server:
        token = login(server.port, USERNAME, PASSWORD)
        for did in ids:
            target = nginx_root / f"{did}.tar"
            url = f"{server.url}/api/warehouse/dataset/download/{did}"
            subprocess.run(
                ["curl", "-sSf", "-o", str(target), "-H", f"Authorization: Bearer {token}", url],
                check=True,
            )
            tar_sha[did], tar_size[did] = _check_tar(target, *content[did])
    meta_file.write_text(
        json.dumps(
            {"big": big, "small": small, "tar_sha256": tar_sha, "tar_size": tar_size}, indent=2
        )
    )
    return Fixture(data_dir, nginx_root, big, small, tar_sha, tar_size)


def _store_objects(data_dir: Path) -> tuple[list[str], dict[str, tuple[int, str]]]:
    from brainlife.server.archive import open_archive
    from brainlife.server.ids import new_object_id
    from brainlife.server.models import Dataset, Datatype, Group, Project, ProjectRole
    from brainlife.server.services.auth import create_user
    from brainlife.server.services.ingest import store_dataset_files
    from brainlife.server.settings import Settings

    archive = open_archive(Settings(data_dir=data_dir))
    now = datetime.now(UTC)
    ids: list[str] = []
    content: dict[str, tuple[int, str]] = {}
    try:
        with archive.session() as session:
            user = create_user(session, username=USERNAME, password=PASSWORD)
            pid, dtid = new_object_id(), new_object_id()
            session.add(Group(id=1, name="bench"))
            session.add(
                Project(id=pid, group_id=1, name="bench", access="private", create_date=now)
            )
            session.flush()
            session.add(ProjectRole(project_id=pid, role="members", sub=str(user.sub), pos=0))
            session.add(Datatype(id=dtid, name="neuro/bench", create_date=now, extra={}))
            session.commit()
            for n, size in enumerate([BIG] + [SMALL] * N_SMALL):
                dataset = Dataset(
                    id=new_object_id(),
                    project_id=pid,
                    datatype_id=dtid,
                    user_id=str(user.sub),
                    desc=f"bench object {n}",
                    status="storing",
                    removed=False,
                    subject=f"{n:04d}",
                    meta={"subject": f"{n:04d}"},
                    extra={},
                    create_date=now,
                )
                digest = hashlib.sha256()
                store_dataset_files(
                    session, archive, dataset, [("data.bin", _random_chunks(size, digest))]
                )
                ids.append(dataset.id)
                content[dataset.id] = (size, digest.hexdigest())
    finally:
        archive.engine.dispose()
    return ids, content


def _check_tar(path: Path, size: int, sha256: str) -> tuple[str, int]:
    """Check the tar our server sent (one member `data.bin` with the stored bytes); return the
    sha256 and size of the whole tar."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        if [m.name for m in members] != ["data.bin"] or members[0].size != size:
            raise AssertionError(f"{path}: unexpected members {members}")
        fh = tar.extractfile(members[0])
        assert fh is not None
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise AssertionError(f"{path}: member bytes differ from the stored bytes")
    whole = hashlib.sha256()
    with open(path, "rb") as fh2:
        for chunk in iter(lambda: fh2.read(1024 * 1024), b""):
            whole.update(chunk)
    return whole.hexdigest(), path.stat().st_size


# --- figure 2: one 1 GiB object ---------------------------------------------------------------


def curl_speed(url: str, token: str | None, expect_size: int) -> float:
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout.split()
    code, size, speed = int(out[0]), int(out[1]), float(out[2])
    if code != 200 or size != expect_size:
        raise AssertionError(f"{url}: HTTP {code}, {size} bytes (expected {expect_size})")
    return speed


def bench_single(fx: Fixture, runs: int) -> dict[str, object]:
    did = fx.big
    size = fx.tar_size[did]
    with bl_serve(fx.data_dir) as server, nginx(fx.nginx_root) as ngx:
        token = login(server.port, USERNAME, PASSWORD)
        ours_url = f"{server.url}/api/warehouse/dataset/download/{did}"
        ngx_url = f"{ngx.url}/{did}.tar"
        # warm-up: page cache, imports, first-request costs
        curl_speed(ours_url, token, size)
        curl_speed(ngx_url, None, size)
        ours: list[float] = []
        base: list[float] = []
        for run in range(runs):
            ours.append(curl_speed(ours_url, token, size))
            base.append(curl_speed(ngx_url, None, size))
            say(f"  run {run + 1}: ours {ours[-1] / 1e9:.2f} GB/s, nginx {base[-1] / 1e9:.2f} GB/s")
    result = {
        "bytes": size,
        "runs": runs,
        "ours_bytes_per_s": ours,
        "nginx_bytes_per_s": base,
        "ours_median": median(ours),
        "nginx_median": median(base),
        "ratio": median(ours) / median(base),
    }
    say(
        f"figure 2: ours {median(ours) / 1e9:.2f} GB/s, nginx {median(base) / 1e9:.2f} GB/s, "
        f"ratio {result['ratio']:.2f}"
    )
    return result


# --- figure 3: 50 clients at once ---------------------------------------------------------------


def _client(cmd: list[str], out: dict[str, object]) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    digest = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: proc.stdout.read(1024 * 1024), b""):  # type: ignore[union-attr]
        digest.update(chunk)
        n += len(chunk)
    err = proc.stderr.read()
    out["rc"] = proc.wait()
    out["sha256"] = digest.hexdigest()
    out["bytes"] = n
    out["stderr"] = err.decode(errors="replace")[-300:]


def many_clients(urls: list[str], token: str | None, pid: int | None) -> dict[str, object]:
    """Start one curl per url at once; hash each body; sample the RSS of `pid`'s tree."""
    results: list[dict[str, object]] = [{} for _ in urls]
    threads = []
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    idle = tree_rss_kib(pid) / 1024 if pid else 0.0
    sampler = RssSampler(pid) if pid else None
    t0 = time.perf_counter()
    if sampler:
        sampler.__enter__()
    try:
        for url, out in zip(urls, results, strict=True):
            cmd = ["curl", "-sS", "--fail", "--max-time", "300", *auth, "-o", "-", url]
            thread = threading.Thread(target=_client, args=(cmd, out))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=600)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    wall = time.perf_counter() - t0
    return {
        "results": results,
        "wall_s": wall,
        "idle_rss_mib": idle,
        "peak_rss_mib": sampler.peak_mib if sampler else None,
        "samples": len(sampler.samples) if sampler else 0,
    }


def bench_concurrent(fx: Fixture, clients: int) -> dict[str, object]:
    objects = [fx.small[i % len(fx.small)] for i in range(clients)]
    total = sum(fx.tar_size[d] for d in objects)
    with bl_serve(fx.data_dir) as server, nginx(fx.nginx_root) as ngx:
        token = login(server.port, USERNAME, PASSWORD)
        # one request first so the server's lazy imports are done before the idle reading
        KeepAlive(server.port, token).request("HEAD", f"/api/warehouse/dataset/download/{fx.big}")
        ours = many_clients(
            [f"{server.url}/api/warehouse/dataset/download/{d}" for d in objects],
            token,
            server.pid,
        )
        base = many_clients([f"{ngx.url}/{d}.tar" for d in objects], None, ngx.pid)
    verdict: dict[str, object] = {}
    for name, run in (("ours", ours), ("nginx", base)):
        rows = run["results"]
        assert isinstance(rows, list)
        ok = [
            r["rc"] == 0 and r["sha256"] == fx.tar_sha256[d] and r["bytes"] == fx.tar_size[d]
            for r, d in zip(rows, objects, strict=True)
        ]
        failures = [r["stderr"] for r, good in zip(rows, ok, strict=True) if not good]
        wall = run["wall_s"]
        assert isinstance(wall, float)
        verdict[name] = {
            "clients": clients,
            "verified": sum(ok),
            "failures": failures[:5],
            "wall_s": wall,
            "bytes": total,
            "aggregate_bytes_per_s": total / wall,
            "idle_rss_mib": run["idle_rss_mib"],
            "peak_rss_mib": run["peak_rss_mib"],
            "rss_samples": run["samples"],
        }
        say(
            f"figure 3 ({name}): {sum(ok)}/{clients} verified, {total / wall / 1e9:.2f} GB/s "
            f"aggregate, RSS idle {run['idle_rss_mib']:.0f} MiB, peak {run['peak_rss_mib']:.0f} MiB"
        )
    ours_v, base_v = verdict["ours"], verdict["nginx"]
    assert isinstance(ours_v, dict) and isinstance(base_v, dict)
    verdict["ratio"] = ours_v["aggregate_bytes_per_s"] / base_v["aggregate_bytes_per_s"]
    verdict["object_bytes"] = fx.tar_size[objects[0]]
    verdict["distinct_objects"] = len(set(objects))
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-concurrent", action="store_true")
    args = parser.parse_args()
    fx = ensure_fixture()
    result: dict[str, object] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    if not args.skip_single:
        result["single"] = bench_single(fx, args.runs)
    if not args.skip_concurrent:
        result["concurrent"] = bench_concurrent(fx, args.clients)
    save_json("download.json", result)


if __name__ == "__main__":
    main()
