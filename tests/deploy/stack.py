"""The deployment of docs/deploy.md on one machine, for tests/deploy and bench/load_replicas.py:
`bl serve` replicas on one PostgreSQL database sharing one data folder and signing key, behind
nginx run from the repository's deploy/nginx/bl-archive.conf (rendered into a temporary folder,
run as the current user, never as a system service), with TLS.

Every process started here is stopped by the caller (`stop_nginx`, `tests.conftest.stop_server`)
by its own handle, never by name."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import LiveServer, free_port, start_server

ROOT = Path(__file__).parents[2]
SITE = ROOT / "deploy/nginx/bl-archive.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

#: the demo's project O3D and its T1-weighted datatype (the objects `add_objects` makes)
O3D = "5b0dad8041711001e958b519"
T1W = "58c33bcee13a50849b25879a"

#: nginx's main configuration around the site file: a private prefix, logs and temp folders;
#: each access line says which replica answered and how (`upstream_status`)
MAIN = """\
{user}worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    log_format bl '$remote_addr "$request" $status $body_bytes_sent '
                  'up=$upstream_addr ups=$upstream_status rt=$request_time';
    access_log {folder}/access.log bl;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""


def render_site(
    *, listen_https: int, listen_http: int, cert: Path, key: Path, replicas: list[str]
) -> str:
    """deploy/nginx/bl-archive.conf with its placeholders filled, as the docs' sed does."""
    text = SITE.read_text()
    values = {
        "@SERVER_NAME@": "localhost",
        "@LISTEN_HTTPS@": f"127.0.0.1:{listen_https}",
        "@LISTEN_HTTP@": f"127.0.0.1:{listen_http}",
        "@CERT@": str(cert),
        "@CERT_KEY@": str(key),
        "@REPLICA_1@": replicas[0],
        "@REPLICA_2@": replicas[1],
    }
    for name, value in values.items():
        assert name in text, f"{SITE} lost its placeholder {name}"
        text = text.replace(name, value)
    left = re.findall(r"@[A-Z0-9_]+@", text)
    assert not left, f"unfilled placeholders {left}"
    return text


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    folder: Path
    port: int
    http_port: int
    cert: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def access_lines(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def error_lines(self) -> list[str]:
        path = self.folder / "error.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def certificate(folder: Path) -> tuple[Path, Path]:
    from brainlife.server.tls import ensure_certificate

    cert, key, _ = ensure_certificate(folder, ["localhost", "127.0.0.1"])
    return cert, key


def start_nginx(folder: Path, replicas: list[str]) -> Nginx:
    """nginx with the repository's site file in front of `replicas` ("127.0.0.1:PORT")."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = certificate(folder / "tls")
    port, http_port = free_port(), free_port()
    site = folder / "bl-archive.conf"
    site.write_text(
        render_site(listen_https=port, listen_http=http_port, cert=cert, key=key, replicas=replicas)
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""  # its workers may read our folders
    conf = folder / "nginx.conf"
    conf.write_text(MAIN.format(user=user, folder=folder, site=site))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(folder), "-c", str(conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(folder / 'stderr.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("nginx did not start within 30 s") from None
            time.sleep(0.05)
    return Nginx(process=proc, folder=folder, port=port, http_port=http_port, cert=cert)


def stop_nginx(server: Nginx) -> None:
    server.process.terminate()  # its master stops its workers
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def replica_args(url: str, key_file: Path) -> list[str]:
    """What docs/deploy.md gives each replica: the database, the key, nginx's address."""
    return [
        "--database-url",
        url,
        "--key-file",
        str(key_file),
        "--forwarded-allow-ips",
        "127.0.0.1",
    ]


def start_replica(
    data_dir: Path, url: str, key_file: Path, port: int | None = None, **kw: object
) -> LiveServer:
    return start_server(data_dir, extra=replica_args(url, key_file), port=port, **kw)  # type: ignore[arg-type]


def restart_replica(server: LiveServer, url: str, key_file: Path) -> LiveServer:
    """The replica started again on its port (after it was killed)."""
    return start_replica(server.data_dir, url, key_file, port=server.port)


def add_objects(data_dir: Path, url: str, count: int, size: int, seed: str) -> dict[str, str]:
    """`count` T1-weighted objects of `size` pseudo-random bytes each in O3D, stored through the
    real ingest; returns {object id: sha256 of its t1.nii.gz}."""
    from brainlife.server.archive import open_archive
    from brainlife.server.ids import new_object_id
    from brainlife.server.models import Dataset
    from brainlife.server.services.ingest import store_dataset_files
    from brainlife.server.settings import Settings

    archive = open_archive(Settings(data_dir=data_dir, database_url=url))
    made: dict[str, str] = {}
    try:
        for n in range(count):
            block = hashlib.sha256(f"{seed}/{n}".encode()).digest() * (1 << 15)  # 1 MiB
            chunks = [block[: min(len(block), size - i)] for i in range(0, size, len(block))]
            with archive.session() as s:
                ds = Dataset(
                    id=new_object_id(),
                    project_id=O3D,
                    datatype_id=T1W,
                    status="storing",
                    desc=f"replica load {seed} {n}",
                    subject=f"load{n:03d}",
                    create_date=datetime.now(UTC),
                    meta={"subject": f"load{n:03d}"},
                    extra={},
                )
                s.add(ds)
                s.commit()
                store_dataset_files(s, archive, ds, [("t1.nii.gz", iter(chunks))])
                digest = hashlib.sha256()
                for c in chunks:
                    digest.update(c)
                made[ds.id] = digest.hexdigest()
    finally:
        archive.engine.dispose()
    return made


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
