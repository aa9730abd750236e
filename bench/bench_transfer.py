"""Client figures 2-4: one 1 GiB object against curl + nginx, resume after kill -9 half way,
and the client's peak memory over 5 GiB.

All against one plain-http `bl serve` on loopback over the cached archive of client_common.py
(5 objects of one 1 GiB file each, distinct random bytes), with `BLHOST=http://127.0.0.1:<port>`
and a private HOME logged in with our `bl login`.

2. `bl data download -i ID -d DIR --jobs 1 --json` (the bulk engine: Range-able file route,
   sha256 while writing, rename into place) against `curl -s -o FILE` fetching the same bytes
   from nginx (`sendfile on`; its root holds a hard link to the archive's blob). For context,
   curl also fetches the very route our client uses (`/api/warehouse/dataset/file/ID/data.bin`)
   from `bl serve`, which separates the server's share from the client's. One warm-up each,
   then 3 alternating runs each, `sync` and a 3 s pause before every run, output deleted
   after it; medians.
   Twice: writing to the repository's file system (bench/out) and to /dev/shm (tmpfs, when it
   exists: no disk in the path). Ratio ours/curl = curl's wall time / ours (throughput ratio).
3. The same command; the process is SIGKILLed when `<id>/data.bin.bl-part` passes 50 % of the
   object; rerun with `--json`. Re-sent = `bytes_transferred - (size - part size at kill)`
   from the summary, cross-checked by the bytes the server process wrote (`wchar` of
   /proc/<pid>/io, summed over its process tree, during the rerun). The result's sha256 is
   checked independently.
4. `bl data download -p <project> -d DIR --json` (default --jobs 8) of the 5 objects (5 GiB)
   while the VmRSS of the client process and its descendants is sampled every 100 ms.

    .venv/bin/python bench/bench_transfer.py [--runs 3] [--skip-shm] [--only 2,3,4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from client_common import (
    GIB,
    OUR_BL,
    PASSWORD,
    USERNAME,
    ClientFixture,
    blob_path,
    cli_env,
    cli_login,
    ensure_fixture,
    sha256_file,
)
from common import OUT, RssSampler, _children, bl_serve, login, median, nginx, save_json, say

SETTLE_SECONDS = 3.0


def _sync() -> None:
    os.sync()


def _summary(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.strip():
            event = json.loads(line)
            if event.get("event") == "summary":
                return event
    raise RuntimeError(f"no summary event in:\n{stdout[-2000:]}")


def ours_one(env: dict[str, str], dataset_id: str, target: Path) -> dict:
    """`bl data download -i ID -d DIR --jobs 1 --json`; wall time and the summary."""
    cmd = [str(OUR_BL), "data", "download", "-i", dataset_id, "-d", str(target), "--jobs", "1"]
    cmd.append("--json")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"our download failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = _summary(proc.stdout)
    if summary["bytes_total"] != GIB or summary["failed"]:
        raise RuntimeError(f"unexpected summary: {summary}")
    return {"wall": wall, "engine": summary["seconds"], "summary": summary}


def curl_one(url: str, target: Path, token: str | None = None) -> dict:
    cmd = ["curl", "-sSf", "-o", str(target), "-w", "%{size_download} %{speed_download}"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, url], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed ({proc.returncode}): {proc.stderr}")
    size, speed = proc.stdout.split()
    if int(size) != GIB:
        raise RuntimeError(f"curl got {size} bytes")
    return {"wall": wall, "curl_speed": float(speed)}


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def figure2(
    fx: ClientFixture, env: dict[str, str], server_url: str, token: str, base: Path, runs: int
) -> dict:
    """One 1 GiB object: ours vs curl<-nginx vs curl<-bl serve, writing under `base`."""
    big = fx.big_ids[0]
    root = Path(tempfile.mkdtemp(prefix="bench-nginx-root-", dir=OUT))
    root.chmod(0o755)  # nginx's worker (nobody) must read it; mkdtemp makes it 0700
    blob = blob_path(fx.data_dir, fx.big_sha256[big])
    try:
        try:
            os.link(blob, root / "data.bin")
        except OSError:
            (root / "data.bin").symlink_to(blob)
        with nginx(root) as ngx:
            shapes = {
                "ours": lambda t: ours_one(env, big, t),
                "curl_nginx": lambda t: curl_one(f"{ngx.url}/data.bin", t),
                "curl_bl_serve": lambda t: curl_one(
                    f"{server_url}/api/warehouse/dataset/file/{big}/data.bin", t, token
                ),
            }
            times: dict[str, list[dict]] = {name: [] for name in shapes}
            for k in range(runs + 1):  # the first round is the warm-up
                for name, fn in shapes.items():
                    target = base / f"{name}-{k}"
                    _sync()
                    # Let the previous run's deletion settle (the root filesystem is mounted
                    # with `discard`: freeing 1 GiB issues discards that otherwise land on
                    # whichever tool runs next; with the pause both tools see a quiet disk).
                    time.sleep(SETTLE_SECONDS)
                    res = fn(target)
                    if k == 0 and name == "ours":  # check the bytes once
                        got = sha256_file(target / big / "data.bin")
                        if got != fx.big_sha256[big]:
                            raise RuntimeError("our download has the wrong sha256")
                    _clear(target)
                    if k:
                        times[name].append(res)
                    say(f"1 GiB -> {base}: {name} {res['wall']:.2f} s" + (" (warm-up)" * (k == 0)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: median([r["wall"] for r in rs]) for name, rs in times.items()}
    eng = median([r["engine"] for r in times["ours"]])
    return {
        "target_dir": str(base),
        "runs": times,
        "median_wall": med,
        "median_engine_ours": eng,
        "gbs": {name: GIB / s / 1e9 for name, s in med.items()},
        "ratio_ours_curl_nginx": med["curl_nginx"] / med["ours"],
        "ratio_ours_engine_curl_nginx": med["curl_nginx"] / eng,
        "ratio_curl_bl_serve_curl_nginx": med["curl_nginx"] / med["curl_bl_serve"],
    }


def _tree_wchar(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("wchar:"):
                    total += int(line.split()[1])
        todo += _children(p)
    return total


def _kill_half_way(cmd: list[str], env: dict[str, str], watched: Path) -> float:
    """Start ``cmd`` and SIGKILL it once ``watched`` passes half a GiB; seconds until then."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    try:
        while proc.poll() is None and time.perf_counter() - t0 < 300:
            with contextlib.suppress(OSError):
                if watched.stat().st_size > GIB // 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = time.perf_counter() - t0
                    break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
    if killed_at is None:
        raise RuntimeError(f"the download ended ({proc.returncode}) before half way")
    return killed_at


