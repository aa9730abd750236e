"""`bl task query` and `bl task download`: files of processes (amaretti tasks).

``bl task download --group 851 --service brainlife/app-freesurfer --status finished \\
--path freesurfer/output/stats --name-by subject`` is the document's Python script as a command.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast

import click

from brainlife.cli import _output
from brainlife.cli._common import (
    F,
    get_client,
    give_up_option,
    json_option,
    option_set,
    page_options,
)


@click.group()
def task() -> None:
    """Query tasks (processes) and download their files."""


def _task_find(
    group: str | None,
    service: str | None,
    branch: str | None,
    status: str | None,
    find: str | None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if group:
        doc["_group_id"] = int(group) if group.isdigit() else group
    if service:
        doc["service"] = service
    if branch:
        doc["service_branch"] = branch
    if status:
        doc["status"] = status
    if find:
        try:
            extra = json.loads(find)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--find") from None
        if not isinstance(extra, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--find")
        doc.update(extra)
    return doc


_FILTER_OPTIONS = option_set(
    click.option(
        "--group", metavar="GROUP_ID", help="Project group id (_group_id; see the project page)."
    ),
    click.option("--service", help="Service (App repository), e.g. brainlife/app-freesurfer."),
    click.option("--branch", help="Service branch (service_branch)."),
    click.option("--status", help="Task status (e.g. finished)."),
    click.option(
        "--find", "find", metavar="JSON", help="Extra Mongo filter as a JSON object, merged in."
    ),
)


def _filters(f: F) -> F:
    """--group, --service, --branch, --status, --find: given to the command as one Mongo
    ``task_find`` (empty when none is given), as `_bulk.transfer_options` gives a `Transfer`."""

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = {
            name: kwargs.pop(name) for name in ("group", "service", "branch", "status", "find")
        }
        return f(*args, task_find=_task_find(**given), **kwargs)

    return _FILTER_OPTIONS(cast(F, command))


@task.command("query")
@click.option("-i", "--id", "id_", help="Filter by task id.")
@_filters
@click.option("--select", help="Fields to return, space separated (e.g. 'config._inputs.meta').")
@page_options()
def task_query(
    id_: str | None,
    task_find: dict[str, Any],
    select: str | None,
    skip: int,
    limit: int,
    as_json: bool,
) -> None:
    """Query tasks you can see (yours, and your projects')."""
    query = {"_id": id_, **task_find} if id_ else task_find
    rows = get_client().tasks(query, select=select, skip=skip, limit=limit)
    if as_json:
        _output.print_json(rows)
        return
    _output.print_blocks([_output.task_block(t) for t in rows], _output.returned(len(rows)))


@task.command("download")
@click.argument("task_id", required=False)
@click.argument("path", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="File to save to (default: the server's file name, in DIRECTORY).",
)
@click.option(
    "-d",
    "--directory",
    type=click.Path(file_okay=False),
    help="Folder to save (or with --extract, extract) into.",
)
@click.option(
    "-x", "--extract", is_flag=True, help="Extract a folder's .tar.gz instead of saving it."
)
@_filters
@click.option(
    "--path",
    "bulk_path",
    metavar="PATH",
    help="Bulk mode: the path to download from every matching task.",
)
@click.option(
    "--name-by",
    type=click.Choice(["subject", "id"]),
    default="id",
    show_default=True,
    help="Bulk mode: name each download <subject>.tar.gz or <taskid>.tar.gz.",
)
@click.option(
    "--existing",
    type=click.Choice(["skip", "verify", "refresh", "overwrite"]),
    default="skip",
    show_default=True,
    help="A file already there that this download did not write is left alone (an error) "
    "unless 'overwrite'; with -x as in 'bl data download --existing'.",
)
@click.option(
    "-l",
    "--limit",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Bulk mode: maximum number of tasks.",
)
@give_up_option
@json_option
def task_download(
    task_id: str | None,
    path: str | None,
    output: str | None,
    directory: str | None,
    extract: bool,
    task_find: dict[str, Any],
    bulk_path: str | None,
    name_by: str,
    existing: str,
    limit: int,
    as_json: bool,
) -> None:
    """Download PATH of task TASK_ID (a folder comes as .tar.gz), or, with --path and filters,
    the same path of every matching task.

    \b
    bl task download 5c0e8f... freesurfer/output/stats -o stats.tar.gz
    bl task download --group 851 --service brainlife/app-freesurfer --status finished \\
        --path freesurfer/output/stats --name-by subject
    """
    if task_id is None or bulk_path is not None:
        if task_id is not None or path is not None:
            raise click.UsageError("Give either TASK_ID PATH, or --path with filters, not both.")
        _check_bulk(bulk_path, output, task_find)
        assert bulk_path is not None
        _bulk(
            task_find, bulk_path, Path(directory or "."), extract, name_by, existing, limit, as_json
        )
        return
    if path is None:
        raise click.UsageError("Which file or folder of the task? bl task download TASK_ID PATH.")
    if output and (directory or extract):
        raise click.UsageError("-o/--output saves one file: it goes without -d and --extract.")
    if extract:
        dest = Path(directory or (Path(path.rstrip("/")).name or task_id))
        if _folders([(task_id, dest.name)], path, dest.parent, as_json, existing):
            return
    with _output.progress_bar(Path(path).name or task_id) as progress:
        result = get_client().download_task_path(
            task_id,
            path,
            output=output,
            directory=directory,
            extract=extract,
            progress=progress,
            existing=existing,
        )
    if as_json:
        _output.print_json(result.to_json())
    else:
        _output.out(f"Downloaded {path} of task {task_id} to {result.path}")


def _check_bulk(bulk_path: str | None, output: str | None, query: dict[str, Any]) -> None:
    if not bulk_path:
        raise click.UsageError(
            "Give TASK_ID PATH, or --path PATH with filters such as "
            "--group/--service/--status for many tasks."
        )
    if output:
        raise click.UsageError("-o/--output names one file: in bulk mode use -d/--directory.")
    if not query:
        raise click.UsageError(
            "Bulk mode needs at least one filter (--group, --service, "
            "--status, --branch or --find)."
        )


def _bulk(
    query: dict[str, Any],
    path: str,
    folder: Path,
    extract: bool,
    name_by: str,
    existing: str,
    limit: int,
    as_json: bool,
) -> None:
    """The same path of every matching task; exit non-zero naming the tasks that failed."""
    from brainlife.cli.main import exit_code_of, render
    from brainlife.client import name_tasks

    client = get_client()
    select = "config._inputs.meta" if name_by == "subject" else None
    tasks = client.tasks(query, select=select, limit=limit)
    names = name_tasks(tasks, name_by)
    if extract and names and _folders(names, path, folder, as_json, existing):
        return
    run = client.download_tasks(
        names,
        path,
        root=folder,
        extract=extract,
        existing=existing,
        progress=_output.progress_bar,
        on_task=None if as_json else lambda tid, name: _output.out(f"{tid} {name}"),
        on_failed=lambda tid, exc: _output.err(f"failed: {tid}: {render(exc)}"),
    )
    if as_json:
        _output.print_json([r.to_json() for r in run.results])
    elif not tasks:
        _output.err("No task matches these filters.")
    if run.failed:
        _output.err(
            f"Error: {len(run.failed)} of {len(names)} tasks failed: {' '.join(run.failed)}. "
            "Run the same command again: what is complete and unchanged is kept."
        )
        click.get_current_context().exit(exit_code_of(run.codes))


def _folders(
    pairs: list[tuple[str, str]], path: str, root: Path, as_json: bool, existing: str = "skip"
) -> bool:
    """Extract with the bulk engine (file by file, resumable, verified; ``bl-lock.json`` in
    ``root``) when the server has our task manifest; False to fall back to the .tar.gz stream."""
    from brainlife.cli._bulk import Transfer, run_bulk

    plan = get_client().plan_task_folders(pairs, path, root=root, existing=existing)
    if plan is None:
        return False
    run_bulk(lambda _on_event: plan, Transfer(as_json=as_json, existing=existing))
    return True
