"""`brainlife.client` re-exports its public names; the transfer ones are imported on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import brainlife.client


def test_every_public_name_is_importable() -> None:
    for name in brainlife.client.__all__:
        assert getattr(brainlife.client, name) is not None, name
    assert set(brainlife.client.__all__) <= set(dir(brainlife.client))


def test_lazy_names_are_the_transfer_modules_objects() -> None:
    lazy = brainlife.client._LAZY
    assert set(lazy) <= set(brainlife.client.__all__)
    for name, (module, attr) in lazy.items():
        source = importlib.import_module(f"brainlife.client.transfer.{module}")
        assert getattr(brainlife.client, name) is getattr(source, attr), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        brainlife.client.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_client_leaves_the_transfer_modules_alone() -> None:
    """A query (`bl data query`, `Client().query_datasets`) starts without the download and
    upload machinery, `bl task query` (its subjects) with one small module; the first transfer
    name used brings its module."""
    code = (
        "import sys, brainlife.client as c\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('brainlife.client.tr'))\n"
        "print(loaded())\n"
        "c.task_subject\n"
        "print(loaded())\n"
        "c.UploadPlan\n"
        "print('brainlife.client.transfer.upload' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "[]",
        "['brainlife.client.transfer', 'brainlife.client.transfer.tasks']",
        "True",
    ]