def figure3(fx: ClientFixture, env: dict[str, str], server_pid: int, base: Path) -> dict:
    """kill -9 once the part file passes half the object, then resume."""
    big = fx.big_ids[1]
    target = base / "resume"
    part = target / big / "data.bin.bl-part"
    cmd = [str(OUR_BL), "data", "download", "-i", big, "-d", str(target), "--jobs", "1"]
    _sync()
    try:
        killed_at = _kill_half_way([*cmd, "--json"], env, part)
        kept = part.stat().st_size
        say(f"resume: killed at {killed_at:.2f} s with {kept:,} bytes in the part file")
        wchar0 = _tree_wchar(server_pid)
        t1 = time.perf_counter()
        rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t1
        server_wrote = _tree_wchar(server_pid) - wchar0
        if rerun.returncode != 0:
            raise RuntimeError(f"the rerun failed ({rerun.returncode}):\n{rerun.stderr[-3000:]}")
        summary = _summary(rerun.stdout)
        final = target / big / "data.bin"
        sha_ok = sha256_file(final) == fx.big_sha256[big]
        leftovers = sorted(str(p.relative_to(target)) for p in target.rglob("*.bl-part*"))
        resent = summary["bytes_transferred"] - (GIB - kept)
        say(f"resume: re-sent {resent:,} bytes; server wrote {server_wrote:,}; sha256 ok {sha_ok}")
        return {
            "size": GIB,
            "kept_at_kill": kept,
            "killed_after_s": killed_at,
            "rerun_wall": wall,
            "summary": summary,
            "resent_bytes": resent,
            "resent_fraction": resent / GIB,
            "server_wchar_rerun": server_wrote,
            "server_extra_fraction": (server_wrote - (GIB - kept)) / GIB,
            "sha256_ok": sha_ok,
            "leftover_parts": leftovers,
            "command": f"bl data download -i {big} -d DIR --jobs 1 --json",
        }
    finally:
        _clear(target)


