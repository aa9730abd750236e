"""Helpers shared by the commands: the client of this invocation, shared options."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from brainlife.client import Client

F = TypeVar("F", bound=Callable[..., Any])


def get_client(ctx: click.Context | None = None) -> Client:
    """The one client of this invocation (built on first use, closed when the command ends)."""
    from brainlife.client import Client

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    client = obj.get("client")
    if client is None:
        from brainlife.cli._output import waiting_lines

        client = Client(ca_bundle=obj.get("ca_bundle"), give_up_after=obj.get("give_up_after"))
        client.http.liveness.listener = waiting_lines()  # a bulk run shows its own
        obj["client"] = client
        root.obj = obj
        root.call_on_close(client.close)
    return client


@contextmanager
def server_packages(who: str) -> Iterator[None]:
    """Around the imports of `brainlife.server`: without the server extra installed, one line
    that says what to install instead of a traceback."""
    try:
        yield
    except ImportError as exc:
        raise click.ClickException(
            f"{who} needs the server's packages ({exc.name} is missing): "
            "pip install 'brainlife[server]'"
        ) from None


def give_up_option(f: F) -> F:
    """--give-up-after SECONDS (also BL_GIVE_UP_AFTER), handed to the invocation's client."""

    def remember(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
        if value is not None and value != value:  # NaN passes FloatRange's comparisons
            raise click.BadParameter("nan is not a number of seconds (inf: never give up).")
        if value is not None:
            root = ctx.find_root()
            root.obj = {**(root.obj if isinstance(root.obj, dict) else {}), "give_up_after": value}

    return click.option(
        "--give-up-after",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        envvar="BL_GIVE_UP_AFTER",
        expose_value=False,
        callback=remember,
        help="Stop once the server has not answered for this long (default 120; any answer or "
        "byte received resets the clock): exit 5, partial files kept, the rest named.",
    )(f)


def data_dir_option(help: str) -> Callable[[F], F]:
    """--data-dir: the folder of the archive `bl serve` serves and `bl admin` manages."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=help
    )


def json_flag(help: str) -> Callable[[F], F]:
    """-j/--json (the command's `as_json`): what is printed as JSON instead of text."""
    return click.option("-j", "--json", "as_json", is_flag=True, help=help)


#: a listing's -j/--json
json_option = json_flag("Print the server's array as JSON (for jq).")


def skip_limit_options(default_limit: int | None = 100) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option(
            "-l",
            "--limit",
            type=click.IntRange(min=0),
            default=default_limit,
            show_default=default_limit is not None,
            help="Maximum number of results (0: no limit).",
        )(f)
        f = click.option(
            "-s",
            "--skip",
            type=click.IntRange(min=0),
            default=0 if default_limit is not None else None,
            help="Number of results to skip.",
        )(f)
        return f

    return decorate


def page_options(default_limit: int | None = 100) -> Callable[[F], F]:
    """What every query command ends with: ``-l/--limit`` (``default_limit``; None: the
    server's), ``-s/--skip`` and ``-j/--json``."""
    return option_set(skip_limit_options(default_limit), json_option)


def packed(name: str, make: Callable[..., Any], *params: str, **renamed: str) -> Callable[[F], F]:
    """Hands the command its parameters ``params`` (and ``renamed``'s, each as the keyword it
    names) as one argument ``name``, ``make(**those)``: one typed value (a client filter, a bulk
    run's settings) passed on whole instead of a long keyword list written in every command.
    Goes below the options it packs; ``--help`` is unchanged."""
    keywords = {**{param: param for param in params}, **renamed}

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            value = make(**{field: kwargs.pop(param) for param, field in keywords.items()})
            return f(*args, **{name: value}, **kwargs)

        return cast(F, command)

    return decorate


def packed_filter(kind: str, *params: str, **renamed: str) -> Callable[[F], F]:
    """:func:`packed` into one ``filters`` argument: the `brainlife.client` filter ``kind``
    (``DatasetFilter``, ``AppFilter``, ``ReleaseFilter``) its client method takes whole."""

    def make(**fields: Any) -> Any:
        import brainlife.client  # when the command runs: `bl --help` stays light

        return getattr(brainlife.client, kind)(**fields)

    return packed("filters", make, *params, **renamed)


def option_set(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, listed by --help in the order given."""

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def query_options(what: str, text_in: str = "the name or description") -> Callable[[F], F]:
    """``-i/--id`` and ``-q/--query``: the first two filters of every ``query`` command
    (``what``: the id's description, ``text_in``: where the text is looked for)."""
    return option_set(
        click.option("-i", "--id", "id_", help=f"Filter by {what}."),
        click.option("-q", "--query", help=f"Text in {text_in}."),
    )


def datatype_options(*, short: bool = True) -> Callable[[F], F]:
    """What a data object is: its datatype (``-d`` too, unless that is the command's folder),
    datatype tags and tags, as every command that picks data objects takes them."""
    return option_set(
        click.option(
            *(["-d"] if short else []),
            "--datatype",
            help="Datatype name (e.g. neuro/anat/t1w) or id.",
        ),
        click.option(
            "--datatype_tag",
            "--datatype-tag",
            "datatype_tag",
            multiple=True,
            help="Datatype tag (repeatable; '!tag' excludes, '\\!tag' wants '!tag').",
        ),
        click.option(
            "--tag",
            multiple=True,
            help="Tag (repeatable; '!tag' excludes, '\\!tag' wants '!tag').",
        ),
    )


def meta_options(*, several: bool = False) -> Callable[[F], F]:
    """``--subject``, ``--session``, ``--run`` (``meta.*``): one value each, or with ``several``
    any of many."""
    return option_set(
        *(
            click.option(
                *flags,
                multiple=several,
                help=f"{what} (repeatable: any of them)." if several else f"{what} (meta.{name}).",
            )
            for flags, what, name in (
                (("-b", "--subject"), "Subject", "subject"),
                (("--session",), "Session", "session"),
                (("--run",), "Run", "run"),
            )
        )
    )


def json_object(text: str, option: str, example: str) -> dict[str, Any]:
    """A JSON object given to ``option`` (the parsed text), or a usage error that names the
    option and shows ``example``."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise click.BadParameter(
            f"not JSON; give a JSON object, e.g. {example}", param_hint=option
        ) from None
    if not isinstance(doc, dict):
        raise click.BadParameter(f"must be a JSON object, e.g. {example}", param_hint=option)
    return doc
