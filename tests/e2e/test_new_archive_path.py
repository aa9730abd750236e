"""Issue #10's "Done when", as one path on a real `bl serve --tls` over an EMPTY archive: the
server says how to make the first admin, `bl admin` makes it, both CLIs (ours and the official
npm brainlife@1.8.2, unmodified) log in, ours creates a project, both upload (a file each, and a
BIDS tree each), ours corrects one object and deletes another, publishes a release, and the
document's release loop downloads it, byte for byte. Every step is asserted where it happens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.test_document import fenced_blocks
from tests.e2e.test_empty_archive import admin, official, ours

pytestmark = pytest.mark.compat

PW = "first admin pw 1"
DOC_RELEASE = "5bab993aa918ae0027024192"  # the release id the document's loop names


def _json(proc: subprocess.CompletedProcess[str]):  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _bids(root: Path, subject: str, data: bytes) -> None:
    anat = root / f"sub-{subject}" / "anat"
    anat.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "lab", "BIDSVersion": "1.6.0"}')
    (root / "participants.tsv").write_text(f"participant_id\tage\nsub-{subject}\t30\n")
    (anat / f"sub-{subject}_T1w.nii.gz").write_bytes(data)
    (anat / f"sub-{subject}_T1w.json").write_text('{"EchoTime": 0.004}')


def test_a_new_archive_from_first_admin_to_a_downloaded_release(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, tls=True)
    try:
        # 1. an empty archive says how to make its first admin; bl admin makes it
        log = (data_dir.parent / f"server-{server.port}.log").read_text()
        assert f"bl admin --data-dir {data_dir} user add NAME" in log
        r = admin(server, "user", "add", "lab", "--admin", "--password-stdin", stdin=PW + "\n")
        assert r.returncode == 0, r.stderr

        # 2. ours logs in and creates a project; the official CLI logs in too
        mine, theirs, work = tmp_path / "mine", tmp_path / "theirs", tmp_path / "work"
        r = ours(server, mine, "login", "--username", "lab", "--password-stdin", stdin=PW)
        assert r.returncode == 0 and "Successfully logged in" in r.stdout, r.stderr
        project = _json(ours(server, mine, "project", "create", "--name", "Lab", "--json"))
        pid = project["_id"]
        r = official(server, theirs, "login", "--username", "lab", "--password", PW)
        assert "Successfully logged in" in r.stdout, r.stdout + r.stderr

        # 3. uploads: one file with each CLI, one BIDS tree with each
        work.mkdir()
        (work / "a.nii.gz").write_bytes(b"subject one " * 500)
        (work / "b.nii.gz").write_bytes(b"subject two " * 500)
        up = ["data", "upload", "-p", pid, "-d", "neuro/anat/t1w"]
        a, b = str(work / "a.nii.gz"), str(work / "b.nii.gz")
        theirs_obj = _json(official(server, theirs, *up, "-s", "01", "--t1", a, "-j"))
        our_obj = _json(ours(server, mine, *up, "-s", "02", "--t1", b, "-j"))
        assert theirs_obj["status"] == "stored" and our_obj["status"] == "stored"
        _bids(work / "bids-theirs", "03", b"bids three " * 400)
        _bids(work / "bids-ours", "04", b"bids four " * 400)
        r = official(server, theirs, "bids", "upload", "-p", pid, str(work / "bids-theirs"))
        assert r.returncode == 0 and "Registered data object:" in r.stdout, r.stdout + r.stderr
        r = ours(server, mine, "bids", "upload", "-p", pid, str(work / "bids-ours"))
        assert r.returncode == 0, r.stdout + r.stderr
        listed = _json(ours(server, mine, "data", "query", "-p", pid, "--json"))
        by_subject = {d["meta"]["subject"]: d for d in listed}
        assert sorted(by_subject) == ["01", "02", "03", "04"]
        assert all(d["status"] == "stored" for d in listed)

        # 4. correct one object, delete another
        fix = ours(server, mine, "data", "update", our_obj["_id"], "--desc", "fixed", "--tag", "ok")
        assert fix.returncode == 0, fix.stderr
        gone = ours(server, mine, "data", "delete", by_subject["04"]["_id"])
        assert gone.returncode == 0, gone.stderr
        listed = _json(ours(server, mine, "data", "query", "-p", pid, "--json"))
        by_subject = {d["meta"]["subject"]: d for d in listed}
        assert sorted(by_subject) == ["01", "02", "03"]
        assert by_subject["02"]["desc"] == "fixed" and by_subject["02"]["tags"] == ["ok"]

        # 5. publish a release of what is there
        pub = _json(ours(server, mine, "pub", "create", "-p", pid, "-n", "Lab data", "--json"))
        rel = _json(ours(server, mine, "pub", "release", pub["_id"], "--name", "1", "--json"))
        pubs = _json(ours(server, mine, "pub", "query", "-i", pub["_id"], "--json"))
        (release,) = pubs[0]["releases"]
        assert release["name"] == "1" and release["count"] == 3, (rel, release)

        # 6. the document's release loop, verbatim but for the release id and subject
        block = fenced_blocks()[5][1]
        assert DOC_RELEASE in block and "--subject 0001" in block
        script = block.replace(DOC_RELEASE, release["_id"]).replace(
            "--subject 0001", "--subject 01"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
        env.update(HOME=str(mine), BLHOST=server.url, BL_CA_BUNDLE=str(server.cert))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        loop = tmp_path / "loop"
        loop.mkdir()
        r = subprocess.run(["bash", "-c", script], cwd=loop, env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        got = loop / theirs_obj["_id"] / "t1.nii.gz"
        assert got.read_bytes() == (work / "a.nii.gz").read_bytes()
        assert [p.name for p in loop.iterdir()] == [theirs_obj["_id"]]
    finally:
        stop_server(server)


def _bl_at(host: str, home: Path, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), BLHOST=host)
    return subprocess.run([sys.executable, "-m", "brainlife", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _said(r: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """A refusal with this exit code: one `Error:` line (a list may follow it) and these words."""
    lines = [x for x in r.stderr.splitlines() if x.startswith("Error:")]
    assert r.returncode == code and len(lines) == 1, (r.returncode, r.stdout + r.stderr)
    assert "Traceback" not in r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)
    return r.stderr


def test_a_new_admins_mistakes_each_say_what_to_do_next(tmp_path: Path) -> None:
    """The same path, each step first done wrong, as a new lab admin does: every refusal is
    one line, its own exit code, and names the next step; nothing wrong is made."""
    from tests.conftest import free_port

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    mine, bob, nobody, theirs = (tmp_path / n for n in ("mine", "bob", "nobody", "theirs"))
    # logging in before the server is up
    r = _bl_at(f"http://127.0.0.1:{free_port()}", mine, "login", "--username", "lab",
               "--password-stdin", stdin=PW)  # fmt: skip
    _said(r, 5, "Cannot connect", "BLHOST")
    server = start_server(data_dir, tls=True)
    try:
        # logging in before there is an admin: both CLIs are told how to make one
        r = ours(server, mine, "login", "--username", "lab", "--password-stdin", stdin=PW)
        _said(r, 4, "Login failed", "no accounts yet", "bl admin", "user add")
        r = official(server, theirs, "login", "--username", "lab", "--password", PW)
        assert "no accounts yet" in r.stdout + r.stderr, r.stdout + r.stderr
        # the first admin made on a mistyped data folder: refused, no second archive
        typo = Path(f"{data_dir}-typo")
        r = subprocess.run(
            [sys.executable, "-m", "brainlife", "admin", "--data-dir", str(typo), "user", "add",
             "lab", "--admin", "--password-stdin"],
            input=PW + "\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        _said(r, 3, "No archive in", "--data-dir given to 'bl serve'")
        assert not typo.exists()
        assert admin(server, "user", "add", "lab", "--admin", "--password-stdin",
                     stdin=PW + "\n").returncode == 0  # fmt: skip
        assert admin(server, "user", "add", "bob", "--password-stdin",
                     stdin="bob password 1\n").returncode == 0  # fmt: skip
        # a wrong password: no talk of a missing admin now
        r = ours(server, mine, "login", "--username", "lab", "--password-stdin", stdin="nope")
        assert "no accounts" not in _said(r, 4, "Incorrect user/password")
        assert ours(server, mine, "login", "--username", "lab", "--password-stdin",
                    stdin=PW).returncode == 0  # fmt: skip
        pid = _json(ours(server, mine, "project", "create", "--name", "Lab", "--json"))["_id"]

        # the project, asked for by someone not logged in: told to log in
        r = ours(server, nobody, "data", "query", "-p", pid)
        _said(r, 4, "not logged in", "bl login")
        # uploads done wrong: a datatype misspelt, a required file missing
        t1 = tmp_path / "t1.nii.gz"
        t1.write_bytes(b"t1 bytes " * 300)
        up = ["data", "upload", "-p", pid, "-s", "01"]
        r = ours(server, mine, *up, "-d", "neuro/anat/t1", "--t1", str(t1))
        _said(r, 3, "neuro/anat/t1w", "bl datatype query")
        r = ours(server, mine, *up, "-d", "neuro/dwi", "--dwi", str(t1))
        _said(r, 10, "needs --bvecs", "--bvals")
        # someone not in the project: told whom to ask, as a guest too
        assert ours(server, bob, "login", "--username", "bob", "--password-stdin",
                    stdin="bob password 1").returncode == 0  # fmt: skip
        r = ours(server, bob, *up, "-d", "neuro/anat/t1w", "--t1", str(t1))
        _said(r, 3, "No project matches", "ask one of its admins")
        assert ours(server, mine, "project", "update", pid, "--guest", "bob").returncode == 0
        r = ours(server, bob, *up, "-d", "neuro/anat/t1w", "--t1", str(t1))
        _said(r, 4, "only its admins and members", "ask one of its admins")
        obj = _json(ours(server, mine, *up, "-d", "neuro/anat/t1w", "--t1", str(t1), "-j"))

        # a correction that changes nothing; a release that matches nothing
        r = ours(server, mine, "data", "update", obj["_id"])
        assert r.returncode == 2 and "--desc" in r.stderr, r.stderr
        pub = _json(ours(server, mine, "pub", "create", "-p", pid, "-n", "Lab data", "--json"))
        r = ours(server, mine, "pub", "release", pub["_id"], "--name", "1", "--subject", "99")
        _said(r, 3, "Nothing to release", f"bl data query -p {pid}", "--dry-run")
        assert _json(ours(server, mine, "pub", "query", "-i", pub["_id"], "--json"))[0][
            "releases"
        ] in ([], None)
        # a released object, deleted or corrected: refused, and told what to do instead
        assert ours(server, mine, "pub", "release", pub["_id"], "--name", "1").returncode == 0
        for change in (["delete", obj["_id"]], ["update", obj["_id"], "--desc", "x"]):
            r = ours(server, mine, "data", *change)
            _said(r, 9, "in a release", "upload a corrected")
        # the document's loop given the publication's id instead of its release's: told so
        (rel,) = _json(ours(server, mine, "pub", "query", "-i", pub["_id"], "--json"))[0][
            "releases"
        ]
        for fmt in ([], ["--json"]):
            r = ours(server, mine, "data", "query", "--pub", pub["_id"], *fmt)
            assert r.returncode == 0 and "is a publication, not a release" in r.stderr, r.stderr
            assert f"--pub {rel['_id']}" in r.stderr
        assert json.loads(r.stdout) == []
        # an account's sessions revoked: its next command says to log in again
        assert admin(server, "token", "revoke", "--user", "bob").returncode == 0
        r = ours(server, bob, "data", "query", "-p", pid)
        _said(r, 4, "revoked", "bl login")
    finally:
        stop_server(server)
