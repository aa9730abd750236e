"""Names a server supplies never take a download outside -d, nor over a file it did not write:
hostile task subjects (`--name-by subject`) and `Content-Disposition` file names, sent by a
recording local server to the real `bl`."""

from __future__ import annotations

import io
import re
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from brainlife.client._config import write_token_file
from brainlife.client.transfer.layout import safe_name
from tests.fake_server import FakeServer, Req, make_jwt

TASK = "5c0e8f0a1b2c3d4e5f607182"


@pytest.fixture
def bl(fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    write_token_file(Path.home() / ".config" / fake.hostport / ".jwt", make_jwt(time.time() + 600))
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args))


def targz(content: bytes = b"hello\n") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("stats/a.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def every_file(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("/tmp/x", "tmp-x"),
        ("../../ESCAPE", "ESCAPE"),
        (".bashrc", "bashrc"),
        ("a\x00b\x1b[31mc", "ab[31mc"),
        ("con", "_con"),
        ("sub 01. ", "sub 01"),
        ("a\\b", "a-b"),
        ("", None),
        (".", None),
        ("..", None),
        ("/", None),
    ],
)
def test_safe_name(raw: str, safe: str | None) -> None:
    assert safe_name(raw) == safe


def test_safe_name_shortens_keeping_the_extension() -> None:
    name = safe_name("é" * 300 + ".tar.gz")
    assert name is not None and name.endswith("é.tar.gz") and len(name.encode()) <= 255


