"""What `bl serve` runs: open (and migrate) the archive, maybe build the demo, start uvicorn."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from brainlife.server.settings import Settings

_N = TypeVar("_N", int, float)

#: Seconds a failed login waits (`Settings.failed_login_delay`), for test servers only: a test
#: that sends many wrong passwords (the schema fuzzer, the lockout tests) sets it to 0 rather than
#: sleep through the delay. Never set it on a served archive: the delay slows password guessing.
FAILED_LOGIN_DELAY_ENV = "BL_TEST_FAILED_LOGIN_DELAY"
#: Argon2 cost profile for new password hashes (`services.auth.PASSWORD_COSTS`), for test
#: servers only: "test" makes each login of a test cost microseconds instead of a quarter
#: second of CPU. Never set it on a served archive: cheap hashes are cheap to guess.
PASSWORD_COST_ENV = "BL_TEST_PASSWORD_COST"


#: Seconds a finalize job pauses once running (`Settings.finalize_pause`), for test servers
#: only: the restart tests kill the server while a job is running.
FINALIZE_PAUSE_ENV = "BL_TEST_FINALIZE_PAUSE"
#: Seconds between two passes of the finalize runner over the jobs table
#: (`Settings.finalize_poll`, 5 by default), for test servers only: the replica tests wait for
#: another replica's runner to take over a job.
FINALIZE_POLL_ENV = "BL_TEST_FINALIZE_POLL"


def _test_seconds(name: str, most: float = 600, hint: str = "") -> float | None:
    """The seconds a test server sets in `name` (0 to `most`); None when unset."""
    text = os.environ.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:
        raise SystemExit(
            f"Error: {name}={text!r} must be a number of seconds from 0 to {most:g}{hint}."
        )
    return value


def _failed_login_delay() -> float | None:
    return _test_seconds(
        FAILED_LOGIN_DELAY_ENV,
        most=60,
        hint=" (it is for test servers; unset it to keep the default delay)",
    )


def _password_cost() -> str | None:
    """The cost profile `PASSWORD_COST_ENV` names, applied to this process; None when unset."""
    from brainlife.server.services.auth import PASSWORD_COSTS, use_password_cost

    name = os.environ.get(PASSWORD_COST_ENV)
    if not name:
        return None
    if name not in PASSWORD_COSTS:
        raise SystemExit(
            f"Error: {PASSWORD_COST_ENV}={name!r} must be one of {', '.join(PASSWORD_COSTS)} "
            "(it is for test servers; unset it to keep the default cost)."
        )
    use_password_cost(name)
    return name


@dataclass(frozen=True)
class ServeOptions:
    """`bl serve`'s options as its command parsed them (the field names are its parameter
    names), in one typed object: the CLI cannot import the server at module level, so the
    options are declared here, once, and travel whole from the command to `run` and
    `_settings` (or, for `--workers` processes, through the environment: `app_factory`)."""

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    tls: bool = False
    tls_names: tuple[str, ...] = ()
    demo: bool = False
    database_url: str | None = None
    workers: int = 1
    no_extensions: bool = False
    query_timeout: float | None = None
    query_slots: int | None = None
    allow_signup: bool = False
    max_token_days: float | None = None
    store_url: str | None = None
    s3_endpoint: str | None = None
    presign_seconds: int | None = None
    key_file: Path | None = None
    forwarded_allow_ips: tuple[str, ...] = ()


def _settings(options: ServeOptions) -> Settings:
    kwargs: dict[str, Any] = {
        "forwarded_allow_ips": _forwarded_allow_ips(options.forwarded_allow_ips),
        "store_url": options.store_url,
        "s3_endpoint": options.s3_endpoint,
        "database_url": options.database_url,
        "extensions": not options.no_extensions,
        "allow_signup": options.allow_signup,
    }
    if options.max_token_days is not None:
        kwargs["max_token_days"] = options.max_token_days
    if options.data_dir is not None:
        kwargs["data_dir"] = options.data_dir
    if options.query_timeout is not None:
        kwargs["query_timeout"] = options.query_timeout
    if options.presign_seconds is not None:
        kwargs["presign_seconds"] = options.presign_seconds
    if options.key_file is not None:
        kwargs["signing_key_file"] = options.key_file.expanduser().resolve()
    if options.query_slots is not None:
        kwargs["query_slots"] = options.query_slots
    delay = _failed_login_delay()
    if delay is not None:
        kwargs["failed_login_delay"] = delay
    pause = _test_seconds(FINALIZE_PAUSE_ENV)
    if pause is not None:
        kwargs["finalize_pause"] = pause
    poll = _test_seconds(FINALIZE_POLL_ENV, most=60)
    if poll is not None:
        kwargs["finalize_poll"] = max(poll, 0.05)
    return Settings(**kwargs)


def app_factory() -> Any:
    """Used by uvicorn when several workers run (settings travel in the environment)."""
    from brainlife.server.app import create_app

    _password_cost()
    env = os.environ.get
    return create_app(
        _settings(
            ServeOptions(
                database_url=env("BL_DATABASE_URL") or None,
                no_extensions=env("BL_NO_EXTENSIONS") == "1",
                query_timeout=_number(float, env("BL_QUERY_TIMEOUT")),
                allow_signup=env("BL_ALLOW_SIGNUP") == "1",
                max_token_days=_number(float, env("BL_MAX_TOKEN_DAYS")),
                store_url=env("BL_STORE") or None,
                s3_endpoint=env("BL_S3_ENDPOINT") or None,
                presign_seconds=_number(int, env("BL_PRESIGN_SECONDS")),
                forwarded_allow_ips=(env(FORWARDED_ALLOW_IPS_ENV) or "",),
                query_slots=_number(int, env("BL_QUERY_SLOTS")),
            )
        )
    )


def _number(kind: Callable[[str], _N], text: str | None) -> _N | None:
    """An option `run` put in the environment for `--workers` processes; None when unset."""
    return kind(text) if text else None


#: `--forwarded-allow-ips` as the environment gives it (the flag's default, and how it travels
#: to `--workers` processes)
FORWARDED_ALLOW_IPS_ENV = "BL_FORWARDED_ALLOW_IPS"


def _forwarded_allow_ips(values: Iterable[str]) -> tuple[str, ...]:
    from brainlife.server.proxy import parse_trusted

    try:
        return parse_trusted(values)
    except ValueError as exc:
        raise SystemExit(f"Error: {exc}") from None


def _seed(archive: Any) -> None:
    """brainlife's datatype catalogue, in every archive `bl serve` opens (`catalogue`)."""
    from brainlife.server.catalogue import seed_catalogue

    with archive.session() as session:
        seed_catalogue(session)


