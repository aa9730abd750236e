"""`bl profile query`."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_option, query_options


@click.group()
def profile() -> None:
    """Query user profiles."""


@profile.command("query")
@query_options("user id (sub)", "the full name, email or username")
@json_option
def profile_query(id_: str | None, query: str | None, as_json: bool) -> None:
    """Query active user profiles."""
    rows = get_client().profiles(id=id_, query=query)
    if as_json:
        _output.print_json(rows)
        return
    _output.print_blocks([_output.profile_block(p) for p in rows], _output.returned(len(rows)))
