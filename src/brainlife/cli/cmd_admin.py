"""`bl admin`: manage an archive's accounts, groups and tokens on its data directory (or
`--database-url`), with or without its server running (needs the `server` extra).

Like `bl serve`, this imports the server only inside the commands; the rules are the server's
own (`brainlife.server.services.accounts`), the ones its admin routes apply. A rule broken
(a taken username, a short password, the last admin disabled) is one `Error:` line and a
non-zero exit: 3 for something that does not exist, 1 otherwise. Passwords are read from
standard input (`--password-stdin`, first line) or asked twice on a terminal, never taken as
arguments (they would show in the process list and the shell history).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from brainlife.cli import _output
from brainlife.cli._common import data_dir_option, server_packages
from brainlife.cli.main import exit_code

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from brainlife.server.archive import Archive

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@data_dir_option(
    "The archive's data folder, as given to 'bl serve' (default: the per-user data folder, or "
    "$BL_DATA_DIR)."
)
@click.option(
    "--database-url", default=None, help="SQLAlchemy URL, as given to 'bl serve' (if it was)."
)
@click.pass_context
def admin(ctx: click.Context, data_dir: Path | None, database_url: str | None) -> None:
    """Manage an archive's accounts, groups, tokens and datatypes (on its data folder)."""
    ctx.ensure_object(dict)
    ctx.obj["admin_data_dir"] = data_dir
    ctx.obj["admin_database_url"] = database_url


def _fail(message: str, code: int = 1) -> None:
    """One `Error:` line and the exit code (`click.ClickException` has only 1)."""
    _output.err(f"Error: {message}")
    click.get_current_context().exit(code)


@contextmanager
def _session(*, create: bool = False) -> Iterator[tuple[Archive, Session]]:
    """The archive's session; a server rule broken becomes one `Error:` line."""
    with server_packages("bl admin"):
        from brainlife.server.archive import open_archive
        from brainlife.server.catalogue import seed_catalogue
        from brainlife.server.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized
        from brainlife.server.settings import Settings, default_data_dir
    obj = click.get_current_context().find_root().obj or {}
    data_dir: Path = obj.get("admin_data_dir") or default_data_dir()
    url = obj.get("admin_database_url")
    if url is None and not (data_dir / "archive.sqlite3").exists():
        if not create:
            _fail(
                f"No archive in {data_dir} (pass the --data-dir given to 'bl serve').",
                exit_code("not-found"),
            )
        if not data_dir.is_dir():  # a mistyped --data-dir must not become a second archive
            _fail(
                f"No archive in {data_dir}, and no such folder: pass the --data-dir given to "
                f"'bl serve' (to start a new archive there, run 'bl serve --data-dir {data_dir}' "
                "once, or create the folder).",
                exit_code("not-found"),
            )
        _output.err(f"bl admin: new archive in {data_dir}")
    # an unusable database (the server's error) is rendered with every error, in `main`
    archive = open_archive(Settings(data_dir=data_dir, database_url=url))
    try:
        with archive.session() as session:
            seed_catalogue(session)
        with archive.session() as session:
            try:
                yield archive, session
                session.commit()
            except ApiError as exc:
                session.rollback()
                code = 1
                if isinstance(exc, NotFound):
                    code = exit_code("not-found")
                elif isinstance(exc, Forbidden | Unauthorized):
                    code = exit_code("permission")
                elif isinstance(exc, Conflict):  # as the same refusal over the API (a 409)
                    code = exit_code("conflict")
                _fail(exc.message, code)
    finally:
        archive.engine.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: standard input gave no password.")
        return line
    if not sys.stdin.isatty():
        raise click.UsageError("No terminal to ask for the password: pass --password-stdin.")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


def _password_option(f: F) -> F:
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of standard input (else it is asked).",
    )(f)


def _json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for jq).")(f)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        _output.out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _user_doc(user: Any) -> dict[str, Any]:
    from brainlife.server import documents
    from brainlife.server.services import accounts

    return documents.user_doc(user, admin=accounts.is_admin(user))


# -- users --------------------------------------------------------------------------------


