"""Every document a route answers with is rendered in `server/documents.py`: no service or route
returns a JSON object it built itself, and none builds a `brainlife.wire` document. (Route
`params.py` holds OpenAPI metadata, not documents.)"""

from __future__ import annotations

import ast
from pathlib import Path

import brainlife.server
import brainlife.wire

SERVER = Path(brainlife.server.__file__).parent
WIRE_DOCUMENTS = {
    name
    for name, value in vars(brainlife.wire).items()
    if isinstance(value, type) and hasattr(value, "__annotations__") and name[0].isupper()
}


def _modules() -> list[Path]:
    files = sorted((SERVER / "services").glob("*.py")) + sorted((SERVER / "routes").glob("*.py"))
    return [f for f in files if f.name != "params.py"]


def _renders(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict) and node.value.keys:
            found.append(f"line {node.lineno}: returns a dict it built")
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in WIRE_DOCUMENTS:
                found.append(f"line {node.lineno}: builds a wire.{name}")
            if name == "JSONResponse" and node.args and isinstance(node.args[0], ast.Dict):
                found.append(f"line {node.lineno}: a JSONResponse of a dict it built")
    return found


def test_no_service_or_route_renders_a_document():
    assert {"Manifest", "ManifestMissing", "Manifests", "TaskManifest"} <= WIRE_DOCUMENTS
    offenders = {
        str(path.relative_to(SERVER)): found
        for path in _modules()
        if (found := _renders(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}
