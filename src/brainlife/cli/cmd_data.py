"""`bl data query` and `bl data download` (alias `bl dataset`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_option, skip_limit_options


@click.group()
def data() -> None:
    """Query and download data objects."""


#: option name -> long flag, in the order a pagination hint repeats them
_HINT_FLAGS = (
    ("id_", "--id"),
    ("query", "--query"),
    ("datatype", "--datatype"),
    ("datatype_tag", "--datatype_tag"),
    ("tag", "--tag"),
    ("project", "--project"),
    ("pub", "--pub"),
    ("subject", "--subject"),
    ("session", "--session"),
    ("run", "--run"),
    ("taskid", "--taskid"),
    ("limit", "--limit"),
)


def _hint_command(params: dict[str, Any]) -> str:
    words = ["bl", "data", "query"]
    for name, flag in _HINT_FLAGS:
        value = params.get(name)
        if name == "limit" and value == 100:
            continue
        for item in value if isinstance(value, tuple | list) else [value]:
            if item is not None and item != "":
                words += [flag, shlex.quote(str(item))]
    return " ".join(words)


@data.command("query")
@click.option("-i", "--id", "id_", help="Filter by data object id.")
@click.option("-q", "--query", help="Text in the name or description.")
@click.option("-d", "--datatype", help="Datatype name (e.g. neuro/anat/t1w) or id.")
@click.option(
    "--datatype_tag",
    "--datatype-tag",
    "datatype_tag",
    multiple=True,
    help="Datatype tag (repeatable; '!tag' excludes).",
)
@click.option("--tag", multiple=True, help="Tag (repeatable; '!tag' excludes).")
@click.option("-p", "--project", help="Project id or name.")
@click.option("-u", "--pub", help="Publication release id.")
@click.option("-b", "--subject", help="Subject (meta.subject).")
@click.option("--session", help="Session (meta.session).")
@click.option("--run", help="Run (meta.run).")
@click.option("--taskid", help="Id of the task that produced the data objects.")
@skip_limit_options()
@json_option
def data_query(
    id_: str | None,
    query: str | None,
    datatype: str | None,
    datatype_tag: tuple[str, ...],
    tag: tuple[str, ...],
    project: str | None,
    pub: str | None,
    subject: str | None,
    session: str | None,
    run: str | None,
    taskid: str | None,
    skip: int,
    limit: int,
    as_json: bool,
) -> None:
    """Query data objects."""
    client = get_client()
    page = client.query_datasets(
        id=id_,
        query=query,
        datatype=datatype,
        datatype_tags=datatype_tag,
        tags=tag,
        project=project,
        pub=pub,
        subject=subject,
        session=session,
        run=run,
        taskid=taskid,
        skip=skip,
        limit=limit,
    )
    rows = page.datasets
    if as_json:
        _output.print_json(rows)
        return
    # only what this page needs, not every project, datatype and profile of the archive
    projects = client.projects_by_id([str(d.get("project") or "") for d in rows])
    datatypes = client.datatypes_by_id([str(d.get("datatype") or "") for d in rows])
    subs = [
        s
        for p in projects.values()
        for k in ("admins", "members", "guests")
        for s in p.get(k) or []
    ]
    profiles = client.profiles_by_sub(subs)
    blocks = [
        _output.dataset_block(
            d, projects.get(str(d.get("project"))), datatypes.get(str(d.get("datatype"))), profiles
        )
        for d in rows
    ]
    hint = _hint_command(click.get_current_context().params)
    _output.print_blocks(blocks, _output.dataset_footer(len(rows), page.count, skip, limit, hint))


@data.command("download")
@click.argument("args", nargs=-1, metavar="[ID] [DIRECTORY]")
@click.option("-i", "--id", "id_", help="Id of the data object to download.")
@click.option(
    "-d",
    "--directory",
    help="Folder to download into (default: the id). Missing "
    "parent folders are created; an existing folder gets the files merged in.",
)
@json_option
def data_download(
    args: tuple[str, ...], id_: str | None, directory: str | None, as_json: bool
) -> None:
    """Download a data object into a folder.

    The files land in DIRECTORY.bl-partial first and are moved into place only once complete
    (and verified, with our server), so an interrupted download never looks finished.
    """
    from brainlife.wire import is_object_id

    positional = list(args)
    if id_ is None:
        if not positional:
            raise click.UsageError("Which data object? Pass its id: bl data download <id>.")
        id_ = positional.pop(0)
    if positional and directory is None:
        directory = positional.pop(0)
    if positional:
        raise click.UsageError(f"Unexpected extra argument(s): {' '.join(positional)}.")
    if not is_object_id(id_):
        raise click.BadParameter(
            f"'{id_}' is not a data object id (24 hexadecimal digits).", param_hint="ID"
        )
    target = Path(directory or id_)
    if not as_json:
        _output.out(f"Download dataset to {target}")
    with _output.progress_bar(f"{id_}") as progress:
        result = get_client().download_dataset(id_, target, progress=progress)
    if as_json:
        _output.print_json(result.to_json())
    else:
        _output.out("100% done")


dataset = click.Group(
    "dataset",
    commands=dict(data.commands),
    help="Query and download data objects (alias of 'bl data').",
)
