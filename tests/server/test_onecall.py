"""A plain `def` route runs in one worker-thread call, its sessions, token check and JSON body
included (server/onecall.py says why), with the same rules and the same order of errors as
FastAPI's own resolution of those dependencies."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import anyio.to_thread
import pytest

from brainlife.server.onecall import OneCallRoute
from brainlife.server.services import accounts

PASSWORD = "correct horse battery"


@pytest.fixture
def hand_overs(monkeypatch):
    """Every hand-over to a worker thread (Starlette's `run_in_threadpool` and FastAPI's
    generator dependencies both go through `anyio.to_thread.run_sync`)."""
    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        calls.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


@pytest.fixture
def token(archive, http) -> str:
    with archive.session() as s:
        accounts.add_user(s, username="ann", password=PASSWORD)
        s.commit()
    r = http.post("/api/auth/local/auth", json={"username": "ann", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["jwt"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_every_api_route_is_served_by_a_coroutine() -> None:
    """Every router of `server/routes` uses `OneCallRoute`, so each of its routes is an `async
    def` or the stand-in of a `def` one."""
    import brainlife.server.routes as package

    seen = 0
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is None:
            continue
        assert router.route_class is OneCallRoute, info.name
        for route in router.routes:
            assert isinstance(route, OneCallRoute), route
            assert inspect.iscoroutinefunction(route.endpoint), route.path
            seen += 1
    assert seen > 40


@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/me",
        "/api/warehouse/project",
        "/api/warehouse/dataset?limit=5&find=" + json.dumps({"removed": False}),
    ],
)
def test_a_request_with_a_session_and_a_login_is_one_hand_over(
    http, token, hand_overs, path
) -> None:
    hand_overs.clear()
    r = http.get(path, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert len(hand_overs) == 1, hand_overs


def test_a_write_with_a_body_is_one_hand_over(http, token, hand_overs) -> None:
    hand_overs.clear()
    r = http.post("/api/warehouse/project", json={"name": "p1", "desc": "d"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "p1"
    assert len(hand_overs) == 1, hand_overs


def test_the_login_is_still_checked_before_the_body_is_parsed(http) -> None:
    """`create_project(session, user, body)`: no token and a malformed body is a 401, as when
    FastAPI resolved the parameters in their order."""
    r = http.post("/api/warehouse/project", content=b"{not json")
    assert r.status_code == 401
    assert "no token was sent" in r.json()["message"]


def test_a_malformed_body_with_a_login_is_a_400(http, token) -> None:
    r = http.post("/api/warehouse/project", content=b"{not json", headers=bearer(token))
    assert r.status_code == 400
    r = http.post("/api/warehouse/project", content=b"  ", headers=bearer(token))
    assert r.status_code == 400
    assert "needs a JSON request body" in r.json()["message"]


def test_a_bad_token_is_refused_even_where_none_is_needed(http) -> None:
    r = http.get("/api/warehouse/project", headers=bearer("not-a-token"))
    assert r.status_code == 401
    r = http.get("/api/warehouse/project", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_the_stand_in_parameters_stay_out_of_the_api_description(http) -> None:
    doc = http.get("/api/openapi.json").json()
    text = json.dumps(doc)
    assert "_one_call_request" not in text
    me = doc["paths"]["/api/auth/me"]["get"]
    assert "parameters" not in me or me["parameters"] == []
