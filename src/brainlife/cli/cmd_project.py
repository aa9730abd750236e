"""`bl project query`, `bl project create`, `bl project update`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from brainlife.cli import _output
from brainlife.cli._common import (
    get_client,
    json_flag,
    option_set,
    page_options,
    query_options,
)
from brainlife.cli.cmd_project_files import files

if TYPE_CHECKING:
    from brainlife.client import Client

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def project() -> None:
    """Query, create and change projects."""


@project.command("query")
@query_options("project id")
@click.option("-a", "--admin", help="Projects this user (name, username or email) administers.")
@click.option("-m", "--member", help="Projects this user is a member of.")
@click.option("-g", "--guest", help="Projects this user is a guest of.")
@page_options()
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


def _readme(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(300 * 1024)
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text.", param_hint="--readme") from None


_MOVES = {"member": "; a guest becomes a member", "guest": "; a member becomes a guest"}


def _role_options(f: F) -> F:
    for role in ("guest", "member", "admin"):
        f = click.option(
            f"--remove-{role}",
            f"remove_{role}s",
            multiple=True,
            metavar="USER",
            help=f"Remove a{'n' if role == 'admin' else ''} {role} (repeatable).",
        )(f)
        f = click.option(
            f"--{role}",
            f"{role}s",
            multiple=True,
            metavar="USER",
            help=f"Add a{'n' if role == 'admin' else ''} {role}: username, e-mail or sub "
            f"(repeatable){_MOVES.get(role, '')}.",
        )(f)
    return f


#: what `create` and `update` both set
_common_options = option_set(
    click.option("--desc", default=None, help="Description."),
    click.option(
        "--readme", type=click.Path(dir_okay=False), default=None, help="A Markdown file."
    ),
    click.option(
        "--access",
        type=click.Choice(["public", "private"]),
        default=None,
        help="Who reads its data objects: anyone, or its admins, members and guests.",
    ),
    click.option(
        "--listed/--unlisted",
        default=None,
        help="A private project is listed for every user (its data stays private), or not.",
    ),
    json_flag("Print the project's document as JSON."),
)


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """What `_common_options` set, as `create_project` and `update_project` take it (the
    readme read from its file); the commands take those options, and the roles, as
    `**options`."""
    return {
        "desc": options["desc"],
        "readme": _readme(options["readme"]),
        "access": options["access"],
        "listed": options["listed"],
    }


def _said(doc: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        _output.print_json(doc)
    else:
        _output.out(f"{verb} project {doc.get('_id')} ({doc.get('name')}, {doc.get('access')})")


@project.command("create")
@click.option("--name", required=True, help="The project's name.")
@_common_options
@_role_options
def project_create(name: str, as_json: bool, **options: Any) -> None:
    """Create a project (you are its admin; your saved token is refreshed to include it)."""
    client = get_client()
    if any(options[f"remove_{r}"] for r in _ROLES):
        raise click.UsageError("A new project has nobody to remove.")
    subs: dict[str, Any] = {r: [client.user_sub(u) for u in options[r]] or None for r in _ROLES}
    doc = client.create_project(name=name, **_fields(options), **subs)
    _said(doc, "Created", as_json)


_ROLES = ("admins", "members", "guests")


#: a member or a guest, not both: adding someone to one of these takes them out of the other
#: (a guest made a member stayed listed as a guest); admins are a list of their own, as on brainlife
_EXCLUSIVE = {"members": "guests", "guests": "members"}


def _roles(client: Client, pid: str, options: dict[str, Any]) -> dict[str, list[str]]:
    """The role lists `--admin`, `--remove-admin`, … change (each: the project's, less the
    removed subs, then the added ones); nothing unless one is given."""
    named = [r for r in _ROLES if options[r] or options[f"remove_{r}"]]
    if not named:
        return {}
    current = client.resolve_project(pid)
    add = {r: [client.user_sub(u) for u in options[r]] for r in _ROLES}
    gone = {r: {client.user_sub(u) for u in options[f"remove_{r}"]} for r in _ROLES}
    for role, other in _EXCLUSIVE.items():
        gone[other] |= set(add[role]) - set(add[other])
    lists = {r: _changed(current.get(r) or [], add[r], gone[r]) for r in _ROLES}
    return {r: new for r, (new, changed) in lists.items() if changed or r in named}


def _changed(current: list[Any], add: list[str], gone: set[str]) -> tuple[list[str], bool]:
    """A role list less `gone`, then with `add`; and whether that changes it."""
    now = [str(s) for s in current]
    new = [s for s in now if s not in gone] + [s for s in add if s not in now]
    return new, new != now


@project.command("update")
@click.argument("project_id", metavar="ID", required=False)
@click.option("-i", "--id", "id_option", help="The project's id (as the official CLI takes it).")
@click.option("--name", default=None, help="A new name.")
@_common_options
@_role_options
def project_update(
    project_id: str | None,
    id_option: str | None,
    name: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Change a project you administer: name, description, readme, access, people."""
    pid = project_id or id_option
    if not pid:
        raise click.UsageError("Name the project: bl project update ID (or --id ID).")
    if project_id and id_option and project_id != id_option:
        raise click.UsageError("Two different project ids given.")
    client = get_client()
    fields: dict[str, Any] = {"name": name, **_fields(options), **_roles(client, pid, options)}
    if all(v is None for v in fields.values()):
        raise click.UsageError("Nothing to change: give --name, --desc, --access, --admin, ….")
    _said(client.update_project(pid, **fields), "Updated", as_json)


@project.group("participants")
def participants() -> None:
    """A project's participants table, as BIDS participants.tsv: export, import."""


@participants.command("export")
@click.argument("project_ref", metavar="PROJECT")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE (else stdout)."
)
def participants_export(project_ref: str, output: str | None) -> None:
    """Write PROJECT's participants table (id or name) as TSV."""
    from brainlife.client.participants import format_tsv

    client = get_client()
    pid = str(client.resolve_project(project_ref)["_id"])
    text = format_tsv(client.participants(pid).get("subjects") or [])
    if output is None:
        click.echo(text, nl=False)
        return
    tmp = f"{output}.bl-part"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, output)
    _output.err(f"Wrote {output} ({_output.plural(text.count(chr(10)) - 1, 'participant')}).")


@participants.command("import")
@click.argument("project_ref", metavar="PROJECT")
@click.argument("tsv", type=click.File("rb"))
@click.option(
    "--columns",
    "columns_file",
    type=click.File("rb"),
    default=None,
    help="participants.json: the columns' descriptions (BIDS).",
)
def participants_import(project_ref: str, tsv: Any, columns_file: Any) -> None:
    """Replace PROJECT's participants table with a TSV file (- for stdin); project admins and
    members."""
    import json

    from brainlife.client.participants import MAX_TSV_BYTES, parse_tsv

    rows = parse_tsv(tsv.read(MAX_TSV_BYTES + 1), getattr(tsv, "name", "participants.tsv"))
    columns = None
    if columns_file is not None:
        try:
            columns = json.loads(columns_file.read(MAX_TSV_BYTES + 1))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"not JSON ({exc}).", param_hint="--columns") from None
        if not isinstance(columns, dict):
            raise click.BadParameter("must be a JSON object.", param_hint="--columns")
    client = get_client()
    pid = str(client.resolve_project(project_ref)["_id"])
    doc = client.set_participants(pid, subjects=rows, columns=columns)
    _output.out(
        f"Imported {_output.plural(len(doc.get('subjects') or []), 'participant')} into {pid}."
    )


project.add_command(files)
