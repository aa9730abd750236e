"""`bl datatype query`."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, page_options, query_options


@click.group()
def datatype() -> None:
    """Query datatypes."""


@datatype.command("query")
@query_options("datatype id")
@page_options(default_limit=None)
def datatype_query(
    id_: str | None, query: str | None, skip: int | None, limit: int | None, as_json: bool
) -> None:
    """Query datatypes (e.g. neuro/anat/t1w)."""
    rows = get_client().datatypes(id=id_, query=query, skip=skip, limit=limit)
    if as_json:
        _output.print_json(rows)
        return
    _output.print_blocks([_output.datatype_block(d) for d in rows], _output.returned(len(rows)))
