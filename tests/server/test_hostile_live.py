"""On a real `bl serve`: while the slowest query we could build runs, `/health` answers, and
the query itself ends with a 400 once over the time budget (no stall, no 500)."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import requests

from tests.conftest import start_server, stop_server
from tests.server import factories as f

#: about a second per 60 KB text on RE2 (its program is just under the size limit); under
#: Python's `re` it never ends
SLOW_REGEX = "(\\w+\\s?){1,160}!"


@pytest.fixture(scope="module")
def server(demo_archive_dir, tmp_path_factory):
    from brainlife.server.archive import open_archive
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    archive = open_archive(Settings(data_dir=data_dir))
    with archive.session() as s:
        for i in range(40):  # ~40 s of regex work without a budget
            f.project(s, name=f"long{i}", desc="ab " * 20_000)
        s.commit()
    archive.engine.dispose()
    live = start_server(data_dir, extra=["--query-timeout", "2"])
    yield live
    stop_server(live)


def test_health_answers_while_the_worst_query_runs(server) -> None:
    url = f"{server.url}/api/warehouse"
    outcome: dict[str, requests.Response] = {}

    def hostile() -> None:
        find = json.dumps({"desc": {"$regex": SLOW_REGEX}})
        outcome["resp"] = requests.get(f"{url}/project", params={"find": find}, timeout=300)

    thread = threading.Thread(target=hostile)
    thread.start()
    answered_meanwhile = 0
    while thread.is_alive():
        health = requests.get(f"{url}/health", timeout=60)
        assert health.status_code == 200
        if thread.is_alive():
            answered_meanwhile += 1
    thread.join()
    resp = outcome["resp"]
    assert resp.status_code == 400, resp.text
    assert "longer than the 2 s budget" in resp.json()["message"]
    assert answered_meanwhile > 0
    # the server is fine afterwards
    after = requests.get(f"{url}/project", params={"find": '{"name": "long7"}'}, timeout=60)
    assert [p["name"] for p in after.json()["projects"]] == ["long7"]


@pytest.mark.parametrize(
    ("regex", "status"),
    [
        ("^(?:.|.){28}\u0000", 200),  # the issue's 7 s stall on the demo
        ("((.{1,100}){1,100}){1,100}x", 400),  # froze the server for over a minute
    ],
)
def test_the_issue_regexes_answer_at_once(server, regex, status) -> None:
    find = json.dumps({"desc": {"$regex": regex}})
    resp = requests.get(f"{server.url}/api/warehouse/project", params={"find": find}, timeout=300)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
