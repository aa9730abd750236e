"""The route table both sides share."""

from __future__ import annotations

from pathlib import Path

import pytest

from brainlife.wire import routes


def test_url_quotes_segments_and_keeps_path_slashes() -> None:
    assert routes.DATASET_DOWNLOAD.url(dataset_id="abc") == "/api/warehouse/dataset/download/abc"
    assert (
        routes.TASK_DOWNLOAD_PATH.url(task_id="t/1", path="/out dir/a#b.txt")
        == "/api/amaretti/task/download/t%2F1/out%20dir/a%23b.txt"
    )


def test_url_refuses_missing_or_unknown_parameters() -> None:
    with pytest.raises(TypeError, match="missing"):
        routes.DATASET_FILE.url(dataset_id="x")
    with pytest.raises(TypeError, match="unexpected"):
        routes.PROJECTS.url(id="x")


def test_prefix_of_a_trailing_path_route() -> None:
    assert routes.DATASET_FILE.prefix_of(dataset_id="x") == "/api/warehouse/dataset/file/x/"
    with pytest.raises(TypeError):
        routes.TASK.prefix_of(task_id="x")


def test_extensions_are_ours_only() -> None:
    assert routes.DATASET_FILE in routes.EXTENSIONS
    assert routes.DATASET_DOWNLOAD not in routes.EXTENSIONS
    table = [r for r in vars(routes).values() if isinstance(r, routes.Route)]
    ours = [r for r in table if not r.brainlife]
    assert len(ours) == 19 and sorted(ours, key=str) == sorted(routes.EXTENSIONS, key=str)


def _route_uses(path: Path) -> tuple[list[str], bool]:
    """String pieces in ``path`` (docstrings aside) that spell out an API route, and whether it
    imports the route table (or a route prefix) from ``brainlife.wire``."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and any(w in node.value for w in ("/api/", "/task/", "/dataset/", "/auth", "/pub"))
    ]
    reads = any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("brainlife.wire")
        and any(
            a.name == "routes" or a.name.startswith("API_") or a.name.endswith("_ROUTE")
            for a in node.names
        )
        for node in ast.walk(tree)
    )
    return found, reads


def test_the_client_writes_no_route_and_reads_the_table_in_one_module() -> None:
    import brainlife.cli
    import brainlife.client

    modules = [
        *Path(brainlife.client.__file__).parent.rglob("*.py"),
        *Path(brainlife.cli.__file__).parent.rglob("*.py"),
    ]
    uses = {p.name: _route_uses(p) for p in modules}
    assert {name: found for name, (found, _) in uses.items() if found} == {}
    assert sorted(name for name, (_, reads) in uses.items() if reads) == ["_urls.py"]


def test_at_fills_the_parameters_in_path_order() -> None:
    assert routes.UPLOAD_FILE.at("u/1", 3) == "/api/warehouse/upload/u%2F1/file/3"
    assert routes.TASK_DOWNLOAD_PATH.at("t", "/out/x") == "/api/amaretti/task/download/t/out/x"
    with pytest.raises(TypeError, match="takes 2 values, got 1"):
        routes.UPLOAD_FILE.at("u")
