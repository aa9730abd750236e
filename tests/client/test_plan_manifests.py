"""The planner asks our batch manifest route (`POST /dataset/manifests`) a chunk at a time, falls
back to one manifest per object once the server shows it has no such route (brainlife.io), and
reports its progress as throttled `planning` events; the CLI shows them as one status line."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from brainlife.cli import _output
from brainlife.client import Client, NotFound
from brainlife.client.transfer import plan as plan_module
from brainlife.client.transfer.engine import Event
from brainlife.client.transfer.plan import PlanObject, resolve_files
from tests.fake_server import FakeServer, valid_jwt

BATCH = "/api/warehouse/dataset/manifests"
IDS = [f"{n:024x}" for n in range(1, 6)]


def manifest(oid: str) -> dict:
    body = oid.encode()
    return {
        "_id": oid,
        "tar_size": 2048,
        "files": [{"path": "f.txt", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}],
    }


def serve_docs(fake: FakeServer, ids: list[str]) -> None:
    docs = [{"_id": i, "status": "stored", "meta": {"subject": "1"}} for i in ids]
    fake.json("GET", "/api/warehouse/dataset", {"datasets": docs, "count": len(docs)})
    fake.json("GET", "/api/warehouse/datatype", {"datatypes": []})


def serve_singles(fake: FakeServer, ids: list[str]) -> None:
    for oid in ids:
        fake.json("GET", f"/api/warehouse/dataset/manifest/{oid}", manifest(oid))


def batch_answer(req):  # type: ignore[no-untyped-def]
    ids = json.loads(req.body)["ids"]
    doc = {"manifests": [manifest(i) for i in ids if i != IDS[1]], "missing": []}
    if IDS[1] in ids:
        doc["missing"].append(
            {"_id": IDS[1], "reason": "forbidden", "message": "you don't have access"}
        )
    return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def plan(fake: FakeServer, tmp_path: Path, ids: list[str] = IDS, **kwargs):  # type: ignore[no-untyped-def]
    with Client(fake.url, token=valid_jwt(), backoff=0.01) as c:
        return c.plan_download(root=tmp_path / "out", ids=ids, **kwargs)


def singles(fake: FakeServer) -> int:
    return sum(1 for r in fake.requests if r.path.startswith("/api/warehouse/dataset/manifest/"))


def test_batch_route_is_used_in_chunks(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "MANIFEST_BATCH", 2)
    serve_docs(fake, IDS)
    fake.route("POST", BATCH, batch_answer)
    p = plan(fake, tmp_path)
    calls = fake.calls(BATCH)
    assert [json.loads(r.body)["ids"] for r in calls] == [IDS[0:2], IDS[2:4], IDS[4:5]]
    assert all(r.token for r in calls)
    assert singles(fake) == 0
    by_id = {o.id: o for o in p.objects}
    assert by_id[IDS[0]].files is not None
    assert [f.rel for f in by_id[IDS[0]].files] == ["f.txt"]
    assert by_id[IDS[0]].size == 24
    failure = by_id[IDS[1]].failure
    assert failure is not None and failure.code == "permission"
    assert "you don't have access" in str(by_id[IDS[1]].error)
    assert p.file_count == 4


def test_missing_reasons_become_the_single_routes_errors(fake, tmp_path):
    serve_docs(fake, IDS[:3])

    def answer(req):  # type: ignore[no-untyped-def]
        doc = {
            "manifests": [manifest(IDS[0])],
            "missing": [
                {"_id": IDS[1], "reason": "not-found", "message": "couldn't find"},
                {"_id": IDS[2], "reason": "not-stored", "message": "status is not stored"},
            ],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()

    fake.route("POST", BATCH, answer)
    p = plan(fake, tmp_path, IDS[:3])
    codes = {o.id: o.failure.code if o.failure else None for o in p.objects}
    assert codes == {IDS[0]: None, IDS[1]: "not-found", IDS[2]: "api"}
    assert singles(fake) == 0


@pytest.mark.parametrize("status", [404, 405])
def test_no_batch_route_falls_back_once_per_run(fake, tmp_path, monkeypatch, status):
    monkeypatch.setattr(plan_module, "MANIFEST_BATCH", 2)
    serve_docs(fake, IDS)
    serve_singles(fake, IDS)
    if status == 405:
        fake.json("POST", BATCH, {"message": "Method POST is not allowed"}, status=405)
    # (404: the fake answers unknown routes with 404, as brainlife.io does)
    p = plan(fake, tmp_path)
    assert len(fake.calls(BATCH)) == 1  # detected once, not once per chunk
    assert singles(fake) == len(IDS)
    assert all(o.error is None and o.files for o in p.objects)


def test_html_404_falls_back(fake, tmp_path):
    serve_docs(fake, IDS[:2])
    serve_singles(fake, IDS[:2])
    fake.route("POST", BATCH, lambda req: (404, {"Content-Type": "text/html"}, b"Cannot POST"))
    p = plan(fake, tmp_path, IDS[:2])
    assert singles(fake) == 2
    assert all(o.files for o in p.objects)


def test_a_failing_batch_falls_back_for_that_chunk_only(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "MANIFEST_BATCH", 2)
    serve_docs(fake, IDS)
    serve_singles(fake, IDS)
    answers = iter([(500, {"Content-Type": "application/json"}, b'{"message":"boom"}')])
    fake.route("POST", BATCH, lambda req: next(answers, None) or batch_answer(req))
    p = plan(fake, tmp_path)
    assert len(fake.calls(BATCH)) == 3
    assert singles(fake) == 2  # the first chunk, object by object
    # IDS[1] came from the single route (the fake's allows it), not the batch (forbidden)
    assert all(o.files for o in p.objects)


def test_objects_the_lockfile_proves_complete_ask_nothing(fake, tmp_path):
    serve_docs(fake, IDS[:1])
    fake.route("POST", BATCH, batch_answer)
    first = plan(fake, tmp_path, IDS[:1])
    with Client(fake.url, token=valid_jwt(), backoff=0.01) as c:
        assert c.download(first, backoff=0.01).ok
    fake.routes[("GET", f"/api/warehouse/dataset/file/{IDS[0]}/f.txt")] = lambda req: (
        500,
        {},
        b"",
    )
    fake.requests.clear()
    serve_docs(fake, [IDS[0], IDS[2]])
    p = plan(fake, tmp_path, [IDS[0], IDS[2]])
    assert [json.loads(r.body)["ids"] for r in fake.calls(BATCH)] == [[IDS[2]]]
    assert p.objects[0].present


def serve_files(fake: FakeServer, ids: list[str]) -> None:
    for oid in ids:
        body = oid.encode()
        fake.route(
            "GET",
            f"/api/warehouse/dataset/file/{oid}/f.txt",
            lambda req, body=body: (200, {"Content-Length": str(len(body))}, body),
        )


@pytest.fixture(autouse=True)
def _files(fake):  # type: ignore[no-untyped-def]
    serve_files(fake, IDS)


# --- planning progress -------------------------------------------------------------------------


def test_planning_events_are_throttled_and_end_with_the_total(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "PLANNING_INTERVAL", 0.0)
    serve_docs(fake, IDS)
    fake.route("POST", BATCH, batch_answer)
    events: list[Event] = []
    plan(fake, tmp_path, on_event=events.append)
    assert {e.kind for e in events} == {"planning"}
    assert events[-1].to_json() == {"event": "planning", "done": 5, "total": 5}
    assert [e.data["done"] for e in events] == sorted(e.data["done"] for e in events)


def test_quick_plans_send_no_planning_event(fake, tmp_path):
    serve_docs(fake, IDS)
    fake.route("POST", BATCH, batch_answer)
    events: list[Event] = []
    plan(fake, tmp_path, on_event=events.append)
    assert events == []


def test_resolve_files_progress_without_a_batch(tmp_path):
    objects = [PlanObject(id=i, folder=i) for i in IDS]
    objects[0].failure = NotFound("gone")
    seen: list[tuple[int, int]] = []
    resolve_files(
        objects,
        tmp_path,
        manifest=lambda o: manifest(o.id),
        existing="skip",
        lock=None,
        jobs=2,
        progress=lambda done, total: seen.append((done, total)),
        progress_interval=0.0,
    )
    assert seen[-1] == (4, 4)
    assert len(seen) == 4


def test_cli_status_line_on_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with _output.planning_display(False, enabled=True) as handle:
        handle(Event("planning", {"done": 1200, "total": 2708}))
    text = err.getvalue()
    assert "Planning: 1200/2708 data objects…" in text
    assert text.endswith("\r\x1b[2K")  # erased: the plan summary takes its place


def test_cli_planning_is_silent_when_piped_and_json_with_json(monkeypatch, capsys):
    with _output.planning_display(False, enabled=False) as handle:
        handle(Event("planning", {"done": 1, "total": 2}))
    assert capsys.readouterr() == ("", "")
    with _output.planning_display(True) as handle:
        handle(Event("planning", {"done": 1, "total": 2}))
    out, err = capsys.readouterr()
    assert json.loads(out) == {"event": "planning", "done": 1, "total": 2}
    assert err == ""
