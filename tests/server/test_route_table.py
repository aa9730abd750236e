"""The server serves exactly the route table of `brainlife.wire.routes`, declared from it."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient

from brainlife.server.app import create_app
from brainlife.wire import routes

ROUTES_DIR = Path(__file__).parents[2] / "src" / "brainlife" / "server" / "routes"


def _table() -> set[str]:
    """Every route's full template as OpenAPI writes it (`{path}` for `{path:path}`)."""
    return {
        re.sub(r":\w+\}", "}", r.full) for r in vars(routes).values() if isinstance(r, routes.Route)
    }


def test_every_served_path_is_in_the_wire_table_and_back(app) -> None:
    assert set(app.openapi()["paths"]) == _table()


def test_no_router_writes_a_path_literal() -> None:
    """Each `@router.<method>(...)` takes its path from `routes.<NAME>.path`, or from
    `route.path` in the helpers that register a route for each `wire.routes.Route` they are
    given (`routes.download`, `warehouse._public_listing`: mypy holds `route` to the type)."""
    offenders = []
    for module in sorted(ROUTES_DIR.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (
                isinstance(node.func.value, ast.Name)
                and node.func.value.id == "router"
                and node.func.attr in ("get", "head", "post", "put", "delete", "patch")
            ):
                continue
            first = node.args[0] if node.args else None
            ok = (
                isinstance(first, ast.Attribute)
                and first.attr == "path"
                and isinstance(first.value, ast.Attribute)
                and isinstance(first.value.value, ast.Name)
                and first.value.value.id == "routes"
            ) or (
                isinstance(first, ast.Attribute)
                and first.attr == "path"
                and isinstance(first.value, ast.Name)
                and first.value.id == "route"
            )
            if not ok:
                offenders.append(f"{module.name}:{node.lineno}")
    assert offenders == []


def test_without_extensions_every_extension_route_is_a_404(archive, settings) -> None:
    archive.settings = replace(settings, extensions=False)
    client = TestClient(create_app(archive=archive))
    for route in routes.EXTENSIONS:
        values = {name: "5" * 24 for name in route.params}
        if "path" in values:
            values["path"] = "a/b"
        method = client.post if route is routes.DATASET_MANIFESTS else client.get
        response = method(route.url(**values))
        assert response.status_code == 404, route.full
        assert response.json() == {"message": "Not Found"}, route.full
    # a route brainlife.io has still answers (401: it needs a login)
    assert client.get(routes.DATASET_DOWNLOAD.url(dataset_id="5" * 24)).status_code == 401
