"""A 500 (a bug): one log line with an error id and the traceback once; the JSON body carries the
same id, so a user's report leads to the line."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from brainlife.server.app import create_app


def test_a_500_logs_one_line_with_the_id_the_body_carries(archive, monkeypatch, caplog):
    from brainlife.server.routes import warehouse

    def broken(**_kwargs):
        raise RuntimeError("a bug in a service")

    monkeypatch.setattr(warehouse.pubs, "list_pubs", broken)
    app = create_app(archive=archive)
    caplog.set_level(logging.INFO)
    # raise_server_exceptions (the default) re-raises whatever reaches Starlette's last resort,
    # which re-raises for uvicorn to log a second time: here nothing does
    with TestClient(app) as client:
        r = client.get("/api/warehouse/pub")
    assert r.status_code == 500
    body = r.json()
    error_id = body["error_id"]
    assert len(error_id) == 16
    assert error_id in body["message"] and "server log" in body["message"]
    assert "a bug in a service" not in body["message"]  # no internals to the caller
    records = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(records) == 1
    (record,) = records
    line = record.getMessage()
    assert "\n" not in line
    assert error_id in line and "/api/warehouse/pub" in line and "RuntimeError" in line
    assert record.exc_info is not None  # the traceback, once
    assert "a bug in a service" in caplog.text
    assert caplog.text.count("Traceback") == 1
