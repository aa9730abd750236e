"""`bl data update` and `bl data delete`: curation of data objects (the library's
`Client.update_dataset` / `Client.remove_dataset`; errors and exit codes from `main`)."""

from __future__ import annotations

from typing import Any

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_object, json_option


def _meta(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json_object(value, "--meta", '\'{"session": "2"}\'')


@click.command("update")
@click.argument("dataset_id", metavar="ID")
@click.option("--desc", help="New description.")
@click.option("--tag", "tags", multiple=True, help="The tags (repeatable; replace the old ones).")
@click.option("--datatype_tag", "datatype_tags", multiple=True,
              help="The datatype tags (repeatable; replace the old ones).")  # fmt: skip
@click.option("--clear-tags", is_flag=True, help="Remove every tag.")
@click.option(
    "--meta",
    help="JSON object merged into the metadata (a null value removes a key), "
    'e.g. \'{"session": "2"}\'.',
)
@click.option("--restore", is_flag=True, help="Bring back a removed object (project admins).")
@json_option
def data_update(
    dataset_id: str,
    desc: str | None,
    tags: tuple[str, ...],
    datatype_tags: tuple[str, ...],
    clear_tags: bool,
    meta: str | None,
    restore: bool,
    as_json: bool,
) -> None:
    """Change a data object's description, tags, datatype tags or metadata (its project's
    admins and members). Objects in a release cannot be changed (exit 9)."""
    if not (desc is not None or tags or clear_tags or datatype_tags or meta is not None or restore):
        raise click.UsageError(
            "Nothing to change: give --desc, --tag, --clear-tags, --datatype_tag, --meta or "
            "--restore."
        )
    client = get_client()
    doc = client.update_dataset(
        dataset_id,
        desc=desc,
        tags=list(tags) if tags or clear_tags else None,
        datatype_tags=list(datatype_tags) if datatype_tags else None,
        meta=_meta(meta),
        restore=restore,
    )
    if as_json:
        _output.print_json(doc)
    else:
        _output.out(f"updated data object {doc.get('_id', dataset_id)}")


@click.command("delete")
@click.argument("dataset_id", metavar="ID")
@json_option
def data_delete(dataset_id: str, as_json: bool) -> None:
    """Remove a data object (brainlife's soft delete: it leaves queries and downloads; a project
    admin can bring it back with 'bl data update ID --restore'). Objects in a release cannot be
    removed (exit 9)."""
    removed = get_client().remove_dataset(dataset_id)
    if as_json:
        _output.print_json({"_id": dataset_id, "removed": removed})
    elif removed:
        _output.out(f"removed data object {dataset_id}")
    else:
        _output.out(f"data object {dataset_id} was already removed")
