"""Server settings: one data directory holds the database, content store, keys and certificate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    """The per-user data folder (`BL_DATA_DIR` overrides it)."""
    env = os.environ.get("BL_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("brainlife-archive", appauthor=False))


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _env_bytes(name: str) -> bytes | None:
    value = os.environ.get(name)
    return value.encode() if value else None


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    #: SQLAlchemy URL; default: SQLite file in the data directory.
    database_url: str | None = None
    #: `iss` claim of the tokens this server signs.
    issuer: str = "bl-serve"
    #: Seconds a failed login waits before answering (slows down password guessing).
    failed_login_delay: float = 1.0
    #: Failed logins per (account, client address) within `lockout_window` seconds before that
    #: address's logins to that account are refused (429); see `services.auth`.
    max_failed_logins: int = 5
    #: Failed logins per client address (any accounts) within `lockout_window` before all that
    #: address's logins are refused.
    max_failed_logins_per_client: int = 30
    lockout_window: float = 15 * 60
    #: Bytes per chunk when streaming files. Downloads are paced to the write buffer, so a
    #: stream pins about one chunk. With 1 MiB, 50 concurrent downloads peaked anywhere from
    #: ~135 to 198 MiB RSS from run to run (too close to the 200 MB budget); 512 KiB keeps a
    #: margin and one stream still outruns nginx (bench/bench_download.py).
    chunk_size: int = 512 * 1024
    #: Serve our extension routes (per-object and batch manifests, per-file downloads, task
    #: manifests). False (`bl serve --no-extensions`) leaves only the routes brainlife.io has, so
    #: clients can be tried against brainlife.io's surface: ours then falls back to tars.
    extensions: bool = True
    #: Longest URL (path and query string, in bytes) a request may have: longer ones get 414.
    #: Clients send `find`/`select` as JSON in the query string (a `$in` of the 200 ids our client
    #: puts in one query is ~6.6 KB encoded); 16 KiB is Node's bound on a request head, so
    #: whatever brainlife.io (Node) takes, this takes too.
    max_url_bytes: int = 16 * 1024
    #: Largest request body, in bytes: larger ones get 413 before they are read (see `limits`).
    #: Every body the API takes is a small JSON object (a batch manifest of 1000 ids: ~30 KB).
    max_body_bytes: int = 256 * 1024
    #: Seconds one database statement of a request may run before it is stopped and answered
    #: with a 400 (`errors.QueryTimeout`): no query, however hostile, holds the server longer.
    #: Every real query of the demo and of a million-object archive takes well under a second.
    query_timeout: float = 5.0
    #: Query requests (the listing routes) one process works on at once; the others wait their
    #: turn holding no thread, connection or rows (`gate.QueryGate`). Per `--workers` process.
    query_slots: int = 4
    #: Let anyone create an account (`POST /api/auth/signup`, `bl serve --allow-signup`). Off:
    #: an archive's accounts are made by its admins (`bl admin user add`).
    allow_signup: bool = False
    #: Longest life of a token, in days: a login or refresh asking for more (`bl login --ttl`)
    #: gets this much. Tokens can be revoked before they expire (`bl admin token revoke`).
    max_token_days: float = 365.0
    #: Largest upload (`POST /api/amaretti/task/upload/:id`, the official CLI's tar.gz), in
    #: bytes as sent: larger ones get 413 (the `max_body_bytes` bound does not apply there).
    max_upload_bytes: int = 100 * 1024**3
    #: What an uploaded archive may unpack to: members (files, folders, links) and bytes. A
    #: gzip bomb or a million tiny files is refused (400) and nothing of it is kept.
    max_upload_members: int = 100_000
    max_upload_unpacked_bytes: int = 200 * 1024**3
    #: Seconds a finalize job waits, once marked running, before it stores the files: for test
    #: servers only (`BL_TEST_FINALIZE_PAUSE`), so that a test can kill the server mid-job.
    finalize_pause: float = 0.0
    #: Seconds between two passes of the finalize runner (jobs another worker process or
    #: replica left); test servers set it shorter (`BL_TEST_FINALIZE_POLL`).
    finalize_poll: float = 5.0
    #: Seconds a resumable upload session (`/api/warehouse/upload`, `bl data upload`) may stay
    #: idle before it and its staged bytes are removed (at start-up:
    #: `services.uploads.clean_uploads`).
    upload_expiry: float = 7 * 24 * 3600
    #: Largest resumable upload session (all its files together), in bytes.
    max_upload_session_bytes: int = 4 * 1024**4
    #: Largest project file (`PUT /api/warehouse/projectfile/...`, `bl project files put`), in
    #: bytes: larger ones get 413 and nothing is kept. Project files are documents, protocols,
    #: spreadsheets; data belongs in data objects.
    max_project_file_bytes: int = 5 * 1024**3

    #: Where file bytes live: None, the local store in the data directory; `s3://BUCKET[/PREFIX]`
    #: a bucket (`s3store`), with credentials and endpoint as boto3 reads them.
    store_url: str | None = None
    #: S3 endpoint overriding boto3's (`AWS_ENDPOINT_URL_S3`), e.g. http://127.0.0.1:7480.
    s3_endpoint: str | None = None
    #: Seconds a presigned URL of a per-file download lives: long enough to start the
    #: download (the client asks us again when one expires mid-file), short so a leaked URL
    #: soon stops working.
    presign_seconds: int = 300

    #: The RSA private key tokens are signed with, as PEM (`BL_SIGNING_KEY`), or a file holding
    #: it (`--key-file`, `BL_SIGNING_KEY_FILE`); neither: the data directory's own pair
    #: (`tokens.signing_keys`). Replicas that do not share a data directory share the key so.
    signing_key: bytes | None = field(
        default_factory=lambda: _env_bytes("BL_SIGNING_KEY"), repr=False
    )
    signing_key_file: Path | None = field(default_factory=lambda: _env_path("BL_SIGNING_KEY_FILE"))
    #: Addresses of the reverse proxies whose `X-Forwarded-For/-Proto/-Host` headers are
    #: believed (`--forwarded-allow-ips`, `proxy.ForwardedHeaders`): IPs or networks, or "*".
    #: Empty: no one's; the client address, scheme and host are the connection's.
    forwarded_allow_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'archive.sqlite3'}"

    @property
    def max_token_ms(self) -> float:
        return self.max_token_days * 24 * 3600 * 1000

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def tasks_dir(self) -> Path:
        return self.data_dir / "tasks"

    @property
    def uploads_dir(self) -> Path:
        """Staged bytes of open upload sessions (`services.uploads`)."""
        return self.data_dir / "uploads"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
