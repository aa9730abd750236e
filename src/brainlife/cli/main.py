"""`bl`: the root command. Sub-commands are imported only when they run, so `bl --help` and
`bl data query --help` start fast and never import the server (or HTTP, or rich).

Errors from the client library are turned into one ``Error: <message>`` line and an exit code
here, in one place (see EXIT_CODES); ``--debug`` (or BL_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

#: command name -> "module:attribute" (modules under brainlife.cli)
COMMANDS: dict[str, str] = {
    "admin": "cmd_admin:admin",
    "app": "cmd_app:app",
    "bids": "cmd_bids:bids",
    "data": "cmd_data:data",
    "dataset": "cmd_data:dataset",
    "datatype": "cmd_datatype:datatype",
    "login": "cmd_login:login",
    "logout": "cmd_login:logout",
    "profile": "cmd_profile:profile",
    "project": "cmd_project:project",
    "pub": "cmd_pub:pub",
    "refresh": "cmd_login:refresh",
    "resource": "cmd_resource:resource",
    "serve": "cmd_serve:serve",
    "task": "cmd_task:task",
    "token": "cmd_token:token",
    "version": "cmd_version:version",
}

if TYPE_CHECKING:
    from brainlife.client import BrainlifeError

#: error code (``BrainlifeError.code``) -> exit code; any other code exits 1, click usage
#: errors exit 2. The one place exit codes are decided.
EXIT_CODES: dict[str, int] = {
    "not-found": 3,
    "auth": 4,
    "permission": 4,
    "unavailable": 5,
    "gave-up": 5,  # the server stayed away for --give-up-after seconds (or Retry-After > 60 s)
    "protocol": 6,
    "checksum": 7,
    "disk-full": 8,
    "conflict": 9,  # HTTP 409: a release name already used, a released object, a removed one
    "upload-refused": 10,  # files that do not fit the datatype: nothing was sent
    "source-changed": 11,  # a file changed while it was uploaded: run again
}
EXIT_INTERRUPTED = 130

#: what the CLI adds to a library error's message for its ``hint`` (the library names no flags)
HINT_TEXT: dict[str, str] = {
    "give-up-after": "--give-up-after SECONDS sets how long bl keeps retrying.",
    "existing-overwrite": "Pass --existing overwrite to replace it.",
    "ignore-expiry": "Run 'bl refresh --ttl DAYS' or 'bl login --ttl DAYS' first, or pass "
    "--ignore-expiry.",
    "directory": "(-d/--directory chooses the folder.)",
    "output": "(-o/--output FILE names it.)",
    "layout": "Choose it with --layout; --dry-run shows the plan.",
    "ca-bundle": "On the command line: --ca-bundle <cert.pem>.",
}


def _is_debug(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("debug"):
        return True
    return os.environ.get("BL_DEBUG", "").lower() not in ("", "0", "false", "no")


def exit_code(code: str) -> int:
    """The exit code for an error code (``BrainlifeError.code``)."""
    return EXIT_CODES.get(code, 1)


def exit_code_of(codes: list[str] | set[str]) -> int:
    """The exit code of several failures: theirs when they agree, else 1."""
    exits = {exit_code(c) for c in codes}
    return exits.pop() if len(exits) == 1 else 1


def render(exc: BrainlifeError) -> str:
    """A library error as the CLI says it: the message, then its hint in flags."""
    hint = HINT_TEXT.get(exc.hint or "")
    return f"{exc} {hint}" if hint else str(exc)


def _database_unusable(exc: BaseException) -> int | None:
    """The exit code of the server's `DatabaseUnusable` (`bl serve`, `bl admin`: a database
    URL no driver takes, 1, or a database that does not answer, 5), else None. Read from the
    loaded module, never imported: the CLI does not import the server, and the error can only
    have been raised if the module was loaded."""
    archive = sys.modules.get("brainlife.server.archive")
    if archive is None or not isinstance(exc, archive.DatabaseUnusable):
        return None
    return exit_code("unavailable" if exc.unreachable else "config")


def _as_library_error(exc: BaseException) -> BrainlifeError | None:
    # imported here, on the error path only: `bl --help` never loads the client
    from brainlife.client import BrainlifeError

    return exc if isinstance(exc, BrainlifeError) else None


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
                "\nInterrupted: what can be continued is kept (a download's *.bl-partial and "
                "*.bl-part files, the bytes of an upload the server received); run the same "
                "command again to resume.",
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
            error = _as_library_error(exc)
            if error is not None:
                from brainlife.cli._output import err

                err(f"Error: {render(error)}")
                ctx.exit(exit_code(error.code))
            database = _database_unusable(exc)
            if database is not None:
                click.echo(f"Error: {exc}", err=True)
                ctx.exit(database)
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
    # a program embedding `bl` (or a test) may pass obj={"client": Client(...)} to use its own
    ctx.obj = {**(ctx.obj if isinstance(ctx.obj, dict) else {}), "debug": debug}
    ctx.obj["ca_bundle"] = ca_bundle


def main() -> None:
    cli(prog_name="bl")
