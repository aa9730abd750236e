"""Concurrent listings (issue #11 item 5): at most `Settings.query_slots` requests of one
process run their query at once, the others wait holding no database connection, and a
connection's caches are bounded.

The requests go through the whole ASGI application (dependencies, anyio's thread pool, the
real SQLite archive) with httpx's in-process transport, all sent at once. To make them
overlap without timing anything, the listing service is wrapped: a request inside it waits
until one more request than the gate allows has entered too, or gives up after a second (which
is what happens when the gate holds the others back).
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import httpx2 as httpx
import pytest

from tests.server import factories as f

ALICE = 1
SLOTS = 2
REQUESTS = 8


@pytest.fixture
def settings(tmp_path):
    from brainlife.server.settings import Settings

    return Settings(data_dir=tmp_path / "data", failed_login_delay=0.0, query_slots=SLOTS)


@pytest.fixture
def world(archive) -> dict[str, Any]:
    with archive.session() as s:
        proj = f.project(s, name="P", access="private", members=[ALICE], group_id=851)
        t1w = f.datatype(s, name="neuro/anat/t1w")
        ids = [f.dataset(s, proj, t1w, meta={"subject": f"{i:04d}"}).id for i in range(5)]
        s.commit()
    claims = {"sub": ALICE, "gids": [851], "scopes": {}, "profile": {"username": "alice"}}
    return {"project": proj.id, "ids": ids, "token": archive.signer.sign(claims, 60_000)}


class Overlap:
    """Wraps a function: records how many calls run at once; each call waits for one more
    caller than `limit` (proof the bound was broken) for up to a second."""

    def __init__(self, fn: Any, limit: int) -> None:
        self.fn, self.limit = fn, limit
        self.lock = threading.Lock()
        self.inside = self.peak = self.calls = 0
        self.crowded = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.peak = max(self.peak, self.inside)
            if self.inside > self.limit:
                self.crowded.set()
        try:
            self.crowded.wait(1.0)
            return self.fn(*args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1


def concurrent_listings(app: Any, token: str, project: str) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        out: list[httpx.Response] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bl") as client:

            async def one(i: int) -> None:
                find = f'{{"removed":false,"project":"{project}"}}'
                out.append(
                    await client.get(
                        "/api/warehouse/dataset",
                        params={"find": find, "limit": "2", "skip": str(i % 3)},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )

            async with anyio.create_task_group() as tg:
                for i in range(REQUESTS):
                    tg.start_soon(one, i)
        return out

    return anyio.run(main)


def test_concurrent_listings_run_at_most_query_slots_queries(app, world, monkeypatch):
    from brainlife.server.services import datasets

    overlap = Overlap(datasets.list_datasets, SLOTS)
    monkeypatch.setattr(datasets, "list_datasets", overlap)

    responses = concurrent_listings(app, world["token"], world["project"])

    assert [r.status_code for r in responses] == [200] * REQUESTS
    assert all(r.json()["count"] == 5 and len(r.json()["datasets"]) == 2 for r in responses)
    assert overlap.calls == REQUESTS
    assert overlap.peak <= SLOTS, f"{overlap.peak} listings ran at once; the gate allows {SLOTS}"
    assert app.state.query_gate.peak <= SLOTS
    assert app.state.query_gate.inside == 0  # every slot given back


def test_waiting_listings_hold_no_database_connection(app, archive, world, monkeypatch):
    """The token check and the session are inside the gate: requests queued behind it have
    checked out no connection (and so have loaded no rows)."""
    from sqlalchemy import event

    from brainlife.server.services import datasets

    monkeypatch.setattr(datasets, "list_datasets", Overlap(datasets.list_datasets, SLOTS))
    lock = threading.Lock()
    state = {"out": 0, "peak": 0}

    def checkout(*_a: Any) -> None:
        with lock:
            state["out"] += 1
            state["peak"] = max(state["peak"], state["out"])

    def checkin(*_a: Any) -> None:
        with lock:
            state["out"] -= 1

    event.listen(archive.engine.pool, "checkout", checkout)
    event.listen(archive.engine.pool, "checkin", checkin)
    try:
        responses = concurrent_listings(app, world["token"], world["project"])
    finally:
        event.remove(archive.engine.pool, "checkout", checkout)
        event.remove(archive.engine.pool, "checkin", checkin)

    assert [r.status_code for r in responses] == [200] * REQUESTS
    assert state["peak"] <= SLOTS, f"{state['peak']} connections checked out at once"


def test_a_failing_listing_gives_its_slot_back(app, world):
    """A refused query (400) releases its slot: the gate never leaks into a deadlock."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for _ in range(SLOTS + 2):
            r = client.get(
                "/api/warehouse/dataset",
                params={"find": '{"$where":"1"}'},
                headers={"Authorization": f"Bearer {world['token']}"},
            )
            assert r.status_code == 400, r.text
        r = client.get(
            "/api/warehouse/dataset",
            params={"find": f'{{"project":"{world["project"]}"}}'},
            headers={"Authorization": f"Bearer {world['token']}"},
        )
    assert r.status_code == 200 and r.json()["count"] == 5
    assert app.state.query_gate.inside == 0


def test_a_request_connection_has_a_bounded_cache_and_no_memory_map(archive):
    """Each SQLite connection keeps its own page cache and its own map of the file, and both
    count in the process's RSS, once per connection: 16 MiB of cache, no map."""
    from sqlalchemy import text

    with archive.request_session() as session:
        assert session.execute(text("PRAGMA mmap_size")).scalar() == 0
        assert session.execute(text("PRAGMA cache_size")).scalar() == -16384


def test_a_gate_needs_a_slot():
    from brainlife.server.gate import QueryGate

    with pytest.raises(ValueError, match="at least one slot"):
        QueryGate(0)


def test_bl_serve_query_slots_reach_every_worker(monkeypatch, empty_archive_dir, tmp_path):
    """`bl serve --workers N --query-slots K` hands K to each worker through the environment
    (`serve.app_factory`, what uvicorn calls in every worker process)."""
    import shutil

    from brainlife.server import serve

    data_dir = tmp_path / "data"
    shutil.copytree(empty_archive_dir, data_dir)
    monkeypatch.setenv("BL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BL_QUERY_SLOTS", "3")
    app = serve.app_factory()
    try:
        assert app.state.query_gate.slots == 3
    finally:
        app.state.archive.engine.dispose()
    assert serve._settings(serve.ServeOptions(data_dir=data_dir, query_slots=7)).query_slots == 7


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_bad_query_slots_is_a_usage_error_not_a_traceback(value, tmp_path):
    from click.testing import CliRunner

    from brainlife.cli.main import cli

    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path / "d"), "--query-slots", value]
    )
    assert result.exit_code == 2, result.output
    assert "--query-slots" in result.output
    assert "Traceback" not in result.output
