"""`bl`: the root command. Sub-commands are imported only when they run, so `bl --help` and
`bl data query --help` start fast and never import the server (or HTTP, or rich).

Errors from the client library are turned into one ``Error: <message>`` line and an exit code
here, in one place (see EXIT_CODES); ``--debug`` (or BL_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

#: command name -> "module:attribute" (modules under brainlife.cli)
COMMANDS: dict[str, str] = {
    "data": "cmd_data:data",
    "dataset": "cmd_data:dataset",
    "datatype": "cmd_datatype:datatype",
    "login": "cmd_login:login",
    "logout": "cmd_login:logout",
    "profile": "cmd_profile:profile",
    "project": "cmd_project:project",
    "pub": "cmd_pub:pub",
    "refresh": "cmd_login:refresh",
    "serve": "cmd_serve:serve",
    "task": "cmd_task:task",
    "version": "cmd_version:version",
}

#: exception class name (of brainlife.client) -> exit code; click usage errors exit 2.
EXIT_CODES: dict[str, int] = {
    "BrainlifeError": 1,
    "ApiError": 1,
    "ConfigError": 1,
    "NotFound": 3,
    "AuthError": 4,
    "PermissionDenied": 4,
    "ServerUnavailable": 5,
    "GaveUp": 5,  # the server stayed away for --give-up-after seconds (or Retry-After > 60 s)
    "ProtocolError": 6,
    "ChecksumMismatch": 7,
    "DiskFullError": 8,
}
EXIT_INTERRUPTED = 130


def _is_debug(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("debug"):
        return True
    return os.environ.get("BL_DEBUG", "").lower() not in ("", "0", "false", "no")


def _exit_code(exc: BaseException) -> int | None:
    """The exit code of a client-library error, None for anything else."""
    errors = sys.modules.get("brainlife.client._exceptions")
    if errors is None or not isinstance(exc, errors.BrainlifeError):
        return None
    for cls in type(exc).__mro__:
        if cls.__name__ in EXIT_CODES:
            return EXIT_CODES[cls.__name__]
    return 1


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            module = importlib.import_module(f"brainlife.cli.{module_name}")
            command: click.Command = getattr(module, attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if _is_debug(ctx):
                raise
            click.echo(
                "\nInterrupted: what can be continued is kept (*.bl-partial, *.bl-part); "
                "run the same command again to resume.",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # `bl ... | head`: the reader went away; say nothing more
            sys.stderr.close()
            ctx.exit(1)
        except Exception as exc:
            if _is_debug(ctx):
                raise
            code = _exit_code(exc)
            if code is not None:
                click.echo(f"Error: {exc}", err=True)
                ctx.exit(code)
            if isinstance(exc, OSError) and exc.strerror:
                where = f" ({exc.filename})" if exc.filename else ""
                click.echo(f"Error: {exc.strerror}{where}.", err=True)
                ctx.exit(1)
            click.echo(
                f"Error: unexpected failure ({type(exc).__name__}: {exc}). Run again "
                "with 'bl --debug ...' to see the traceback, and report it.",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    None, "-V", "--version", package_name="brainlife", prog_name="bl", message="%(version)s"
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="BL_DEBUG",
    help="Show the full traceback on errors (also BL_DEBUG=1).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=False),
    envvar="BL_CA_BUNDLE",
    help="PEM file of extra CA certificates to trust, e.g. the certificate of "
    "'bl serve --tls' (also BL_CA_BUNDLE; NODE_EXTRA_CA_CERTS is honoured too).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, ca_bundle: str | None) -> None:
    """brainlife for Python: query and download brainlife data objects, or serve an archive.

    The server is BLHOST (default brainlife.io, https; 'http://host:port' as given); the token
    of 'bl login' is shared with the official CLI (~/.config/<BLHOST>/.jwt).
    """
    ctx.obj = {"debug": debug, "ca_bundle": ca_bundle}


def main() -> None:
    cli(prog_name="bl")
