"""`bl`: the root command. Sub-commands are imported only when they run, so `bl --help` and
`bl data query --help` start fast and never import the server."""

from __future__ import annotations

import importlib
from typing import Any

import click

#: command name -> "module:attribute" (modules under brainlife.cli)
COMMANDS: dict[str, str] = {
    "serve": "cmd_serve:serve",
}


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


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="brainlife", prog_name="bl", message="%(version)s")
def cli() -> None:
    """brainlife for Python: query and download brainlife data objects, or serve an archive."""


def main() -> None:
    cli()
