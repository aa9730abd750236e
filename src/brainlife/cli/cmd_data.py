"""`bl data query` and `bl data download` (alias `bl dataset`); `update` and `delete` are in
`cmd_data_curation`, `bl data upload` in `cmd_upload`."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brainlife.cli import _output
from brainlife.cli._bulk import Transfer, download_bulk, read_ids, transfer_options
from brainlife.cli._common import (
    F,
    datatype_options,
    get_client,
    json_flag,
    meta_options,
    option_set,
    packed_filter,
    page_options,
)
from brainlife.cli.cmd_data_curation import data_delete, data_update
from brainlife.cli.cmd_project_files import download_path, list_s3

if TYPE_CHECKING:
    from brainlife.client import DatasetFilter


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


def _hint_command(params: dict[str, Any], *, limit: bool = True) -> str:
    """The command that was run, for a hint to add flags to; ``limit=False`` leaves its
    ``--limit`` out (the hint gives its own)."""
    words = ["bl", "data", "query"]
    for name, flag in _HINT_FLAGS:
        value = params.get(name)
        if name == "limit" and (value == 100 or not limit):
            continue
        for item in value if isinstance(value, tuple | list) else [value]:
            if item is not None and item != "":
                words += [flag, shlex.quote(str(item))]
    return " ".join(words)


def _filter_options(*, short_datatype: bool) -> Callable[[F], F]:
    """The filters of `bl data query`, and of bulk downloads (where `-d` is the folder)."""
    return option_set(
        click.option("-q", "--query", help="Text in the name or description."),
        datatype_options(short=short_datatype),
        click.option("-p", "--project", help="Project id or name."),
        meta_options(),
        click.option("--taskid", help="Id of the task that produced the data objects."),
    )


#: the filter options (`_filter_options` and ``--pub``) named as `DatasetFilter`'s fields
_FILTER_PARAMS = ("query", "datatype", "project", "pub", "subject", "session", "run", "taskid")
_RENAMED = {"datatype_tag": "datatype_tags", "tag": "tags"}


@data.command("query")
@click.option("-i", "--id", "id_", help="Filter by data object id.")
@_filter_options(short_datatype=True)
@click.option("-u", "--pub", help="Publication release id.")
@click.option("--s3", is_flag=True, help="List the project's plain files (with -p) instead.")
@click.option("--path", "s3_path", help="With --s3: the folder to list (default: the root).")
@page_options()
@packed_filter("DatasetFilter", *_FILTER_PARAMS, id_="id", **_RENAMED)
def data_query(
    filters: DatasetFilter, s3: bool, s3_path: str | None, skip: int, limit: int, as_json: bool
) -> None:
    """Query data objects (or, with -p P --s3 [--path FOLDER], list the project's files)."""
    if s3 or s3_path is not None:
        if not filters.project:
            raise click.UsageError("--s3 lists a project's files: give the project with -p.")
        list_s3(filters.project, s3_path, as_json)
        return
    client = get_client()
    page = client.query_datasets(filters, skip=skip, limit=limit)
    rows = page.datasets
    if not rows and filters.pub:
        _publication_not_release(client, filters.pub)
    if as_json:
        _output.print_json(rows)  # the official stdout; what it leaves out is said on stderr
        if page.count is not None and skip + len(rows) < page.count:
            params = click.get_current_context().params
            hint, unpaged = _hint_command(params), _hint_command(params, limit=False)
            _output.err(
                f"Note: {page.count} data objects match, {len(rows)} printed (from {skip}). "
                f"All of them: '{unpaged} --limit 0 --json'; the next page: '{hint} --skip "
                f"{skip + len(rows)} --json'."
            )
        return
    # only what this page needs, not every project, datatype and profile of the archive
    projects = client.projects_by_id([str(d.get("project") or "") for d in rows])
    datatypes = client.datatypes_by_id([str(d.get("datatype") or "") for d in rows])
    profiles = client.profiles_by_sub(_output.project_subs(projects.values()))
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
@click.option(
    "-i", "--id", "id_", multiple=True, help="Id of a data object (repeatable: bulk download)."
)
@click.option(
    "-d",
    "--directory",
    help="Folder to download into. One object: default its id; missing parent folders are "
    "created and an existing folder gets the files merged in. Bulk: the root (default '.').",
)
@_filter_options(short_datatype=False)
@click.option("-u", "--pub", help="Publication release id (bulk: every object of the release).")
@click.option(
    "--ids-from",
    metavar="FILE|-",
    help="Bulk: ids from a file or stdin: one or more per line, or the JSON of "
    "'bl data query --json'.",
)
@click.option(
    "--lock",
    "lock",
    type=click.Path(dir_okay=False),
    help="Bulk: fetch exactly the set recorded in this bl-lock.json again (into its folder, "
    "or -d).",
)
@click.option(
    "-l", "--limit", type=click.IntRange(min=0), default=0, help="Bulk: at most this many objects."
)
@click.option(
    "--path",
    "files_path",
    help="With -p: a project file (docs/a.pdf), or a folder (docs/; '' for all) to download.",
)
@transfer_options
@packed_filter("DatasetFilter", *_FILTER_PARAMS, **_RENAMED)
def data_download(
    args: tuple[str, ...],
    id_: tuple[str, ...],
    directory: str | None,
    filters: DatasetFilter,
    ids_from: str | None,
    lock: str | None,
    limit: int,
    files_path: str | None,
    transfer: Transfer,
) -> None:
    """Download one data object into a folder, or (with filters, several ids, --ids-from,
    --pub or --lock) every matching object under -d DIR.

    \b
    bl data download 5a050ad5d76a2a002737e572 [DIR]
    bl data download -p 5b0dad8041711001e958b519 --datatype neuro/tractprofile \\
        --layout seed -d 2019_tractprofile
    bl data query -p O3D --limit 0 --json | bl data download --ids-from - --dry-run
    bl data download --lock 2019_tractprofile/bl-lock.json
    bl data download -p O3D --path docs/ [-d DIR]   (project files: a file, or a folder/)

    One object lands in DIRECTORY.bl-partial first and is moved into place only once complete.
    A bulk download resumes where it stopped, skips files that verify, fetches identical content
    once (hard links) and writes DIR/bl-lock.json (see 'bl data verify').
    """
    if files_path is not None:
        if not filters.project:
            raise click.UsageError("--path downloads a project's files: give the project with -p.")
        download_path(filters.project, files_path, directory, transfer.jobs, transfer.as_json)
        return
    has_filters = bool(filters.given())
    ids, directory = _ids_and_directory(
        list(args), list(id_), directory, bool(ids_from or lock or has_filters)
    )
    _check_release(filters.pub)
    if not _is_bulk(transfer, has_filters or bool(ids_from or lock) or len(ids) > 1):
        if not ids:
            raise click.UsageError(
                "Which data object? Pass its id (bl data download <id>), or filters such as "
                "-p PROJECT for a bulk download."
            )
        _single(ids[0], directory, transfer)
        return
    if ids_from:
        ids += [i for i in read_ids(ids_from) if i not in ids]
        if not ids and not has_filters:
            raise click.UsageError(f"No data object ids found in {ids_from}.")
    if lock and (ids or has_filters):
        raise click.UsageError("--lock fetches the lockfile's set: it goes without filters or ids.")
    download_bulk(
        transfer,
        directory=directory,
        ids=ids,
        lock=lock,
        limit=limit or None,
        **filters.given(),
    )


def _ids_and_directory(
    positional: list[str], ids: list[str], directory: str | None, other_source: bool
) -> tuple[list[str], str | None]:
    """The ids given (-i, or a first positional id) and the folder (-d, or the next positional
    argument), every id checked."""
    from brainlife.wire import is_object_id

    if not ids and positional and is_object_id(positional[0]):
        ids.append(positional.pop(0))
    elif not ids and positional and not other_source:
        raise click.BadParameter(
            f"'{positional[0]}' is not a data object id (24 hexadecimal digits); "
            "'bl data query' lists them.",
            param_hint="ID",
        )
    if positional and directory is None:
        directory = positional.pop(0)
    if positional:
        raise click.UsageError(f"Unexpected extra argument(s): {' '.join(positional)}.")
    for oid in ids:
        if not is_object_id(oid):
            raise click.BadParameter(
                f"'{oid}' is not a data object id (24 hexadecimal digits).", param_hint="ID"
            )
    return ids, directory


def _publication_not_release(client: Any, pub: str) -> None:
    """--pub given a publication's id (an easy slip: `bl pub create` prints that one) matches
    nothing; say so on stderr, with the releases to use, instead of a bare "0 results"."""
    pubs = client.pubs(id=pub, limit=1)
    if not pubs:
        return
    releases = [r for r in pubs[0].get("releases") or [] if not r.get("removed")]
    use = ", ".join(f"--pub {r.get('_id')} (release {r.get('name') or '?'})" for r in releases)
    _output.err(
        f"Note: {pub} is a publication, not a release: "
        + (f"query one of its releases: {use}." if use else "it has no release yet.")
    )


def _check_release(pub: str | None) -> None:
    from brainlife.wire import is_object_id

    if pub is not None and not is_object_id(pub):
        raise click.BadParameter(
            f"'{pub}' is not a release id (24 hexadecimal digits); 'bl pub query' lists "
            "publications with their release ids.",
            param_hint="--pub",
        )


def _is_bulk(transfer: Transfer, many: bool) -> bool:
    """Whether the command is a bulk download: many objects, or a bulk-only option given."""
    ctx = click.get_current_context()
    explicit = any(
        ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        for name in ("jobs", "existing", "ignore_expiry")
    )
    return many or bool(transfer.layout) or transfer.dry_run or explicit


def _single(id_: str, directory: str | None, transfer: Transfer) -> None:
    target = Path(directory or id_)
    if not transfer.as_json:
        _output.out(f"Download dataset to {target}")
    with _output.progress_bar(f"{id_}") as progress:
        result = get_client().download_dataset(id_, target, progress=progress, jobs=transfer.jobs)
    if transfer.as_json:
        _output.print_json(result.to_json())
    else:
        _output.out("100% done")


@data.command("verify")
@click.argument("directory", default=".", type=click.Path(exists=True))
@click.option(
    "--fast", is_flag=True, help="Trust files whose size and mtime match the lockfile (no hashing)."
)
@json_flag("The report as JSON.")
def data_verify(directory: str, fast: bool, as_json: bool) -> None:
    """Check a bulk download offline against its bl-lock.json: every file's size and sha256, and
    files that do not belong. Exit 0 when all is well, 7 when anything is corrupt, missing,
    extra or incomplete (rerun 'bl data download --lock DIR/bl-lock.json' to repair)."""
    from brainlife.client import verify_download

    report = verify_download(directory, fast=fast)
    if as_json:
        _output.print_json(report.to_json())
    else:
        for p in report.problems:
            _output.out(f"{p.kind}: {p.message}")
        j = report.to_json()
        verdict = "OK" if report.ok else "FAILED"
        _output.out(
            f"{verdict}: {j['objects']} data objects, {j['files']} files, "
            f"{_output.human(j['bytes'])} checked; {j['corrupt']} corrupt, {j['missing']} "
            f"missing, {j['extra']} extra, {j['incomplete']} incomplete"
        )
    if not report.ok:
        click.get_current_context().exit(7)


data.add_command(data_update)
data.add_command(data_delete)

dataset = click.Group(
    "dataset",
    commands=dict(data.commands),
    help="Query and download data objects (alias of 'bl data').",
)


def _register_upload() -> None:
    # `bl data upload` lives in its own module (cmd_upload)
    from brainlife.cli.cmd_upload import data_upload

    data.add_command(data_upload)


_register_upload()
