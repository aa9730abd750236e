"""`bl project query`."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_option, skip_limit_options


@click.group()
def project() -> None:
    """Query projects."""


@project.command("query")
@click.option("-i", "--id", "id_", help="Filter by project id.")
@click.option("-q", "--query", help="Text in the name or description.")
@click.option("-a", "--admin", help="Projects this user (name, username or email) administers.")
@click.option("-m", "--member", help="Projects this user is a member of.")
@click.option("-g", "--guest", help="Projects this user is a guest of.")
@skip_limit_options()
@json_option
def project_query(
    id_: str | None,
    query: str | None,
    admin: str | None,
    member: str | None,
    guest: str | None,
    skip: int,
    limit: int,
    as_json: bool,
) -> None:
    """Query the projects you can see."""
    client = get_client()
    rows = client.projects(
        id=id_, query=query, admin=admin, member=member, guest=guest, skip=skip, limit=limit
    )
    if as_json:
        _output.print_json(rows)
        return
    profiles = client.profiles_by_sub(_output.project_subs(rows))
    _output.print_blocks(
        [_output.project_block(p, profiles) for p in rows], _output.returned(len(rows))
    )
