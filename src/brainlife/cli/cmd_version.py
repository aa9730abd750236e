"""`bl version`."""

from __future__ import annotations

import click


@click.command()
def version() -> None:
    """Print the version of bl."""
    from brainlife import __version__

    click.echo(__version__)
