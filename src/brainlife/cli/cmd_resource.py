"""`bl resource query`: the compute resources the caller may use, as the official CLI prints
them."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, page_options, query_options


@click.group()
def resource() -> None:
    """Query compute resources."""


@resource.command("query")
@query_options("resource id", "the resource's name or description")
@click.option("-t", "--status", help="Filter resources by status (e.g. ok).")
@click.option("-v", "--service", help="Resources that run this app (e.g. brainlife/app-stage).")
@page_options()
def resource_query(
    id_: str | None,
    query: str | None,
    status: str | None,
    service: str | None,
    skip: int,
    limit: int,
    as_json: bool,
) -> None:
    """Query compute resources."""
    rows = get_client().resources(
        id=id_, query=query, status=status, service=service, skip=skip, limit=limit
    )
    if as_json:
        _output.print_json(rows)
        return
    _output.print_resources(rows)
