"""A new lab's path on a real `bl serve --tls` over an EMPTY archive: the server says how to
make the first admin, `bl admin` makes accounts on its data folder while it runs, both CLIs (ours
and the official npm brainlife@1.8.2, unmodified) log in, ours creates a project, the official
one updates it, and revoking or disabling ends a session at once."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.official import install_official_cli
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

ROOT_PW = "root password 1"
ANN_PW = "ann password 12"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("empty") / "data"
    data_dir.mkdir()
    srv = start_server(data_dir, tls=True, extra=["--max-token-days", "30"])
    yield srv
    stop_server(srv)


def ours(server: LiveServer, home: Path, *args: str, stdin: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), BLHOST=server.url, BL_CA_BUNDLE=str(server.cert))
    return subprocess.run(
        [sys.executable, "-m", "brainlife", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def admin(server: LiveServer, *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "brainlife", "admin", "--data-dir", str(server.data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def official(server: LiveServer, home: Path, *args: str):
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BLHOST": server.hostport,
        "NODE_EXTRA_CA_CERTS": str(server.cert),
    }
    return subprocess.run(
        [str(install_official_cli()), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


def claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@pytest.fixture(scope="module")
def world(server: LiveServer, tmp_path_factory: pytest.TempPathFactory):
    """The path of the README, step by step (each asserted), shared by the tests below."""
    homes = tmp_path_factory.mktemp("homes")
    log = (server.data_dir.parent / f"server-{server.port}.log").read_text()
    assert "has no accounts yet" in log
    assert f"bl admin --data-dir {server.data_dir} user add NAME" in log

    # nobody can log in yet, and sign-up is off
    r = ours(server, homes / "x", "login", "--username", "root", "--password-stdin", stdin="x\n")
    assert r.returncode == 4 and "Login failed" in r.stderr

    r = admin(server, "user", "add", "root", "--admin", "--email", "root@lab.org",
              "--password-stdin", stdin=ROOT_PW + "\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = admin(server, "user", "add", "ann", "--password-stdin", stdin=ANN_PW + "\n")
    assert r.returncode == 0, r.stderr
    assert ROOT_PW not in r.stdout + r.stderr

    root = homes / "root"
    r = ours(server, root, "login", "--username", "root", "--password-stdin", stdin=ROOT_PW)
    assert r.returncode == 0 and "Successfully logged in for 6 days" in r.stdout, r.stderr
    r = ours(server, root, "project", "create", "--name", "Lab study", "--desc", "first",
             "--access", "private", "--member", "ann", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    project = json.loads(r.stdout)
    return {"homes": homes, "root": root, "project": project}


def token_file(home: Path, server: LiveServer, official_cli: bool = False) -> Path:
    host = server.hostport if official_cli else server.url.split("://")[1]
    return home / ".config" / host / ".jwt"


def test_project_create_prints_the_project_and_refreshes_the_token(server, world) -> None:
    project = world["project"]
    assert len(project["_id"]) == 24 and project["name"] == "Lab study"
    assert project["access"] == "private" and len(project["members"]) == 1
    saved = token_file(world["root"], server).read_text().strip()
    gids = claims(saved)["gids"]
    assert gids[: gids.index(0)] == [project["group_id"]]


def test_the_official_cli_logs_in_and_updates_the_project(server, world) -> None:
    home = world["homes"] / "official-root"
    r = official(server, home, "login", "--username", "root", "--password", ROOT_PW, "--ttl", "400")
    # the server's maximum (--max-token-days 30) bounds what --ttl asks for
    assert "Successfully logged in for 29 days, 23 hours" in r.stdout, r.stdout + r.stderr
    (home / "README.md").write_text("# Lab study\n\nT1w of 12 subjects.\n")
    pid = world["project"]["_id"]
    r = official(server, home, "project", "update", "--id", pid, "--desc", "from the official CLI",
                 "--readme", "README.md")  # fmt: skip
    assert r.returncode == 0 and "updated - project" in r.stdout, r.stdout + r.stderr
    r = ours(server, world["root"], "project", "query", "-i", pid, "-j")
    doc = json.loads(r.stdout)[0]
    assert doc["desc"] == "from the official CLI"
    assert doc["readme"].startswith("# Lab study")


def test_a_member_cannot_update_with_either_cli(server, world) -> None:
    pid = world["project"]["_id"]
    ann = world["homes"] / "ann"
    r = ours(server, ann, "login", "--username", "ann", "--password-stdin", stdin=ANN_PW)
    assert r.returncode == 0, r.stderr
    r = ours(server, ann, "project", "update", pid, "--desc", "by ann")
    assert r.returncode == 4 and "Only the project's admins" in r.stderr, r.stderr
    home = world["homes"] / "official-ann"
    official(server, home, "login", "--username", "ann", "--password", ANN_PW)
    r = official(server, home, "project", "update", "--id", pid, "--desc", "by ann")
    assert "updated - project" not in r.stdout
    r = ours(server, world["root"], "project", "query", "-i", pid, "-j")
    assert json.loads(r.stdout)[0]["desc"] != "by ann"


def test_our_project_update_adds_and_removes_people(server, world) -> None:
    pid = world["project"]["_id"]
    r = ours(server, world["root"], "project", "update", pid, "--remove-member", "ann",
             "--guest", "ann", "--access", "public", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["members"] == [] and len(doc["guests"]) == 1 and doc["access"] == "public"
    r = ours(server, world["root"], "project", "update", pid, "--admin", "nobody-here")
    assert r.returncode == 3 and "No active user 'nobody-here'" in r.stderr


def test_a_guest_made_a_member_is_no_longer_a_guest(server, world) -> None:
    """Members and guests exclude each other: `--member` takes a guest out of the guests (they
    stayed listed as both), `--guest` a member out of the members; admins are their own list."""
    r = ours(server, world["root"], "project", "create", "--name", "roles", "--guest", "ann",
             "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    pid = json.loads(r.stdout)["_id"]
    ann = json.loads(r.stdout)["guests"]
    assert len(ann) == 1
    r = ours(server, world["root"], "project", "update", pid, "--member", "ann", "--json")
    doc = json.loads(r.stdout)
    assert doc["members"] == ann and doc["guests"] == [], doc
    r = ours(server, world["root"], "project", "update", pid, "--member", "ann", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["members"] == ann, r.stderr  # no change
    r = ours(server, world["root"], "project", "update", pid, "--guest", "ann", "--admin", "ann",
             "--json")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["guests"] == ann and doc["members"] == [] and ann[0] in doc["admins"], doc


def test_revoked_and_disabled_sessions_end_at_once(server, world) -> None:
    zed = world["homes"] / "zed"
    r = admin(server, "user", "add", "zed", "--password-stdin", stdin="zed password 1\n")
    assert r.returncode == 0, r.stderr
    r = ours(server, zed, "login", "--username", "zed", "--password-stdin", stdin="zed password 1")
    assert r.returncode == 0, r.stderr
    assert ours(server, zed, "project", "create", "--name", "z").returncode == 0
    # the user revokes its own token
    listed = json.loads(ours(server, zed, "token", "list", "-j").stdout)
    jti = claims(token_file(zed, server).read_text().strip())["jti"]
    assert jti in {t["jti"] for t in listed}
    assert ours(server, zed, "token", "revoke", jti).returncode == 0
    r = ours(server, zed, "project", "create", "--name", "z2")
    assert r.returncode == 4 and "revoked" in r.stderr, r.stderr
    # logs in again; an admin disables the account: refused at once, login too
    ours(server, zed, "login", "--username", "zed", "--password-stdin", stdin="zed password 1")
    r = admin(server, "user", "disable", "zed")
    assert r.returncode == 0, r.stderr
    r = ours(server, zed, "token", "list")
    assert r.returncode == 4 and "disabled" in r.stderr, r.stderr
    r = ours(server, zed, "login", "--username", "zed", "--password-stdin", stdin="zed password 1")
    assert r.returncode == 4 and "disabled" in r.stderr
    # the admin's table shows it
    r = admin(server, "user", "list")
    assert any(
        line.split()[1] == "zed" and "disabled" in line for line in r.stdout.splitlines()[1:]
    )
    users = json.loads(admin(server, "user", "list", "--json").stdout)
    assert {u["username"] for u in users} == {"root", "ann", "zed"}
    assert all("password_hash" not in u for u in users)


def test_admin_errors_are_one_line(server) -> None:
    r = admin(server, "user", "add", "root", "--password-stdin", stdin="another password\n")
    assert r.returncode == 9 and r.stderr.strip() == "Error: The username 'root' is taken."
    r = admin(server, "user", "disable", "nobody")
    assert r.returncode == 3 and "No user 'nobody'" in r.stderr
    r = admin(server, "user", "disable", "root")
    assert r.returncode == 9 and "last active admin" in r.stderr
    r = admin(server, "token", "revoke")
    assert r.returncode == 2
    r = subprocess.run(
        [sys.executable, "-m", "brainlife", "admin", "--data-dir", str(server.data_dir) + "-typo",
         "user", "list"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 3 and "No archive in" in r.stderr
    assert not Path(str(server.data_dir) + "-typo").exists()


def test_groups_from_the_command_line(server, world) -> None:
    r = admin(server, "group", "add", "imaging", "--desc", "MRI people", "--admin", "root",
              "--member", "ann", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    gid = json.loads(r.stdout)["id"]
    assert gid > world["project"]["group_id"]
    r = admin(server, "group", "members", "imaging", "--remove", "ann", "--add-admin", "ann")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert sorted(lines["Admins"].strip().split(", ")) == ["ann", "root"]
    assert lines["Members"].strip() == ""


def test_the_empty_archive_has_the_catalogue_and_admins_add_to_it(server, world, tmp_path) -> None:
    home = world["homes"] / "official-root"
    official(server, home, "login", "--username", "root", "--password", ROOT_PW)
    r = official(server, home, "datatype", "query", "-q", "func")
    assert "Name: neuro/func/task" in r.stdout, r.stdout + r.stderr
    spec = tmp_path / "eeg.json"
    spec.write_text(json.dumps({
        "name": "lab/eeg", "desc": "EEG", "files": [{"id": "eeg", "filename": "eeg.edf"}],
    }))  # fmt: skip
    r = admin(server, "datatype", "add", str(spec))
    assert r.returncode == 0 and "Added datatype lab/eeg" in r.stdout, r.stderr
    r = admin(server, "datatype", "add", str(spec))
    assert r.returncode == 9 and "already has a datatype 'lab/eeg'" in r.stderr
    spec.write_text("{not json")
    r = admin(server, "datatype", "add", str(spec))
    assert r.returncode == 2 and "not JSON" in r.stderr
    r = ours(server, world["root"], "datatype", "query", "-q", "eeg", "-j")
    assert [d["files"][0]["filename"] for d in json.loads(r.stdout)] == ["eeg.edf"]


PARTICIPANTS = (
    "participant_id\tage\tsex\tgroup\n"
    "sub-01\t34\tF\tcontrol\n"
    "sub-02\tn/a\tM\tpatient\n"
    "sub-03\t27\tF\tcontrol\n"
)


def test_participants_round_trip_through_both_clis(server, world, tmp_path) -> None:
    pid = world["project"]["_id"]
    home = world["homes"] / "official-root"
    official(server, home, "login", "--username", "root", "--password", ROOT_PW)
    (home / "participants.tsv").write_text(PARTICIPANTS)
    r = official(server, home, "project", "update", "--id", pid, "--participants",
                 "participants.tsv")  # fmt: skip
    assert "updated - participants record" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "exported.tsv"
    r = ours(server, world["root"], "project", "participants", "export", pid, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == PARTICIPANTS
    # ours imports a changed table; the export is what was imported
    changed = PARTICIPANTS.replace("sub-03\t27", "sub-03\t28") + "sub-04\t51\tM\tpatient\n"
    (tmp_path / "p2.tsv").write_text(changed)
    r = ours(
        server, world["root"], "project", "participants", "import", pid, str(tmp_path / "p2.tsv")
    )
    assert r.returncode == 0 and "Imported 4 participants" in r.stdout, r.stderr
    r = ours(server, world["root"], "project", "participants", "export", pid)
    assert r.stdout == changed
    # a malformed table: one line naming the problem, and the archive's table unchanged
    (tmp_path / "bad.tsv").write_text("participant_id\tage\nsub-01\t3\t4\n")
    r = ours(
        server, world["root"], "project", "participants", "import", pid, str(tmp_path / "bad.tsv")
    )
    assert r.returncode == 1 and "line 2: 3 cells where the header has 2" in r.stderr
    r = ours(server, world["root"], "project", "participants", "export", pid)
    assert r.stdout == changed
