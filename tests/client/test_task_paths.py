"""Task paths against a real `bl serve`: the client follows the manifest's `type` (file or folder)
instead of guessing from the file names, so a folder `out/x` holding one file `x` is a folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brainlife.client import Client
from tests.conftest import LiveServer, start_server, stop_server


@dataclass
class Tasks:
    server: LiveServer
    token: str
    task: str


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tasks]:
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings
    from tests.server._bytes_factories import make_task, token

    data_dir = tmp_path_factory.mktemp("taskpaths") / "data"
    archive = open_archive(Settings(data_dir=data_dir))
    task, _ = make_task(
        archive,
        files={"out/x/x": b"hello\n", "single/y": b"only one file\n", "deep/a/b/c.txt": b"c\n"},
    )
    tok = token(archive, ttl_ms=3600_000)
    archive.engine.dispose()
    server = start_server(data_dir)
    yield Tasks(server, tok, task)
    stop_server(server)


def _client(t: Tasks) -> Client:
    return Client(t.server.url, token=t.token)


def test_a_folder_holding_one_file_of_its_own_name_is_a_folder(
    tasks: Tasks, tmp_path: Path
) -> None:
    dest = tmp_path / "x"
    with _client(tasks) as c:
        plan = c.plan_task_download([(tasks.task, "x")], "out/x", root=tmp_path)
        result = c.download(plan)
    assert result.ok, result.failed
    assert (dest / "x").read_bytes() == b"hello\n"
    assert sorted(p.name for p in dest.iterdir()) == ["x"]


def test_a_single_file_lands_in_its_folder(tasks: Tasks, tmp_path: Path) -> None:
    with _client(tasks) as c:
        plan = c.plan_task_download([(tasks.task, "y")], "single/y", root=tmp_path)
        result = c.download(plan)
    assert result.ok, result.failed
    assert (tmp_path / "y" / "y").read_bytes() == b"only one file\n"


def test_a_nested_folder_keeps_its_tree(tasks: Tasks, tmp_path: Path) -> None:
    with _client(tasks) as c:
        plan = c.plan_task_download([(tasks.task, "a")], "deep/a", root=tmp_path)
        result = c.download(plan)
    assert result.ok, result.failed
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"c\n"