def _first_admin_hint(archive: Any, settings: Settings, database_url: str | None, say: Any) -> None:
    """An archive without accounts says how to make the first one (`bl admin`)."""
    from brainlife.server.services.accounts import count_users

    with archive.session() as session:
        if count_users(session):
            return
    where = (
        f"--database-url '{database_url}'" if database_url else f"--data-dir {settings.data_dir}"
    )
    say("bl serve: this archive has no accounts yet; make its first admin with:")
    say(f"  bl admin {where} user add NAME --email EMAIL --admin --password-stdin")
    say("  (then 'bl login --username NAME'; run 'bl serve --demo' for a demo world instead)")


def _check_port(host: str, port: int) -> None:
    """Stop with one line when ``host:port`` cannot be listened on (taken by another server,
    a privileged port, an address not of this machine), before saying it is listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, where = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(where)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SystemExit(
            f"Error: Cannot listen on {host}:{port}: {reason} (another server on that port?); "
            "choose another with --port (or --host)."
        ) from None


def run(options: ServeOptions) -> None:
    """Open (and migrate) the archive `options` name, maybe build the demo, serve it."""
    import uvicorn

    from brainlife.server.app import create_app
    from brainlife.server.archive import open_archive

    settings = _settings(options)
    cost = _password_cost()
    from brainlife.server.tokens import SigningKeyError

    if options.store_url:
        from brainlife.server.s3store import StoreUnavailable, parse_store_url

        try:
            parse_store_url(options.store_url)
            archive = open_archive(settings)
        except (ValueError, StoreUnavailable) as exc:
            raise SystemExit(f"Error: {exc}") from None
    else:
        try:
            archive = open_archive(settings)
        except SigningKeyError as exc:
            raise SystemExit(f"Error: {exc}") from None
    _seed(archive)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if cost not in (None, "default"):
        say(
            f"WARNING: new passwords are hashed at the {cost!r} Argon2 cost "
            f"({PASSWORD_COST_ENV}, meant for test servers)"
        )
    say(f"bl serve: data directory {settings.data_dir}")
    if options.store_url:
        say(f"bl serve: file bytes in {options.store_url} (per-file downloads redirect to it)")
    if settings.signing_key is not None:
        say("bl serve: tokens signed with the key of BL_SIGNING_KEY")
    elif settings.signing_key_file is not None:
        say(f"bl serve: tokens signed with the key of {settings.signing_key_file}")
    if settings.forwarded_allow_ips:
        say(
            "bl serve: X-Forwarded-For/-Proto/-Host believed from "
            + ", ".join(settings.forwarded_allow_ips)
        )
    if settings.failed_login_delay != Settings.failed_login_delay:
        say(
            f"WARNING: failed logins are answered after {settings.failed_login_delay:g} s "
            f"({FAILED_LOGIN_DELAY_ENV}, meant for test servers)"
        )
    if options.demo:
        from brainlife.server.demo import DEMO_ACCOUNTS, DemoIncomplete, build_demo

        with archive.session() as session:
            try:
                built = build_demo(session, archive)
            except DemoIncomplete as exc:
                raise SystemExit(f"Error: {exc}") from None
        say("bl serve: demo world " + ("built" if built else "already present, reused"))
        say(
            "WARNING: demo accounts, for the demo only (password = username): "
            + ", ".join(DEMO_ACCOUNTS)
        )
    _first_admin_hint(archive, settings, options.database_url, say)
    if options.allow_signup:
        say("bl serve: sign-up is on: anyone reaching this server can create an account")
    address = f"{options.host}:{options.port}"
    ssl: dict[str, Any] = {}
    scheme = "http"
    if options.tls:
        from brainlife.server.tls import default_names, ensure_certificate

        names = list(options.tls_names) or default_names(options.host)
        cert, key, replaced = ensure_certificate(settings.data_dir / "tls", names)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        scheme = "https"
        if replaced:
            say(
                f"bl serve: replaced the TLS certificate ({replaced}); clients that trusted "
                "the old one must be given the new one"
            )
        say(f"bl serve: TLS certificate {cert} for {', '.join(names)}")
        say(f"  official CLI: export BLHOST={address} NODE_EXTRA_CA_CERTS={cert}")
        say(f"  our bl:       export BLHOST=https://{address} BL_CA_BUNDLE={cert}")
    else:
        say(f"  our bl:       export BLHOST=http://{address}")
    if options.no_extensions:
        say("bl serve: extension routes off (manifests, per-file downloads): brainlife.io's only")
    _check_port(options.host, options.port)
    say(f"bl serve: listening on {scheme}://{address} (Ctrl-C stops)")
    from brainlife.server.httpproto import BoundedHttpToolsProtocol

    common = {
        "http": BoundedHttpToolsProtocol,
        "host": options.host,
        "port": options.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 30,
        # the forwarded headers are ours to read, from trusted proxies only (`proxy`)
        "proxy_headers": False,
        **ssl,
    }
    if options.workers > 1:
        os.environ["BL_DATA_DIR"] = str(settings.data_dir)
        if options.database_url:
            os.environ["BL_DATABASE_URL"] = options.database_url
        if options.no_extensions:
            os.environ["BL_NO_EXTENSIONS"] = "1"
        if options.query_timeout is not None:
            os.environ["BL_QUERY_TIMEOUT"] = str(options.query_timeout)
        if options.allow_signup:
            os.environ["BL_ALLOW_SIGNUP"] = "1"
        if options.max_token_days is not None:
            os.environ["BL_MAX_TOKEN_DAYS"] = str(options.max_token_days)
        if options.store_url:
            os.environ["BL_STORE"] = options.store_url
        if options.s3_endpoint:
            os.environ["BL_S3_ENDPOINT"] = options.s3_endpoint
        if options.presign_seconds is not None:
            os.environ["BL_PRESIGN_SECONDS"] = str(options.presign_seconds)
        if settings.signing_key_file is not None and settings.signing_key is None:
            os.environ["BL_SIGNING_KEY_FILE"] = str(settings.signing_key_file)
        if settings.forwarded_allow_ips:
            os.environ[FORWARDED_ALLOW_IPS_ENV] = ",".join(settings.forwarded_allow_ips)
        if options.query_slots is not None:
            os.environ["BL_QUERY_SLOTS"] = str(options.query_slots)
        archive.engine.dispose()
        uvicorn.run(
            "brainlife.server.serve:app_factory", factory=True, workers=options.workers, **common
        )
    else:
        uvicorn.run(create_app(settings, archive=archive), **common)
