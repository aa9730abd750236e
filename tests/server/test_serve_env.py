"""`bl serve`'s settings from the environment: the failed-login delay a test server may set
(`BL_TEST_FAILED_LOGIN_DELAY`), so that tests sending many wrong passwords need not sleep."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brainlife.server import serve


def test_the_delay_is_one_second_unless_a_test_server_sets_it(monkeypatch, tmp_path):
    monkeypatch.delenv(serve.FAILED_LOGIN_DELAY_ENV, raising=False)
    assert serve._settings(tmp_path, None).failed_login_delay == 1.0
    monkeypatch.setenv(serve.FAILED_LOGIN_DELAY_ENV, "0")
    assert serve._settings(tmp_path, None).failed_login_delay == 0.0
    monkeypatch.setenv(serve.FAILED_LOGIN_DELAY_ENV, "0.25")
    assert serve._settings(tmp_path, None).failed_login_delay == 0.25


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "3600"])
def test_a_bad_delay_stops_bl_serve_with_a_message_not_a_traceback(tmp_path, value):
    result = subprocess.run(
        [sys.executable, "-m", "brainlife", "serve", "--data-dir", str(tmp_path / "d")],
        env={"PATH": "/usr/bin:/bin", serve.FAILED_LOGIN_DELAY_ENV: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{serve.FAILED_LOGIN_DELAY_ENV}={value!r} must be a number of seconds" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()  # refused before the archive was opened
