"""`bl serve`: run the archive server (needs the `server` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from brainlife.cli._common import data_dir_option, server_packages


@click.command()
@data_dir_option(
    "Folder holding the database, content store, keys and certificate "
    "(default: a per-user data folder, or $BL_DATA_DIR)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tls",
    is_flag=True,
    help="Serve HTTPS with a self-signed certificate "
    "(made on first start, kept in the data directory).",
)
@click.option(
    "--tls-name",
    "tls_names",
    multiple=True,
    metavar="NAME",
    help="A host name or IP address the --tls certificate is made for (repeatable; default: "
    "localhost, 127.0.0.1, ::1, this machine's host name and --host). An existing certificate "
    "lacking one is replaced.",
)
@click.option("--demo", is_flag=True, help="Fill an empty archive with the demo world first.")
@click.option(
    "--database-url",
    default=None,
    envvar="BL_DATABASE_URL",
    help="SQLAlchemy URL (default: SQLite in the data directory, or $BL_DATABASE_URL).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--no-extensions",
    is_flag=True,
    help="Serve only the routes brainlife.io has (no manifests or per-file downloads), "
    "to try clients against brainlife.io's surface.",
)
@click.option(
    "--query-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds one database statement of a request may run before it is stopped "
    "and answered with a 400 (default: 5).",
)
@click.option(
    "--query-slots",
    type=click.IntRange(1, 256),
    default=None,
    help="Listing requests each server process works on at once; more wait their turn, "
    "holding no memory (default: 4; see --workers).",
)
@click.option(
    "--allow-signup",
    is_flag=True,
    help="Let anyone create an account (brainlife's sign-up route). Off by default: accounts "
    "are made with 'bl admin user add'.",
)
@click.option(
    "--max-token-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Longest life of a token, in days (default 365): 'bl login --ttl' asking for "
    "more gets this much.",
)
@click.option(
    "--store",
    "store_url",
    metavar="s3://BUCKET[/PREFIX]",
    default=None,
    envvar="BL_STORE",
    help="Keep file bytes in an S3 bucket (made if missing) instead of the data directory; "
    "credentials and endpoint as boto3 reads them (AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3).",
)
@click.option(
    "--s3-endpoint",
    metavar="URL",
    default=None,
    help="S3 endpoint for --store (overrides AWS_ENDPOINT_URL_S3).",
)
@click.option(
    "--presign-seconds",
    type=click.IntRange(1, 7 * 24 * 3600),
    default=None,
    help="Life of the presigned URLs per-file downloads are redirected to (default 300).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="BL_SIGNING_KEY_FILE",
    default=None,
    help="PEM RSA private key to sign tokens with (default: the data directory's own, made on "
    "first start); replicas sharing it accept each other's tokens. Or $BL_SIGNING_KEY_FILE, "
    "or the PEM itself in $BL_SIGNING_KEY.",
)
@click.option(
    "--forwarded-allow-ips",
    multiple=True,
    metavar="IPS",
    envvar="BL_FORWARDED_ALLOW_IPS",
    help="Reverse proxies (IPs or networks, comma-separated, repeatable; * for any) whose "
    "X-Forwarded-For/-Proto/-Host are believed: the client address of the login limits, the "
    "URL in download scripts, Secure cookies. Default: none.",
)
def serve(**options: Any) -> None:
    """Start the archive server (brainlife.io's /api/auth, /api/warehouse, /api/amaretti)."""
    if options["s3_endpoint"] and not options["store_url"]:
        raise click.UsageError("--s3-endpoint goes with --store s3://BUCKET")
    with server_packages("bl serve"):
        from brainlife.server.serve import ServeOptions, run
    # the parameters are `ServeOptions`' fields: declared, typed and documented there; an
    # unusable database (the server's error) is rendered with every error, in `main`
    run(ServeOptions(**options))
