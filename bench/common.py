"""Helpers shared by the server benchmarks: `bl serve` and nginx processes, logins, HTTP on a
keep-alive connection, RSS sampling, statistics and the markdown section of RESULTS.md.

Everything here binds to 127.0.0.1 only and every process started is stopped by its context
manager (try/finally), also when a benchmark fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
PYTHON = sys.executable
NGINX = "/usr/sbin/nginx"

START = "<!-- server-benchmarks:start -->"
END = "<!-- server-benchmarks:end -->"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pin(pids: list[int], cores: set[int]) -> None:
    """Every thread of each process in ``pids`` on ``cores`` (threads started later inherit
    the process's main thread's affinity)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(task.name), cores)


def set_nice(nice: int) -> None:
    """This process (and the servers it starts) at `nice`. With the kernel's autogroups
    (`/proc/sys/kernel/sched_autogroup_enabled`), niceness only orders the processes of one
    session, and each session gets an equal share of the cores: the session's own nice value
    (`/proc/self/autogroup`) is set too, else a busy machine's other sessions (here: other
    engineers' test suites) leave the server a fraction of a core whatever its niceness."""
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def compile_sources() -> None:
    """Bytecode for brainlife's own modules, as a `pip install` writes it: the editable install
    in an environment with PYTHONDONTWRITEBYTECODE=1 (this machine's) never writes any, so each
    `bl` run a benchmark times would first compile ~200 modules (40-60 ms) that a user's
    installed `bl` loads from its cache. Python still reads bytecode under that setting, and
    recompiles in memory any module whose source changed since."""
    import compileall

    compileall.compile_dir(str(ROOT / "src"), quiet=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (/proc/<pid>/stat)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        todo += _children(p)
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    url: str
    port: int
    pid: int
    data_dir: Path
    command: list[str]


@contextlib.contextmanager
def bl_serve(data_dir: Path, extra: list[str] | None = None) -> Iterator[Server]:
    """A real `bl serve` process (one uvicorn worker, plain http on loopback)."""
    port = free_port()
    cmd = [PYTHON, "-m", "brainlife", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    cmd += extra or []
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL_")}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        wait_port(port, proc, log)
        yield Server(f"http://127.0.0.1:{port}", port, proc.pid, data_dir, cmd)
    except BaseException:
        say(f"bl serve log kept: {log}")
        raise
    else:
        log.unlink(missing_ok=True)
    finally:
        stop_process(proc)


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/x-tar tar; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@dataclass
class Nginx:
    url: str
    port: int
    pid: int
    root: Path


@contextlib.contextmanager
def nginx(root: Path) -> Iterator[Nginx]:
    """nginx serving the files of `root` (static, `sendfile on`, one worker) on loopback."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-", dir=OUT))
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root.resolve()))
    log = tmp / "stderr.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        wait_port(port, proc, log, timeout=20)
        yield Nginx(f"http://127.0.0.1:{port}", port, proc.pid, root)
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# --- HTTP --------------------------------------------------------------------------------------


class KeepAlive:
    """One persistent HTTP/1.1 connection (http.client), reopened if the server closes it."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        hdrs = dict(headers or {})
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                return resp.status, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def login(port: int, username: str, password: str) -> str:
    """A token from `POST /api/auth/local/auth`, as `bl login` gets one."""
    client = KeepAlive(port)
    try:
        status, body = client.request(
            "POST", "/api/auth/local/auth", {"username": username, "password": password}
        )
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body[:300]!r}")
    return str(json.loads(body)["jwt"])


# --- RSS ---------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += [
                    int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    except OSError:
        pass
    return kids


def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants, in KiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        todo += _children(p)
    return total


@dataclass
class RssSampler:
    """Samples the RSS of a process tree every `interval` seconds in a thread."""

    pid: int
    interval: float = 0.1
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(tree_rss_kib(self.pid))
            self._stop.wait(self.interval)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(tree_rss_kib(self.pid))

    @property
    def peak_mib(self) -> float:
        return max(self.samples, default=0) / 1024


# --- statistics and reporting -----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_notes() -> str:
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip("\n")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "src"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    curl_v = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; commit `{commit}`"
        + (
            " with uncommitted changes (the shared working tree) in "
            + ", ".join(
                f"`{line.split()[-1].removeprefix('src/brainlife/')}`"
                for line in dirty.splitlines()
            )
            if dirty
            else ""
        ),
        f"- `nproc`: {os.cpu_count()}; CPU: {platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}; {nginx_v}; {' '.join(curl_v.split()[:2])}",
        f"- load average when the report was written: {load} (other engineers' test suites "
        "share the machine; absolute figures move with it, same-run ratios less)",
        "- `free -h`:",
        "",
        "```",
        mem,
        "```",
    ]
    return "\n".join(lines)


def save_json(name: str, data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(data, indent=2))
    return path


def load_json(name: str) -> Any:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def write_section(markdown: str, start: str = START, end: str = END) -> None:
    """Replace the text between two markers of RESULTS.md (default: the server section); the
    rest of the file is kept byte for byte. The markers are appended when missing."""
    block = f"{start}\n{markdown.rstrip()}\n{end}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        rest_text = tail.lstrip("\n")
        text = head + block + ("\n" + rest_text if rest_text else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)


write_results_section = write_section


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def fmt_gbs(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e9:.2f}"
