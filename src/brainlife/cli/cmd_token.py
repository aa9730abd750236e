"""`bl token list`, `bl token revoke`: your own tokens on a `bl serve` archive (which records
every token it issues, so one can be revoked before it expires: a script's long-lived token that
leaked, a laptop that was lost)."""

from __future__ import annotations

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_flag


@click.group()
def token() -> None:
    """Your tokens on a bl serve archive: list, revoke."""


@token.command("list")
@json_flag("Print JSON (for jq).")
def token_list(as_json: bool) -> None:
    """The tokens issued to you (ids and dates; never the tokens themselves)."""
    rows = get_client().tokens()
    if as_json:
        _output.print_json(rows)
        return
    for t in rows:
        state = "revoked" if t.get("revoked") else f"expires {str(t.get('expires'))[:16]}"
        _output.out(
            f"{t.get('jti')}  {t.get('label')}  issued {str(t.get('issued'))[:16]}  {state}"
        )
    _output.out(_output.returned(len(rows)))


@token.command("revoke")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
def token_revoke(ids: tuple[str, ...]) -> None:
    """Revoke tokens of yours by id (see 'bl token list'); the server refuses them from now on."""
    client = get_client()
    for jti in ids:
        client.revoke_token(jti)
    _output.out(f"Revoked {_output.plural(len(ids), 'token')}.")