def test_task_subjects_never_leave_the_download_folder(
    fake: FakeServer, bl, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    absolute = tmp_path / "abs"
    subjects = [str(absolute), "../../ESCAPE", "..", ".bashrc", "x/../../../UP", "ok"]
    tasks = [
        {
            "_id": f"5c0e8f0a1b2c3d4e5f60718{i}",
            "config": {"_inputs": [{"meta": {"subject": s}}]},
        }
        for i, s in enumerate(subjects)
    ]
    fake.json("GET", "/api/amaretti/task", {"tasks": tasks})
    body = targz()
    for t in tasks:
        fake.route(
            "GET",
            f"/api/amaretti/task/download/{t['_id']}/out",
            lambda req: (200, {"Content-Type": "application/gzip"}, body),
        )
    before = every_file(tmp_path)
    r = bl("task", "download", "--group", "1", "--path", "out", "--name-by", "subject", "-d", "dl")
    assert r.exit_code == 0, r.output
    dl = Path("dl").resolve()
    assert every_file(tmp_path) - before == {
        f"a/b/work/dl/{n}"
        for n in [
            f"{str(absolute).lstrip('/').replace('/', '-')}.tar.gz",
            "ESCAPE.tar.gz",
            f"{tasks[2]['_id']}.tar.gz",  # '..' leaves nothing: the task id
            "bashrc.tar.gz",
            "x-..-..-..-UP.tar.gz",
            "ok.tar.gz",
            "bl-lock.json",
        ]
    }
    assert not absolute.with_name("abs.tar.gz").exists()
    assert all((dl / n).read_bytes() == body for n in every_file(dl) if n.endswith(".tar.gz"))


def serve_named(fake: FakeServer, disposition: str, body: bytes = b"from the server\n") -> None:
    def answer(req: Req) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/plain", "Content-Disposition": disposition}, body

    fake.route("GET", f"/api/amaretti/task/download/{TASK}/out.txt", answer)


@pytest.mark.parametrize(
    ("disposition", "saved"),
    [
        ('attachment; filename=".bashrc"', "bashrc"),
        ('attachment; filename="bl-lock.json"', "out.txt"),
        ('attachment; filename="."', "out.txt"),
        ('attachment; filename=".."', "out.txt"),
        ('attachment; filename="../../../ESCAPE"', "ESCAPE"),
        ("attachment; filename*=UTF-8''%2E%2E%2Fup.txt", "up.txt"),
        ('attachment; filename="x.bl-part"', "out.txt"),
    ],
)
def test_content_disposition_names_stay_in_the_folder_and_spare_our_files(
    fake: FakeServer,
    bl,  # type: ignore[no-untyped-def]
    disposition: str,
    saved: str,
    tmp_path: Path,
) -> None:
    dl = Path("dl")
    dl.mkdir()
    (dl / ".bashrc").write_text("my shell\n")
    (dl / "bl-lock.json").write_text('{"objects": []}\n')
    serve_named(fake, disposition)
    before = every_file(tmp_path)
    r = bl("task", "download", TASK, "out.txt", "-d", "dl")
    assert r.exit_code == 0, r.output
    assert (dl / ".bashrc").read_text() == "my shell\n"
    assert (dl / "bl-lock.json").read_text() == '{"objects": []}\n'
    assert every_file(tmp_path) - before == {f"a/b/work/dl/{saved}"}
    assert (dl / saved).read_bytes() == b"from the server\n"


def test_a_file_it_did_not_write_is_replaced_only_when_asked(fake: FakeServer, bl) -> None:  # type: ignore[no-untyped-def]
    dl = Path("dl")
    dl.mkdir()
    (dl / "notes.txt").write_text("my notes\n")
    serve_named(fake, 'attachment; filename="notes.txt"')
    r = bl("task", "download", TASK, "out.txt", "-d", "dl")
    assert r.exit_code == 1
    assert "dl/notes.txt already exists and differs from the download" in r.output
    assert "--existing overwrite" in r.output
    assert (dl / "notes.txt").read_text() == "my notes\n"
    assert sorted(p.name for p in dl.iterdir()) == ["notes.txt"]  # no temporary file left
    r = bl("task", "download", TASK, "out.txt", "-d", "dl", "--existing", "overwrite")
    assert r.exit_code == 0, r.output
    assert (dl / "notes.txt").read_bytes() == b"from the server\n"
    # the same bytes again: nothing to protect, the rerun succeeds
    r = bl("task", "download", TASK, "out.txt", "-d", "dl")
    assert r.exit_code == 0, r.output


def test_bulk_archives_spare_files_no_download_wrote(fake: FakeServer, bl) -> None:  # type: ignore[no-untyped-def]
    tasks = [{"_id": TASK, "config": {"_inputs": [{"meta": {"subject": "s1"}}]}}]
    fake.json("GET", "/api/amaretti/task", {"tasks": tasks})
    body = targz()
    fake.route(
        "GET",
        f"/api/amaretti/task/download/{TASK}/out",
        lambda req: (200, {"Content-Type": "application/gzip"}, body),
    )
    dl = Path("dl")
    dl.mkdir()
    (dl / "s1.tar.gz").write_bytes(b"my own archive")
    args = ["task", "download", "--group", "1", "--path", "out", "--name-by", "subject", "-d", "dl"]
    r = bl(*args)
    assert r.exit_code == 1
    assert "s1.tar.gz already exists and was not written by a download" in r.output
    assert (dl / "s1.tar.gz").read_bytes() == b"my own archive"
    r = bl(*args, "--existing", "overwrite")
    assert r.exit_code == 0, r.output
    assert (dl / "s1.tar.gz").read_bytes() == body
    # now it is ours (recorded in bl-lock.json): a rerun may replace it
    r = bl(*args)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "args",
    [
        ["task", "download", TASK, "../../etc/passwd"],
        ["task", "download", TASK, "output/../../x"],
        ["task", "download", "..", "output"],
        ["data", "update", "..", "--desc", "x"],
        ["data", "delete", "."],
    ],
)
def test_dot_segments_in_an_id_or_path_are_refused_before_a_request(
    fake: FakeServer,
    bl,  # type: ignore[no-untyped-def]
    args: list[str],
) -> None:
    """HTTP clients resolve `..` in a URL (`task/download/ID/../../etc/passwd` went out as
    `GET /api/amaretti/task/etc/passwd`, and the user read 'No such route'): such a request is
    never sent, and the error says which part was wrong."""
    r = bl(*args)
    assert r.exit_code == 1, r.output
    assert "'..'" in r.output or "'.'" in r.output
    assert "Traceback" not in r.output and "No such route" not in r.output
    assert fake.requests == []


@pytest.mark.parametrize("spec", ["{subject}/../../{id}", "../{id}", "{id}/..", "./{id}"])
def test_a_layout_with_a_dot_folder_is_refused_before_any_plan(spec: str) -> None:
    """A literal '..' (or '.') folder in a template is refused when the layout is read, so a
    --dry-run never lists folders outside -d that the run would then refuse."""
    from brainlife.client._exceptions import ConfigError
    from brainlife.client.transfer.layout import resolve_layout

    with pytest.raises(ConfigError, match=re.escape("'..' or '.' folder")):
        resolve_layout(spec)
    assert resolve_layout("{subject}/..x/{id}").template == "{subject}/..x/{id}"
