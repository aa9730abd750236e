"""Shared fixtures.

- `settings` / `archive` / `app` / `http`: a fresh, empty archive per test (a copy of
  `empty_archive_dir`), served in-process (Starlette's TestClient).
- `demo_archive_dir`: the demo world built once per session into a folder (treat as read-only).
- `live_server`: a real `bl serve` process on a real socket over a copy of the demo archive.
- `tls_live_server`: the same with `--tls`.

The two live servers are session-scoped (one each per xdist worker) and shared by every module
that only reads the demo world; a module that changes its server's data (or kills it, or sends
many wrong passwords) starts its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import pgdb, s3mode

#: the Argon2 cost profile (`brainlife.server.services.auth.PASSWORD_COSTS`) of every test
#: process and test server
TEST_PASSWORD_COST = "test"


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> None:
    """Passwords hashed in the test processes (the demo build, users the tests make) cost
    microseconds: each login of a test then does too (a hash is verified at its own cost), where
    the default cost took a quarter second of CPU per login. The default cost is pinned by
    tests/server/test_serve_env.py."""
    from brainlife.server.services.auth import use_password_cost

    use_password_cost(TEST_PASSWORD_COST)


@pytest.fixture(scope="session", autouse=True)
def _postgresql_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """With BL_TEST_DATABASE_URL, every archive lives in PostgreSQL (see tests/pgdb.py)."""
    if pgdb.ADMIN_URL is None:
        yield
        return
    from brainlife.server.settings import Settings

    original = Settings.db_url

    def db_url(self: Settings) -> str:
        return self.database_url or pgdb.database_url(self.data_dir)

    Settings.db_url = property(db_url)  # type: ignore[method-assign,assignment]
    yield
    Settings.db_url = original  # type: ignore[method-assign]
    # this process's databases; the demo's, shared by the xdist workers (demo_archive_dir),
    # stays for the workers still running (scripts/test purges the whole cluster)
    pgdb.drop_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session", autouse=True)
def _s3_run() -> Iterator[None]:
    """With BL_TEST_STORE_URL, every archive keeps its bytes in the bucket (tests/s3mode.py)."""
    if s3mode.STORE_URL is None:
        yield
        return
    from brainlife.server.settings import Settings

    def get(self: Settings) -> str | None:
        given = self.__dict__.get("_test_store_url")
        return given if given is not None else s3mode.store_url(self.data_dir)

    def put(self: Settings, value: str | None) -> None:
        self.__dict__["_test_store_url"] = value

    Settings.store_url = property(get, put)  # type: ignore[assignment]
    yield
    Settings.store_url = None  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _postgresql_test_databases(tmp_path: Path) -> Iterator[None]:
    yield
    if pgdb.ADMIN_URL is not None:
        pgdb.drop_under(tmp_path)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's real login or server settings."""
    for name in list(os.environ):
        if name.startswith("BL_") or name in ("BLHOST", "NODE_EXTRA_CA_CERTS"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture
def settings(tmp_path: Path):
    from brainlife.server.settings import Settings

    return Settings(data_dir=tmp_path / "data", failed_login_delay=0.0)


@pytest.fixture(scope="session")
def empty_archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty archive (database migrated to head, key pair, store and task folders), made once
    per test process: `archive` starts each test from a copy of it. Opening a new folder runs
    every migration and makes an RSA key pair, ~0.2 s of CPU that hundreds of tests paid each;
    opening a copy finds the database at head and the keys in place. The tests of migrations
    and of key creation open folders of their own."""
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("empty-archive") / "data"
    open_archive(Settings(data_dir=data_dir)).engine.dispose()
    if s3mode.STORE_URL is not None:
        s3mode.forget(data_dir)  # its bucket prefix holds nothing: each copy gets its own
    return data_dir


@pytest.fixture
def archive(settings, empty_archive_dir: Path):
    from brainlife.server.archive import open_archive

    if not settings.data_dir.exists():
        shutil.copytree(empty_archive_dir, settings.data_dir)
    arch = open_archive(settings)
    yield arch
    arch.engine.dispose()


@pytest.fixture
def app(archive):
    from brainlife.server.app import create_app

    return create_app(archive=archive)


@pytest.fixture
def http(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def demo_archive_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The demo world, built once per run (copy it before writing to it).

    Under pytest-xdist the workers share one build: the first to take the lock builds it into
    the run's common temporary folder, the others wait and reuse it (building it costs seconds
    of fsync and Argon2 on each worker otherwise). `.built` is written last, so a folder
    without it (a build that failed) is built again."""
    if worker_id == "master":
        root = tmp_path_factory.mktemp("demo")
    else:
        root = tmp_path_factory.getbasetemp().parent / "demo-shared"
        root.mkdir(exist_ok=True)
    data_dir = root / "data"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".built").exists():
            shutil.rmtree(data_dir, ignore_errors=True)
            _build_demo(data_dir)
            (root / ".built").touch()
    return data_dir


