"""`bl pub query`, `bl pub download`, `bl pub create` and `bl pub release`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from brainlife.cli import _output
from brainlife.cli._bulk import Transfer, download_bulk, transfer_options
from brainlife.cli._common import (
    datatype_options,
    get_client,
    json_flag,
    meta_options,
    packed_filter,
    page_options,
    query_options,
)

if TYPE_CHECKING:
    from brainlife.client import ReleaseFilter


@click.group()
def pub() -> None:
    """Query, download, create and release publications."""


@pub.command("query")
@query_options("publication id")
@click.option("-a", "--author", help="Publications by this user (name, username or email).")
@click.option("-d", "--doi", help="Text in the DOI.")
@page_options()
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


_doc_json_option = json_flag("Print the server's answer as JSON.")


@pub.command("create")
@click.option("-p", "--project", required=True, help="Project id or name (you must be an admin).")
@click.option("-n", "--name", required=True, help="Title of the publication.")
@click.option("--desc", help="Description.")
@click.option(
    "-a",
    "--author",
    "authors",
    multiple=True,
    help="Author: user id, username or name (repeatable, in order; default: you).",
)
@click.option("--contributor", "contributors", multiple=True, help="Contributor (repeatable).")
@click.option("--license", "license_", help="License, e.g. cc0, ccby.40.")
@click.option("--doi", help="A DOI the publication already has.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@_doc_json_option
def pub_create(
    project: str,
    name: str,
    desc: str | None,
    authors: tuple[str, ...],
    contributors: tuple[str, ...],
    license_: str | None,
    doi: str | None,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a publication of a project's data (then freeze data in it with 'bl pub
    release').

    \b
    bl pub create -p "Private demo" -n "Our 2026 paper" -a avesani --license cc0 --json
    """
    doc = get_client().create_pub(
        project=project,
        name=name,
        desc=desc,
        authors=authors,
        contributors=contributors,
        license=license_,
        doi=doi,
        tags=tags,
    )
    if as_json:
        _output.print_json(doc)
        return
    _output.out(f"Created publication {doc['_id']}: {doc.get('name')}")
    _output.out(
        f"Release data objects in it with: bl pub release {doc['_id']} --name 1 [--datatype ...]"
    )


@pub.command("release")
@click.argument("pub_id", metavar="PUB")
@click.option("-n", "--name", required=True, help="Name of the new release (e.g. 1, 2).")
@click.option("--desc", help="Description of the release.")
@datatype_options()
@meta_options(several=True)
@click.option("-i", "--id", "ids", multiple=True, help="Data object id (repeatable).")
@click.option(
    "--dry-run", is_flag=True, help="Show exactly what would be released; change nothing."
)
@_doc_json_option
@packed_filter(
    "ReleaseFilter",
    "datatype",
    "ids",
    datatype_tag="datatype_tags",
    tag="tags",
    subject="subjects",
    session="sessions",
    run="runs",
)
def pub_release(
    pub_id: str,
    name: str,
    desc: str | None,
    filters: ReleaseFilter,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Freeze the publication project's stored data objects that match the filters (those of
    'bl data query') as release NAME. A release never changes: its name cannot be reused and
    its objects can no longer be changed or deleted. Exit 3 when nothing matches, 9 when the
    name is taken.

    \b
    bl pub release 5f1e... --name 2 --datatype neuro/anat/t1w --tag '!bad' --dry-run
    bl pub release 5f1e... --name 2 --datatype neuro/anat/t1w --tag '!bad'
    """
    from brainlife.wire import is_object_id

    if not is_object_id(pub_id):
        raise click.BadParameter(
            f"'{pub_id}' is not a publication id (24 hexadecimal digits); 'bl pub query' lists "
            "publications.",
            param_hint="PUB",
        )
    doc = get_client().release_pub(pub_id, name, filters, desc=desc, dry_run=dry_run)
    if as_json:
        _output.print_json(doc)
        return
    for line in _output.release_lines(doc):
        _output.out(line)
