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