def _build_demo(data_dir: Path) -> None:
    from brainlife.server.archive import open_archive
    from brainlife.server.demo import build_demo
    from brainlife.server.settings import Settings

    arch = open_archive(Settings(data_dir=data_dir))
    with arch.session() as session:
        build_demo(session, arch)
    arch.engine.dispose()


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    port: int
    cert: Path | None = None

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server(
    data_dir: Path,
    *,
    tls: bool = False,
    extra: list[str] | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    start_timeout: float = 60.0,
) -> LiveServer:
    """A real `bl serve` on a free port; `env` adds to the environment it inherits. Its new
    password hashes (the dummy one of unknown users) are cheap ones, like the test process's.
    `start_timeout`: seconds it may take to listen (a `--demo` build on remote stores is slow)."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "brainlife",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        *(extra or []),
    ]
    if pgdb.ADMIN_URL is not None and "--database-url" not in cmd:
        cmd += ["--database-url", pgdb.database_url(data_dir)]
    if s3mode.STORE_URL is not None and "--store" not in cmd:
        cmd += ["--store", s3mode.store_url(data_dir)]
    if tls:
        cmd.append("--tls")
    log = open(data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115
    from brainlife.server.serve import PASSWORD_COST_ENV

    env = {**os.environ, PASSWORD_COST_ENV: TEST_PASSWORD_COST, **(env or {})}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"bl serve exited: {(data_dir.parent / f'server-{port}.log').read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"bl serve did not start within {start_timeout:.0f} s")
    cert = data_dir / "tls" / "cert.pem" if tls else None
    return LiveServer(url=url, data_dir=data_dir, process=proc, port=port, cert=cert)


def kill_and_restart(server: LiveServer, extra: list[str] | None = None) -> LiveServer:
    """SIGKILL the server (no clean shutdown) and start it again on the same port and data."""
    server.process.kill()
    server.process.wait()
    return start_server(server.data_dir, port=server.port, extra=extra)


def stop_server(server: LiveServer) -> None:
    """Stop it as Ctrl-C would (SIGTERM, a clean shutdown), killing it after 10 s.

    Clients this process made and dropped may still hold idle keep-alive connections to it: a
    TLS server's shutdown waits for each one's TLS close, which a dropped connection never sends,
    so the server would sit out the 10 s. Collecting them first closes their sockets."""
    gc.collect()
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextlib.contextmanager
def served_copy(
    archive_dir: Path, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[LiveServer]:
    """A real `bl serve` (plain http) over a private copy of `archive_dir`, for a fixture whose
    tests may change its world; stopped on exit."""
    data_dir = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(archive_dir, data_dir)
    server = start_server(data_dir)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def live_server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real `bl serve` (plain http) over a private copy of the demo archive."""
    with served_copy(demo_archive_dir, tmp_path_factory, "live") as server:
        yield server


@pytest.fixture(scope="session")
def tls_live_server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real `bl serve --tls` over a private copy of the demo archive, read-only like
    `live_server`: our CLI's certificate tests and the official CLI's read-only modules share it
    (a start costs ~1.5 s of CPU, a copy of the demo and a new certificate)."""
    data_dir = tmp_path_factory.mktemp("live-tls") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    server = start_server(data_dir, tls=True)
    yield server
    stop_server(server)


def make_token(archive, username: str, ttl_ms: float = 3600_000) -> str:
    """A token for an existing user, signed by the archive (as a login would give)."""
    from brainlife.server.services.auth import issue_token_for

    with archive.session() as session:
        return issue_token_for(session, archive, username, ttl_ms=ttl_ms)


#: The modules whose tests take longest on one worker (measured: `pytest -n 2 --durations=0`,
#: setup + call + teardown summed per module), first: see `pytest_collection_modifyitems`. Only
#: an order: a module missing here still runs, in collection order after these.
SLOWEST_FIRST = (
    "tests/s3/test_admin_migrate.py",  # 801 s at load average ~15 (wall, summed over its tests)
    "tests/server/test_schemathesis.py",  # 440 s
    "tests/e2e/test_empty_archive.py",  # 292 s
    "tests/deploy/test_replicas.py",  # 283 s
    "tests/deploy/test_nginx.py",  # 261 s
    "tests/server/test_dataset_totals.py",  # 178 s
    "tests/compat/test_official_upload.py",  # 174 s
    "tests/e2e/test_release_loop.py",  # 164 s
    "tests/compat/test_every_command.py",  # 152 s
    "tests/s3/test_s3_postgres_demo.py",  # 144 s
    "tests/server/test_demo.py",  # 142 s
    "tests/e2e/test_new_archive_path.py",  # 131 s
    "tests/web/test_browser.py",  # 122 s
    "tests/compat/test_official_apps.py",  # 122 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scheduling under xdist (`--dist loadscope --no-loadscope-reorder`, pyproject.toml): a
    module's tests stay on one worker (its own `bl serve` starts once), and the modules are
    handed out in collection order, which this makes the slowest first (`SLOWEST_FIRST`), then
    the others as collected: the many short modules at the end fill both workers' ends, so they
    finish together. With xdist's default reorder (by number of tests, most first) the slowest
    modules, which have one or two tests, were handed out last: one worker ran
    test_schemathesis alone for its last ~15 minutes. (`--dist loadgroup` would let the modules
    without a fixture of their own go test by test, but xdist 3.8 sets the group on
    `item._nodeid`, which pytest 9 no longer reads: the groups are silently not formed.)"""
    slow = {path: rank for rank, path in enumerate(SLOWEST_FIRST)}

    def order(indexed: tuple[int, pytest.Item]) -> tuple[int, int]:
        index, item = indexed
        return (slow.get(item.nodeid.split("::")[0], len(slow)), index)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]
