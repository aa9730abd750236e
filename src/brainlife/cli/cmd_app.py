"""`bl app query`, `bl app run` and `bl app wait`.

`query` sends what the official CLI sends and prints what it prints, with its `!` negation of
`--input-datatype`/`--output-datatype` working. `run` checks what it can (the app, the project,
the inputs' form and keys, the config JSON) and then asks the server for an instance, the first
thing a run creates: a `bl serve` archive runs no apps and refuses with a message, printed as
the error. `wait` waits as the official one does (the task finished, then each output to
archive stored) and prints `(done waiting)`.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import click

from brainlife.cli import _output
from brainlife.cli._common import (
    get_client,
    json_option,
    packed_filter,
    page_options,
    query_options,
)

if TYPE_CHECKING:
    from brainlife.client import AppFilter


@click.group()
def app() -> None:
    """Query apps; wait for an app's task (this archive does not run apps)."""


@app.command("query")
@query_options("app id", "the app's name or description")
@click.option("-d", "--doi", help="Filter apps by DOI (exact).")
@click.option(
    "--input-datatype",
    "inputs",
    multiple=True,
    help="An input datatype the app takes (name or id; '!name' excludes). Repeatable.",
)
@click.option(
    "--output-datatype",
    "outputs",
    multiple=True,
    help="An output datatype the app gives (name or id; '!name' excludes). Repeatable.",
)
@page_options()
@packed_filter(
    "AppFilter", "query", "doi", id_="id", inputs="input_datatypes", outputs="output_datatypes"
)
def app_query(filters: AppFilter, skip: int, limit: int, as_json: bool) -> None:
    """Query apps (e.g. --input-datatype neuro/anat/t1w)."""
    client = get_client()
    rows = client.apps(filters, skip=skip, limit=limit)
    if as_json:
        _output.print_json(rows)
        return
    names = {str(d["_id"]): str(d.get("name")) for d in client.find_datatypes({}, limit=0)}
    _output.print_apps(rows, names)


@app.command("run")
@click.option("--id", "app_id", required=True, help="The app (id, or text of its name).")
@click.option("--project", required=True, help="The project to store the outputs in.")
@click.option(
    "--input", "inputs", multiple=True, help="An input as <input id>:<data object id>. Repeatable."
)
@click.option("--config", "config_json", help="The app's config as JSON.")
@click.option("--preferred-resource", help="The resource to prefer (id or name).")
@click.option("--branch", help="The app's branch to run.")
@click.option("--tag", "tags", multiple=True, help="A tag for the archived outputs. Repeatable.")
@json_option
def app_run(
    app_id: str,
    project: str,
    inputs: tuple[str, ...],
    config_json: str | None,
    preferred_resource: str | None,
    branch: str | None,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Ask the server to run an app (a `bl serve` archive refuses: it runs no apps)."""
    try:
        config = json.loads(config_json) if config_json else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--config") from None
    if not isinstance(config, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--config")
    client = get_client()
    found = client.resolve_app(app_id)
    proj = client.resolve_project(project)
    keys = {str(i.get("id")) for i in found.get("inputs") or []}
    for spec in inputs:
        key, sep, data_id = spec.partition(":")
        if not sep or not data_id:
            raise click.BadParameter(
                f"{spec!r} is not <input id>:<data object id>", param_hint="--input"
            )
        if key not in keys:
            raise click.BadParameter(
                f"the app has no input {key!r} (its inputs: {', '.join(sorted(keys))})",
                param_hint="--input",
            )
    name = f"{found.get('tags') or 'CLI Process'}.{random.random()}"
    instance = client.create_instance(
        name=name, desc=f"(CLI) {found.get('name')}", group_id=int(proj["group_id"])
    )
    raise click.ClickException(
        f"This bl cannot submit tasks yet; the server made instance {instance.get('_id')} for "
        "it. Use the official CLI or the web site to run the app."
    )


@app.command("wait")
@click.argument("task_id", required=False)
@click.option("-i", "--id", "id_", help="The task to wait for.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Give up after this many seconds (default: wait as long as it takes).",
)
def app_wait(task_id: str | None, id_: str | None, timeout: float | None) -> None:
    """Wait until a task has finished and its outputs are archived."""
    wanted = id_ or task_id
    if not wanted:
        raise click.UsageError("Name the task: bl app wait <task_id> (or -i <task_id>).")
    get_client().wait_task(wanted, timeout=timeout)
    _output.out("(done waiting)")
