"""`bl login`, `bl logout`, `bl refresh`: the token shared with the official CLI."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import click

from brainlife.cli import _output
from brainlife.cli._common import F, get_client

#: the longest --ttl (the library's MAX_TTL_DAYS; `bl --help` does not import the library)
_MAX_TTL_DAYS = 100 * 366


def _a_number(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value != value:  # NaN passes FloatRange's comparisons
        raise click.BadParameter("nan is not a number of days.")
    return value


def _ttl_option(days: float, what: str) -> Callable[[F], F]:
    return click.option(
        "--ttl",
        type=click.FloatRange(min=0, max=_MAX_TTL_DAYS, min_open=True),
        default=days,
        show_default=True,
        callback=_a_number,
        help=f"How long {what} stays valid, in days.",
    )


@click.command()
@click.option("--username", help="Your brainlife username or email (else BL_USERNAME, else asked).")
@click.option(
    "--password",
    help="Your password (visible in the process list: prefer the prompt, "
    "--password-stdin or BL_PASSWORD).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (notebooks, CI).",
)
@_ttl_option(7, "the token")
def login(username: str | None, password: str | None, password_stdin: bool, ttl: float) -> None:
    """Log in and save the token to ~/.config/<BLHOST>/.jwt (shared with the official CLI)."""
    if password and password_stdin:
        raise click.UsageError("Use either --password or --password-stdin, not both.")
    interactive = sys.stdin.isatty()
    username = username or os.environ.get("BL_USERNAME") or None
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: standard input gave no password.")
        password = line
    password = password or os.environ.get("BL_PASSWORD") or None
    if not username:
        if not interactive:
            raise click.UsageError(
                "No terminal to ask for a username: pass --username (or set "
                "BL_USERNAME) and --password-stdin (or BL_PASSWORD)."
            )
        username = click.prompt("username")
    if password is None:
        if not interactive:
            raise click.UsageError(
                "No terminal to ask for the password: pass --password-stdin or set BL_PASSWORD."
            )
        password = click.prompt("password", hide_input=True)
    result = get_client().login(str(username), str(password), ttl_days=ttl)
    left = (result.expires.timestamp() - time.time()) if result.expires else ttl * 86400
    _output.out(f"Successfully logged in for {_output.duration(left)}")


@click.command()
def logout() -> None:
    """Forget the saved token (deletes ~/.config/<BLHOST>/.jwt)."""
    client = get_client()
    if client.logout():
        _output.out(f"Logged out (removed {client.config.token_path}).")
    else:
        _output.out(f"You were not logged in ({client.config.token_path} does not exist).")


@click.command()
@_ttl_option(1, "the new token")
def refresh(ttl: float) -> None:
    """Swap the saved (still valid) token for a fresh one."""
    get_client().refresh(ttl_days=ttl)
    _output.out("token refreshed")
