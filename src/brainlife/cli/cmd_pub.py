"""`bl pub query`."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._bulk import Transfer, download_bulk, transfer_options
from brainlife.cli._common import get_client, json_option, skip_limit_options


@click.group()
def pub() -> None:
    """Query publications (and their releases)."""


@pub.command("query")
@click.option("-i", "--id", "id_", help="Filter by publication id.")
@click.option("-q", "--query", help="Text in the name or description.")
@click.option("-a", "--author", help="Publications by this user (name, username or email).")
@click.option("-d", "--doi", help="Text in the DOI.")
@skip_limit_options()
@json_option
def pub_query(
    id_: str | None,
    query: str | None,
    author: str | None,
    doi: str | None,
    skip: int,
    limit: int,
    as_json: bool,
) -> None:
    """Query publications. Pass a release id to 'bl data query --pub' to list its data objects."""
    client = get_client()
    rows = client.pubs(id=id_, query=query, author=author, doi=doi, skip=skip, limit=limit)
    if as_json:
        _output.print_json(rows)
        return
    profiles = client.profiles_by_sub([s for p in rows for s in p.get("authors") or []])
    _output.print_blocks(
        [_output.pub_block(p, profiles) for p in rows], _output.returned(len(rows))
    )


@pub.command("download")
@click.argument("release")
@click.option("-d", "--directory", help="Folder to download into (default '.').")
@click.option("-b", "--subject", help="Only this subject (meta.subject).")
@click.option("--datatype", help="Only this datatype (name or id).")
@transfer_options
def pub_download(
    release: str,
    directory: str | None,
    subject: str | None,
    datatype: str | None,
    transfer: Transfer,
) -> None:
    """Download every data object of a publication release (ids from 'bl pub query'); the same
    engine as 'bl data download --pub RELEASE'."""
    from brainlife.wire import is_object_id

    if not is_object_id(release):
        raise click.BadParameter(
            f"'{release}' is not a release id (24 hexadecimal digits); 'bl pub query' lists "
            "publications with their release ids.",
            param_hint="RELEASE",
        )
    download_bulk(
        transfer,
        directory=directory,
        pub=release,
        subject=subject,
        datatype=datatype,
    )
