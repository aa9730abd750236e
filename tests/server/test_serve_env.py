"""`bl serve`'s settings from the environment: the failed-login delay a test server may set
(`BL_TEST_FAILED_LOGIN_DELAY`), so that tests sending many wrong passwords need not sleep, and the
Argon2 cost of new password hashes (`BL_TEST_PASSWORD_COST`), so that each test login costs
microseconds of CPU: both only ever for test servers, the defaults never weaker."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from brainlife.server import serve
from brainlife.server.services import auth
from tests.conftest import TEST_PASSWORD_COST, LiveServer


def test_the_delay_is_one_second_unless_a_test_server_sets_it(monkeypatch, tmp_path):
    monkeypatch.delenv(serve.FAILED_LOGIN_DELAY_ENV, raising=False)
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).failed_login_delay == 1.0
    monkeypatch.setenv(serve.FAILED_LOGIN_DELAY_ENV, "0")
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).failed_login_delay == 0.0
    monkeypatch.setenv(serve.FAILED_LOGIN_DELAY_ENV, "0.25")
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).failed_login_delay == 0.25


def _refused(tmp_path, env: dict[str, str]) -> str:
    """`bl serve`'s message when `env` makes it refuse to start, checked end to end."""
    result = subprocess.run(
        [sys.executable, "-m", "brainlife", "serve", "--data-dir", str(tmp_path / "d")],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()  # refused before the archive was opened
    return result.stderr


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "3600"])
def test_a_bad_delay_stops_bl_serve_with_a_message_not_a_traceback(tmp_path, monkeypatch, value):
    # each value in process (what `bl serve` runs, up to the point it refuses) ...
    monkeypatch.setenv(serve.FAILED_LOGIN_DELAY_ENV, value)
    with pytest.raises(SystemExit) as refused:
        serve.run(serve.ServeOptions(data_dir=tmp_path / "d", port=0))
    message = f"{serve.FAILED_LOGIN_DELAY_ENV}={value!r} must be a number of seconds"
    assert message in str(refused.value.code)
    assert not (tmp_path / "d").exists()  # refused before the archive was opened
    # ... and one through a real `bl serve` (a message on stderr, no traceback): one process
    # start costs ~1 s of CPU, the same for every value
    if value == "nan":
        assert message in _refused(tmp_path, {serve.FAILED_LOGIN_DELAY_ENV: value})


def _cost(password_hash: str) -> str:
    return password_hash.split("$")[3]


def test_a_fresh_process_hashes_passwords_at_argon2s_default_cost(tmp_path):
    """What `bl serve` without the variable (every real archive) hashes with."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from brainlife.server.services import auth; print(auth.hash_password('pw'))",
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_the_cost_is_the_default_unless_a_test_server_names_another(monkeypatch):
    monkeypatch.delenv(serve.PASSWORD_COST_ENV, raising=False)
    try:
        assert serve._password_cost() is None
        auth.use_password_cost("default")
        strong = auth.hash_password("pw")
        assert _cost(strong) == "m=65536,t=3,p=4"
        monkeypatch.setenv(serve.PASSWORD_COST_ENV, "test")
        assert serve._password_cost() == "test"
        cheap = auth.hash_password("pw")
        assert _cost(cheap) == "m=8,t=1,p=1"
        # each hash is verified at its own cost, whatever this process hashes new ones at
        assert auth.verify_password(strong, "pw") and not auth.verify_password(strong, "pW")
        auth.use_password_cost("default")
        assert auth.verify_password(cheap, "pw") and not auth.verify_password(cheap, "pW")
        # the unknown-user dummy follows the cost, so it still costs what a known user costs
        assert _cost(auth._dummy_hash()) == "m=65536,t=3,p=4"
    finally:
        auth.use_password_cost(TEST_PASSWORD_COST)


def test_a_bad_cost_stops_bl_serve_with_a_message_not_a_traceback(tmp_path):
    stderr = _refused(tmp_path, {serve.PASSWORD_COST_ENV: "weak"})
    assert f"{serve.PASSWORD_COST_ENV}='weak' must be one of default, test" in stderr


def test_test_servers_say_they_hash_cheaply_and_their_demo_accounts_are_cheap(
    live_server: LiveServer,
):
    log = (live_server.data_dir.parent / f"server-{live_server.port}.log").read_text()
    assert f"'test' Argon2 cost ({serve.PASSWORD_COST_ENV}, meant for test servers)" in log
    from brainlife.server.archive import open_archive
    from brainlife.server.models import User
    from brainlife.server.settings import Settings

    archive = open_archive(Settings(data_dir=live_server.data_dir))
    with archive.session() as session:
        hashes = session.query(User.password_hash).all()
    archive.engine.dispose()
    assert hashes and {_cost(h) for (h,) in hashes} == {"m=8,t=1,p=1"}


def test_bl_serve_hands_every_option_to_serve_options_with_the_same_defaults(monkeypatch):
    """`bl serve` builds `ServeOptions(**options)` from click's parsed values: a new option
    without its field (or a field whose default differs from the option's) is caught here, not
    by the first researcher starting a server."""
    from brainlife.cli.cmd_serve import serve as command

    for name in ("BL_DATA_DIR", "BL_DATABASE_URL", "BL_STORE", "BL_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(serve.FORWARDED_ALLOW_IPS_ENV, raising=False)
    fields = [f.name for f in dataclasses.fields(serve.ServeOptions)]
    assert sorted(p.name for p in command.params if p.name) == sorted(fields)
    parsed = command.make_context("serve", []).params
    assert serve.ServeOptions(**parsed) == serve.ServeOptions()
    given = command.make_context("serve", ["--port", "9", "--tls-name", "a", "--no-extensions"])
    options = serve.ServeOptions(**given.params)
    assert (options.port, options.tls_names, options.no_extensions) == (9, ("a",), True)


def test_the_finalize_runner_passes_every_5_s_unless_a_test_server_sets_it(monkeypatch, tmp_path):
    monkeypatch.delenv(serve.FINALIZE_POLL_ENV, raising=False)
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).finalize_poll == 5.0
    monkeypatch.setenv(serve.FINALIZE_POLL_ENV, "0.2")
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).finalize_poll == 0.2
    monkeypatch.setenv(serve.FINALIZE_POLL_ENV, "0")  # never a busy loop
    assert serve._settings(serve.ServeOptions(data_dir=tmp_path)).finalize_poll == 0.05
    monkeypatch.setenv(serve.FINALIZE_POLL_ENV, "120")
    with pytest.raises(SystemExit) as refused:
        serve._settings(serve.ServeOptions(data_dir=tmp_path))
    assert f"{serve.FINALIZE_POLL_ENV}='120' must be a number of seconds from 0 to 60" in str(
        refused.value.code
    )
