"""What `bl serve` runs: open (and migrate) the archive, maybe build the demo, start uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from brainlife.server.settings import Settings

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


def _settings(
    data_dir: Path | None,
    database_url: str | None,
    extensions: bool = True,
    query_timeout: float | None = None,
    allow_signup: bool = False,
    max_token_days: float | None = None,
    store_url: str | None = None,
    s3_endpoint: str | None = None,
    presign_seconds: int | None = None,
    key_file: Path | None = None,
    forwarded_allow_ips: tuple[str, ...] = (),
    query_slots: int | None = None,
) -> Settings:
    kwargs: dict[str, Any] = {
        "forwarded_allow_ips": forwarded_allow_ips,
        "store_url": store_url,
        "s3_endpoint": s3_endpoint,
        "database_url": database_url,
        "extensions": extensions,
        "allow_signup": allow_signup,
    }
    if max_token_days is not None:
        kwargs["max_token_days"] = max_token_days
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if query_timeout is not None:
        kwargs["query_timeout"] = query_timeout
    if presign_seconds is not None:
        kwargs["presign_seconds"] = presign_seconds
    if key_file is not None:
        kwargs["signing_key_file"] = key_file.expanduser().resolve()
    if query_slots is not None:
        kwargs["query_slots"] = query_slots
    delay = _failed_login_delay()
    if delay is not None:
        kwargs["failed_login_delay"] = delay
    pause = _test_seconds(FINALIZE_PAUSE_ENV)
    if pause is not None:
        kwargs["finalize_pause"] = pause
    return Settings(**kwargs)


def app_factory() -> Any:
    """Used by uvicorn when several workers run (settings travel in the environment)."""
    from brainlife.server.app import create_app

    _password_cost()
    return create_app(
        _settings(
            None,
            os.environ.get("BL_DATABASE_URL") or None,
            extensions=os.environ.get("BL_NO_EXTENSIONS") != "1",
            query_timeout=float(os.environ["BL_QUERY_TIMEOUT"])
            if os.environ.get("BL_QUERY_TIMEOUT")
            else None,
            allow_signup=os.environ.get("BL_ALLOW_SIGNUP") == "1",
            max_token_days=float(os.environ["BL_MAX_TOKEN_DAYS"])
            if os.environ.get("BL_MAX_TOKEN_DAYS")
            else None,
            store_url=os.environ.get("BL_STORE") or None,
            s3_endpoint=os.environ.get("BL_S3_ENDPOINT") or None,
            presign_seconds=int(os.environ["BL_PRESIGN_SECONDS"])
            if os.environ.get("BL_PRESIGN_SECONDS")
            else None,
            forwarded_allow_ips=_forwarded_allow_ips(
                [os.environ.get(FORWARDED_ALLOW_IPS_ENV) or ""]
            ),
            query_slots=int(os.environ["BL_QUERY_SLOTS"])
            if os.environ.get("BL_QUERY_SLOTS")
            else None,
        )
    )


#: `--forwarded-allow-ips` as the environment gives it (the flag's default, and how it travels
#: to `--workers` processes)
FORWARDED_ALLOW_IPS_ENV = "BL_FORWARDED_ALLOW_IPS"


def _forwarded_allow_ips(values: list[str]) -> tuple[str, ...]:
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


def run(
    *,
    data_dir: Path | None,
    host: str,
    port: int,
    tls: bool,
    demo: bool,
    database_url: str | None,
    workers: int = 1,
    extensions: bool = True,
    tls_names: list[str] | None = None,
    query_timeout: float | None = None,
    allow_signup: bool = False,
    max_token_days: float | None = None,
    store_url: str | None = None,
    s3_endpoint: str | None = None,
    presign_seconds: int | None = None,
    key_file: Path | None = None,
    forwarded_allow_ips: list[str] | None = None,
    query_slots: int | None = None,
) -> None:
    import uvicorn

    from brainlife.server.app import create_app
    from brainlife.server.archive import open_archive

    settings = _settings(
        data_dir,
        database_url,
        extensions,
        query_timeout,
        allow_signup,
        max_token_days,
        store_url,
        s3_endpoint,
        presign_seconds,
        key_file,
        _forwarded_allow_ips(forwarded_allow_ips or []),
        query_slots,
    )
    cost = _password_cost()
    from brainlife.server.tokens import SigningKeyError

    if store_url:
        from brainlife.server.s3store import StoreUnavailable, parse_store_url

        try:
            parse_store_url(store_url)
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
    if store_url:
        say(f"bl serve: file bytes in {store_url} (per-file downloads redirect to it)")
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
    if demo:
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
    _first_admin_hint(archive, settings, database_url, say)
    if allow_signup:
        say("bl serve: sign-up is on: anyone reaching this server can create an account")
    ssl: dict[str, Any] = {}
    scheme = "http"
    if tls:
        from brainlife.server.tls import default_names, ensure_certificate

        names = tls_names or default_names(host)
        cert, key, replaced = ensure_certificate(settings.data_dir / "tls", names)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        scheme = "https"
        if replaced:
            say(
                f"bl serve: replaced the TLS certificate ({replaced}); clients that trusted "
                "the old one must be given the new one"
            )
        say(f"bl serve: TLS certificate {cert} for {', '.join(names)}")
        say(f"  official CLI: export BLHOST={host}:{port} NODE_EXTRA_CA_CERTS={cert}")
        say(f"  our bl:       export BLHOST=https://{host}:{port} BL_CA_BUNDLE={cert}")
    else:
        say(f"  our bl:       export BLHOST=http://{host}:{port}")
    if not extensions:
        say("bl serve: extension routes off (manifests, per-file downloads): brainlife.io's only")
    say(f"bl serve: listening on {scheme}://{host}:{port} (Ctrl-C stops)")
    from brainlife.server.httpproto import BoundedHttpToolsProtocol

    common = {
        "http": BoundedHttpToolsProtocol,
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 30,
        # the forwarded headers are ours to read, from trusted proxies only (`proxy`)
        "proxy_headers": False,
        **ssl,
    }
    if workers > 1:
        os.environ["BL_DATA_DIR"] = str(settings.data_dir)
        if database_url:
            os.environ["BL_DATABASE_URL"] = database_url
        if not extensions:
            os.environ["BL_NO_EXTENSIONS"] = "1"
        if query_timeout is not None:
            os.environ["BL_QUERY_TIMEOUT"] = str(query_timeout)
        if allow_signup:
            os.environ["BL_ALLOW_SIGNUP"] = "1"
        if max_token_days is not None:
            os.environ["BL_MAX_TOKEN_DAYS"] = str(max_token_days)
        if store_url:
            os.environ["BL_STORE"] = store_url
        if s3_endpoint:
            os.environ["BL_S3_ENDPOINT"] = s3_endpoint
        if presign_seconds is not None:
            os.environ["BL_PRESIGN_SECONDS"] = str(presign_seconds)
        if settings.signing_key_file is not None and settings.signing_key is None:
            os.environ["BL_SIGNING_KEY_FILE"] = str(settings.signing_key_file)
        if settings.forwarded_allow_ips:
            os.environ[FORWARDED_ALLOW_IPS_ENV] = ",".join(settings.forwarded_allow_ips)
        if query_slots is not None:
            os.environ["BL_QUERY_SLOTS"] = str(query_slots)
        archive.engine.dispose()
        uvicorn.run("brainlife.server.serve:app_factory", factory=True, workers=workers, **common)
    else:
        uvicorn.run(create_app(settings, archive=archive), **common)
