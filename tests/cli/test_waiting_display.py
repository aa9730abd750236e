"""The bulk progress display says when and why retries wait (issue #8): on a terminal the progress
line, without one a throttled `Waiting: …` line on stderr."""

from __future__ import annotations

import time
from typing import Any

import pytest

from brainlife.cli import _output
from brainlife.client import Event
from brainlife.client._http import Waiting


def waiting(reason: str, waited: float, retry_in: float, gives_up_in: float) -> Event:
    return Event("waiting", Waiting(reason, time.time() - waited, retry_in, gives_up_in).to_json())


PROGRESS = Event(
    "progress",
    {
        "bytes_done": 10,
        "bytes_total": 100,
        "bytes_transferred": 10,
        "objects_done": 2,
        "objects_failed": 0,
        "objects": 5,
        "seconds": 1.0,
    },
)


def test_progress_line_says_it_is_waiting_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    bars: list[Any] = []
    real = _output._rich_bar

    def recorded() -> Any:
        bars.append(real())
        return bars[-1]

    monkeypatch.setattr(_output, "_rich_bar", recorded)
    with _output.bulk_display(False, enabled=True) as handle:
        handle(PROGRESS)
        handle(waiting("server unreachable", 20, 8, 100))
        text = bars[0].tasks[0].description
        assert text.startswith("objects 2/5: server unreachable since ")
        assert text.endswith("retrying in 8s (gives up in 1m40s)")
        handle(Event("waiting-over", {}))
        assert bars[0].tasks[0].description == "objects 2/5"


def test_without_a_terminal_waits_are_lines_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with _output.bulk_display(False, enabled=False) as handle:
        handle(waiting("server unreachable", 0.1, 0.3, 119))  # a quick retry: quiet
        handle(waiting("server unreachable", 3, 2, 117))
        handle(waiting("server unreachable", 5, 4, 115))  # the same wait, soon after: quiet
        handle(waiting("server busy (HTTP 503)", 6, 2, 114))  # a new reason: told
        handle(Event("waiting-over", {}))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("Waiting: server unreachable since ")
    assert lines[0].endswith("retrying in 2s (gives up in 1m57s).")
    assert lines[1].startswith("Waiting: server busy (HTTP 503) since ")
    assert lines[2] == "The server answers again; continuing."
