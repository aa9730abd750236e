"""The user document (../shared/seeds/*.txt), verbatim: every command and script in it runs with
bash (and the venv's python) against a real `bl serve` over the demo archive, with only the host
changed (BLHOST, and the host in the Python script's URLs and token path)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# The project's document lives in ../shared/seeds/; a verbatim copy is kept beside this file so
# the tests run from any clone, and a test below fails if the two ever differ.
DOCUMENT = Path(__file__).with_name("document.txt")
SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
DOCS = [DOCUMENT]
BIN = Path(sys.executable).parent


def test_the_copy_is_the_shared_document() -> None:
    shared = sorted(SEEDS.glob("*.txt"))
    if shared:  # CI and developers have shared/ beside the clone
        assert DOCUMENT.read_text() == shared[0].read_text()
    assert "bl data download -i 5a050ad5d76a2a002737e572" in DOCUMENT.read_text()


def fenced_blocks() -> list[tuple[str, str]]:
    """(language, text) of every ``` block of the document."""
    text = DOCS[0].read_text()
    return [
        (m.group(1).strip(), m.group(2))
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
    ]


def prompt_commands(block: str) -> list[tuple[str, str]]:
    """``$ command`` lines of a block, each with the output shown under it."""
    out: list[tuple[str, str]] = []
    for part in re.split(r"^\$ ", block.strip("\n"), flags=re.M)[1:]:
        command, _, shown = part.partition("\n")
        out.append((command, shown.strip("\n")))
    return out


@pytest.fixture
def sh(live_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.update(
        BLHOST=live_server.url,
        HOME=os.environ["HOME"],
        BL_USERNAME="hayashis",
        BL_PASSWORD="hayashis",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )

    def run(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    run("bl login")
    run.work = work  # type: ignore[attr-defined]
    return run


def test_the_document_has_the_expected_blocks() -> None:
    langs = [lang for lang, _ in fenced_blocks()]
    assert langs == ["", "", "", "bash", "bash", "bash", "python"]


def test_project_query_output_is_the_documents(sh) -> None:  # type: ignore[no-untyped-def]
    ((command, shown),) = prompt_commands(fenced_blocks()[0][1])
    assert command == "bl project query -q o3d"
    assert sh(command).stdout.strip("\n") == shown


def test_data_query_last_block_is_the_documents(sh) -> None:  # type: ignore[no-untyped-def]
    ((command, shown),) = prompt_commands(fenced_blocks()[1][1])
    got = sh(command).stdout.strip("\n").split("\n\n")
    want = shown.split("\n\n")
    date = re.compile(r"^Create Date: .*$", re.M)  # local time zone and "time ago" vary
    assert date.sub("", got[-2]) == date.sub("", want[-2])
    assert re.search(
        r"^Create Date: \d+/\d+/\d{4}, \d+:\d\d:\d\d [AP]M \(\d+ years ago\)$", got[-2], re.M
    )
    # the document's hint drops the user's filters; ours keeps them (reference §8)
    assert got[-1].startswith(want[-1].split(" run ")[0])
    assert got[-1].endswith("--skip 100'")


def test_single_download_and_ls(sh) -> None:  # type: ignore[no-untyped-def]
    (download, shown_dl), (ls, shown_ls) = prompt_commands(fenced_blocks()[2][1])
    assert sh(download).stdout.strip() == shown_dl
    assert sh(ls).stdout.strip() == shown_ls


def test_bulk_download_script(sh) -> None:  # type: ignore[no-untyped-def]
    script = fenced_blocks()[3][1]
    proc = sh(script)
    rows = json.loads((sh.work / "all.json").read_text())
    assert rows, "the query returned data objects"
    subjects = {r["meta"]["subject"] for r in rows}
    root = sh.work / "2019_tractprofile"
    assert {p.name for p in root.iterdir()} == subjects
    downloaded = [p for p in root.rglob("*") if p.is_file()]
    assert downloaded
    assert not list(root.rglob("*.bl-partial"))
    assert "downloading subject:" in proc.stdout


def test_login_then_pub_releases(sh) -> None:  # type: ignore[no-untyped-def]
    block = fenced_blocks()[4][1]
    script, _, shown = block.partition("\n[")
    assert script.strip().splitlines()[-1] == "bl pub query -q o3d --json | jq .[0].releases"
    stdout = sh(script).stdout
    assert stdout.startswith("Successfully logged in for ")  # bl login, non-interactive here
    # jq prints exactly the document's text: same values, same key order.
    assert stdout[stdout.index("\n[") + 1 :].strip() == ("[" + shown).strip()


def test_release_download_loop(sh) -> None:  # type: ignore[no-untyped-def]
    script = fenced_blocks()[5][1]
    ids = sh(
        "bl data query --limit 200 --pub 5bab993aa918ae0027024192 --subject 0001 --json"
        " | jq -r '.[]._id'"
    ).stdout.split()
    assert ids
    sh(script)
    for dsid in ids:
        folder = sh.work / dsid
        assert folder.is_dir() and any(folder.iterdir())


def test_python_task_script_with_only_the_host_changed(sh, live_server) -> None:  # type: ignore[no-untyped-def]
    script = fenced_blocks()[6][1]
    script = script.replace("https://brainlife.io", live_server.url)
    script = script.replace("brainlife.io", live_server.hostport)  # the token folder
    (sh.work / "tasks.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "tasks.py"],
        cwd=sh.work,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = sorted(sh.work.glob("*.tar.gz"))
    assert saved and len(saved) == len(proc.stdout.splitlines())
    for path in saved:
        with tarfile.open(path) as tar:
            assert tar.getnames()
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    # the same job as one command, named the same way
    sh(
        "bl task download --group 851 --service brainlife/app-freesurfer --status finished "
        "--path freesurfer/output/stats --name-by subject -d cmd"
    )
    ours = sorted(p.name for p in (sh.work / "cmd").iterdir() if p.name != "bl-lock.json")
    assert ours == [p.name for p in saved]
    for path in saved:  # the server's .tar.gz is byte-stable: the same bytes either way
        assert (sh.work / "cmd" / path.name).read_bytes() == path.read_bytes()
    assert (sh.work / "cmd" / "bl-lock.json").exists()  # so a rerun keeps unchanged ones


def test_readme_library_snippet(sh, live_server) -> None:  # type: ignore[no-untyped-def]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Python library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    (sh.work / "snippet.py").write_text(code.group(1))
    env = {**os.environ, "BLHOST": live_server.url}
    proc = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=sh.work,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (sh.work / "0001.tar.gz").read_bytes()[:2] == b"\x1f\x8b"