def figure3_tar(fx: ClientFixture, home: Path, base: Path) -> dict:
    """Figure 3 through the tar route: `bl serve --no-extensions` (brainlife.io's routes only,
    so the object arrives as one tar, extracted as it streams), kill -9 once the member passes
    half the object, then resume (Range/If-Range into the member)."""
    import urllib.request

    big = fx.big_ids[2]
    target = base / "resume-tar"
    member = target / f"{big}.bl-partial" / "data.bin"
    with bl_serve(fx.data_dir, ["--no-extensions"]) as server:
        token = login(server.port, USERNAME, PASSWORD)
        env = {**cli_env(home, server.url), "BL_TOKEN": token}  # this port has no login file
        head = urllib.request.Request(
            f"{server.url}/api/warehouse/dataset/download/{big}",
            method="HEAD",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(head) as resp:
            tar_len = int(resp.headers["Content-Length"])
        cmd = [str(OUR_BL), "data", "download", "-i", big, "-d", str(target), "--jobs", "1"]
        _sync()
        try:
            killed_at = _kill_half_way([*cmd, "--json"], env, member)
            kept = member.stat().st_size
            say(f"resume (tar): killed at {killed_at:.2f} s with {kept:,} bytes of the member")
            rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
            if rerun.returncode != 0:
                raise RuntimeError(f"the tar rerun failed:\n{rerun.stderr[-3000:]}")
            summary = _summary(rerun.stdout)
            sha_ok = sha256_file(target / big / "data.bin") == fx.big_sha256[big]
            received = summary["bytes_resumed"] + summary["bytes_transferred"]
            resent = received - tar_len
            say(f"resume (tar): re-sent {resent:,} bytes; sha256 ok {sha_ok}")
            return {
                "tar_len": tar_len,
                "kept_at_kill": kept,
                "killed_after_s": killed_at,
                "summary": summary,
                "resent_bytes": resent,
                "resent_fraction": resent / tar_len,
                "sha256_ok": sha_ok,
                "leftovers": sorted(p.name for p in target.iterdir() if "bl-partial" in p.name),
                "command": f"bl data download -i {big} -d DIR --jobs 1 --json",
            }
        finally:
            _clear(target)


def figure4(fx: ClientFixture, env: dict[str, str], base: Path) -> dict:
    """5 x 1 GiB in one bulk run while the client's RSS is sampled every 100 ms."""
    target = base / "memory"
    cmd = [str(OUR_BL), "data", "download", "-p", fx.big_project, "-d", str(target), "--json"]
    _sync()
    try:
        out = base / "memory.out"
        with open(out, "w") as fh:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.PIPE, text=True)
            with RssSampler(proc.pid, 0.1) as sampler:
                _err = proc.communicate()[1]
            wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the 5 GiB download failed ({proc.returncode}):\n{_err[-3000:]}")
        summary = _summary(out.read_text())
        samples = [s for s in sampler.samples if s > 0]
        say(
            f"memory: {summary['bytes_total']:,} bytes in {wall:.1f} s, peak RSS "
            f"{max(samples) / 1024:.1f} MiB ({len(samples)} samples)"
        )
        return {
            "bytes": summary["bytes_total"],
            "objects": summary["objects"],
            "wall": wall,
            "summary": summary,
            "samples": len(samples),
            "peak_mib": max(samples) / 1024,
            "median_mib": median([s / 1024 for s in samples]),
            "peak_mb": max(samples) * 1024 / 1e6,
            "command": f"bl data download -p {fx.big_project} -d DIR --json",
        }
    finally:
        _clear(target)
        (base / "memory.out").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-shm", action="store_true")
    parser.add_argument("--only", default="2,3,4")
    opts = parser.parse_args()
    only = {int(x) for x in opts.only.split(",")}
    fx = ensure_fixture()
    base = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=OUT))
    shm = None
    if not opts.skip_shm and Path("/dev/shm").is_dir():
        shm = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir="/dev/shm"))
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": os.getloadavg()}
    try:
        with bl_serve(fx.data_dir) as server:
            home = base / "home"
            home.mkdir()
            env = cli_env(home, server.url)
            cli_login(OUR_BL, env)
            token = login(server.port, USERNAME, PASSWORD)
            if 2 in only:
                result["fig2_disk"] = figure2(fx, env, server.url, token, base, opts.runs)
                if shm is not None:
                    result["fig2_shm"] = figure2(fx, env, server.url, token, shm, opts.runs)
            if 3 in only:
                result["fig3"] = figure3(fx, env, server.pid, base)
                result["fig3_tar"] = figure3_tar(fx, home, base)
            if 4 in only:
                result["fig4"] = figure4(fx, env, base)
        result["load_after"] = os.getloadavg()
        path = save_json("client-transfer.json", result)
        say(f"transfer: results in {path}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