@admin.group()
def user() -> None:
    """Accounts: add, list, disable, enable, passwd, promote, demote."""


@user.command("add")
@click.argument("name")
@click.option("--email", default=None, help="E-mail address (a login name too).")
@click.option("--fullname", default="", help="Full name, shown to other users.")
@click.option("--admin", "make_admin", is_flag=True, help="An archive administrator.")
@_password_option
@_json_option
def user_add(
    name: str,
    email: str | None,
    fullname: str,
    make_admin: bool,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Create an account NAME (the first one of an archive: pass --admin)."""
    password = _password(password_stdin)
    from brainlife.server.services import accounts

    with _session(create=True) as (_archive, session):
        row = accounts.add_user(
            session,
            username=name,
            password=password,
            email=email,
            fullname=fullname,
            admin=make_admin,
        )
        doc = _user_doc(row)
    if as_json:
        _output.print_json(doc)
    else:
        kind = "admin" if make_admin else "user"
        _output.out(f"Created {kind} {name} (sub {doc['sub']}).")


@user.command("list")
@_json_option
def user_list(as_json: bool) -> None:
    """Every account."""
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        docs = [_user_doc(u) for u in accounts.list_users(session)]
    if as_json:
        _output.print_json(docs)
        return
    rows = [
        (
            d["sub"],
            d["username"],
            d["email"] or "",
            "yes" if d["admin"] else "",
            "active" if d["active"] else "disabled",
            (d["create_date"] or "")[:10],
        )
        for d in docs
    ]
    _table(("SUB", "USERNAME", "EMAIL", "ADMIN", "STATUS", "CREATED"), rows)


def _user_change(name: str, change: Callable[[Any, Any, Any], Any], said: str) -> None:
    """``change(accounts, session, account)`` (``accounts``: `services.accounts`, imported
    only when a command runs) of the account ``name``, then ``said`` of it."""
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        row = accounts.find_user(session, name)
        change(accounts, session, row)
        username = row.username
    _output.out(said.format(username))


def _demote(accounts: Any, session: Any, row: Any) -> None:
    accounts.set_admin(session, row, False)
    accounts.revoke_tokens(session, sub=row.sub)


#: the account changes that take only the account's name: the command, its help, the change
#: (``services.accounts`` given first) and what is said of the account
_USER_CHANGES: tuple[tuple[str, str, Callable[[Any, Any, Any], Any], str], ...] = (
    (
        "disable",
        "Disable an account: it cannot log in, and its tokens are refused at once.",
        lambda accounts, s, u: accounts.set_active(s, u, False),
        "Disabled {} (its tokens are refused).",
    ),
    (
        "enable",
        "Enable a disabled account again.",
        lambda accounts, s, u: accounts.set_active(s, u, True),
        "Enabled {}.",
    ),
    (
        "promote",
        "Make an account an archive administrator (it logs in again to use it).",
        lambda accounts, s, u: accounts.set_admin(s, u, True),
        "{} is an admin (from its next login).",
    ),
    (
        "demote",
        "Take an account's administrator rights away (its tokens are revoked).",
        _demote,
        "{} is no longer an admin (its tokens are revoked).",
    ),
)


def _user_change_command(
    command: str, help_text: str, change: Callable[[Any, Any, Any], Any], said: str
) -> None:
    @user.command(command, help=help_text)
    @click.argument("name")
    def run(name: str) -> None:
        _user_change(name, change, said)


for _change in _USER_CHANGES:
    _user_change_command(*_change)


@user.command("passwd")
@click.argument("name")
@_password_option
def user_passwd(name: str, password_stdin: bool) -> None:
    """Set an account's password (its tokens are revoked: it logs in again)."""
    password = _password(password_stdin)
    _user_change(
        name,
        lambda accounts, s, u: accounts.set_password(s, u, password),
        "Changed the password of {} (its tokens are revoked).",
    )


@user.command("rename")
@click.argument("name")
@click.argument("new_name")
def user_rename(name: str, new_name: str) -> None:
    """Give an account a new username (its tokens are revoked: it logs in again under it)."""
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        row = accounts.find_user(session, name)
        old = row.username
        accounts.set_username(session, row, new_name)
    _output.out(f"Renamed {old} to {new_name} (its tokens are revoked).")


# -- groups -------------------------------------------------------------------------------


@admin.group()
def group() -> None:
    """Groups of people (a project's members are one): add, list, members."""


def _group_doc(session: Any, row: Any) -> dict[str, Any]:
    from brainlife.server import documents
    from brainlife.server.services import accounts

    return documents.group_doc(row, accounts.members_of(session, row.id))


def _subs(session: Any, names: Sequence[str]) -> list[int]:
    from brainlife.server.services import accounts

    return [accounts.find_user(session, n).sub for n in names]


def _print_group(session: Any, doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _output.print_json(doc)
        return
    from brainlife.server.models import User

    def names(subs: list[int]) -> str:
        return ", ".join(u.username for s in subs if (u := session.get(User, s)) is not None)

    _output.out(f"Group {doc['id']}: {doc['name']}")
    _output.out(f"Admins: {names(doc['admins'])}")
    _output.out(f"Members: {names(doc['members'])}")


@group.command("add")
@click.argument("name")
@click.option("--desc", default="", help="What the group is for.")
@click.option("--admin", "admins", multiple=True, metavar="USER", help="An admin (repeatable).")
@click.option("--member", "members", multiple=True, metavar="USER", help="A member (repeatable).")
@_json_option
def group_add(
    name: str, desc: str, admins: tuple[str, ...], members: tuple[str, ...], as_json: bool
) -> None:
    """Create a group NAME."""
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        row = accounts.add_group(
            session,
            name=name,
            desc=desc,
            admins=_subs(session, admins),
            members=_subs(session, members),
        )
        doc = _group_doc(session, row)
        if as_json:
            _output.print_json(doc)
        else:
            _output.out(f"Created group {doc['id']} ({doc['name']}).")


@group.command("list")
@_json_option
def group_list(as_json: bool) -> None:
    """Every group."""
    from brainlife.server.models import Group

    with _session() as (_archive, session):
        docs = [_group_doc(session, g) for g in session.query(Group).order_by(Group.id)]
    if as_json:
        _output.print_json(docs)
        return
    rows = [(d["id"], d["name"], len(d["admins"]), len(d["members"])) for d in docs]
    _table(("ID", "NAME", "ADMINS", "MEMBERS"), rows)


@group.command("members")
@click.argument("group_ref", metavar="GROUP")
@click.option("--add", multiple=True, metavar="USER", help="Add a member (repeatable).")
@click.option("--add-admin", multiple=True, metavar="USER", help="Add an admin (repeatable).")
@click.option(
    "--remove", multiple=True, metavar="USER", help="Remove someone, admin or member (repeatable)."
)
@_json_option
def group_members(
    group_ref: str,
    add: tuple[str, ...],
    add_admin: tuple[str, ...],
    remove: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show a group's people (GROUP: id or name), or change them."""
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        row = accounts.find_group(session, group_ref)
        if add or add_admin or remove:
            accounts.change_members(
                session,
                row,
                add=_subs(session, add),
                add_admins=_subs(session, add_admin),
                remove=_subs(session, remove),
            )
        _print_group(session, _group_doc(session, row), as_json)


# -- tokens -------------------------------------------------------------------------------


@admin.group()
def token() -> None:
    """Issued tokens: list, revoke."""


@token.command("list")
@click.option("--user", "username", default=None, help="Only this account's tokens.")
@_json_option
def token_list(username: str | None, as_json: bool) -> None:
    """Tokens the archive issued (ids and dates; the tokens themselves are never kept)."""
    from brainlife.server import documents
    from brainlife.server.models import User
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        sub = accounts.find_user(session, username).sub if username else None
        docs = [documents.token_doc(t) for t in accounts.list_tokens(session, sub=sub)]
        names = {u.sub: u.username for u in session.query(User)}
    if as_json:
        _output.print_json(docs)
        return
    rows = [
        (
            d["jti"],
            names.get(d["sub"], d["sub"]),
            d["label"],
            d["issued"][:16],
            d["expires"][:16],
            "revoked" if d["revoked"] else "",
        )
        for d in docs
    ]
    _table(("ID", "USER", "MADE BY", "ISSUED", "EXPIRES", "STATUS"), rows)


@token.command("revoke")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--user", "username", default=None, help="Revoke every token of this account.")
def token_revoke(ids: tuple[str, ...], username: str | None) -> None:
    """Revoke tokens by id (see 'bl admin token list'), or all of one account's."""
    if not ids and not username:
        raise click.UsageError("Name token ids, or --user NAME for all of an account's tokens.")
    from brainlife.server.services import accounts

    with _session() as (_archive, session):
        for jti in ids:
            accounts.revoke_token(session, jti)
        count = len(ids)
        if username:
            count += accounts.revoke_tokens(session, sub=accounts.find_user(session, username).sub)
    _output.out(f"Revoked {_output.plural(count, 'token')}.")


# -- datatypes ----------------------------------------------------------------------------


@admin.group()
def datatype() -> None:
    """The datatype catalogue: add."""


@datatype.command("add")
@click.argument("file", type=click.File("rb"))
@_json_option
def datatype_add(file: Any, as_json: bool) -> None:
    """Add a datatype described by a JSON FILE ({name, desc, files, datatype_tags}; - for
    standard input)."""
    import json

    raw = file.read(1024 * 1024 + 1)
    if len(raw) > 1024 * 1024:
        raise click.BadParameter("more than 1 MiB: not a datatype description.", param_hint="FILE")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"not JSON ({exc}).", param_hint="FILE") from None
    from brainlife.server import documents
    from brainlife.server.services import datatype_writes

    with _session() as (_archive, session):
        doc = documents.datatype_doc(datatype_writes.add_datatype(session, body))
    if as_json:
        _output.print_json(doc)
    else:
        _output.out(f"Added datatype {doc['name']} ({doc['_id']}, {len(doc['files'])} files).")


@admin.command("migrate")
@click.option(
    "--to-database",
    metavar="URL",
    default=None,
    help="An empty PostgreSQL database (postgresql+psycopg://…) to copy every row into.",
)
@click.option(
    "--to-store",
    metavar="s3://BUCKET[/PREFIX]",
    default=None,
    help="An empty bucket (or prefix) to copy every file into, task outputs included.",
)
@click.option("--s3-endpoint", metavar="URL", default=None, help="Overrides AWS_ENDPOINT_URL_S3.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Files copied to the store (and read back) at once.",
)
@_json_option
def migrate_cmd(
    to_database: str | None,
    to_store: str | None,
    s3_endpoint: str | None,
    jobs: int,
    as_json: bool,
) -> None:
    """Copy this embedded archive (SQLite, local files) into PostgreSQL and/or an S3 bucket and
    verify the copy (row counts, every file's sha256 read back). Interrupted, run it again: it
    goes on where it stopped. Then start 'bl serve' with the same --data-dir and the new
    --database-url / --store."""
    try:
        from brainlife.server.migrate_archive import MigrationError, run
        from brainlife.server.settings import default_data_dir
    except ImportError as exc:
        raise click.ClickException(
            f"bl admin needs the server's packages ({exc.name} is missing): "
            "pip install 'brainlife[server]'"
        ) from None
    obj = click.get_current_context().find_root().obj or {}
    data_dir: Path = obj.get("admin_data_dir") or default_data_dir()
    try:
        report = run(
            data_dir,
            to_database=to_database,
            to_store=to_store,
            s3_endpoint=s3_endpoint,
            say=lambda line: _output.err(f"bl admin migrate: {line}"),
            jobs=jobs,
        )
    except MigrationError as exc:
        _fail(str(exc))
        return
    doc = {
        "source": report.source_id,
        "rows": report.rows,
        "blobs": report.blobs,
        "blobs_copied": report.blobs_copied,
        "task_files": report.task_files,
        "verified_blobs": report.verified_blobs,
    }
    if as_json:
        _output.print_json(doc)
    else:
        _output.out(
            f"Migrated and verified: {sum(report.rows.values())} rows in "
            f"{len(report.rows)} tables, {report.verified_blobs} files read back "
            f"({report.blobs_copied} copied now)."
        )
