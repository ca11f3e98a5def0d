"""``sparkles-run`` through its real entry point, on the embedded default."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sparkles_core.config import load_config
from sparkles_core.models import TaskStatus
from sparkles_core.store.sqlite import SQLiteStore

SPARKLES_RUN = str(Path(sys.executable).parent / "sparkles-run")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPARKLES_RUN, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def stored_jobs() -> list[str]:
    config = load_config()
    if not config.home.exists():
        return []
    store = SQLiteStore.from_url(config.store_url)
    try:
        return [job.id for job in store.list_jobs()]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["exit 42"], 42),
        (["kill -9 $$"], 128 + 9),
        (["kill -TERM $$"], 128 + 15),
    ],
    ids=["success", "argv-exit-3", "shell-exit-42", "sigkill", "sigterm"],
)
def test_exit_status_is_the_commands(home: Path, command: list[str], code: int) -> None:
    assert run("-q", "--", *command).returncode == code


def test_output_streams_and_files_come_back(home: Path, tmp_path: Path) -> None:
    (Path.cwd() / "words.txt").write_text("banana\napple\n")
    result = run("-u", "words.txt", "--", "sort words.txt > sorted.txt; echo sorted")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "sorted\n"
    assert (Path.cwd() / "sorted.txt").read_text() == "apple\nbanana\n"
    assert (Path.cwd() / "words.txt").read_text() == "banana\napple\n"


def test_caret_token_uploads_the_file(home: Path) -> None:
    script = Path.cwd() / "tool.sh"
    script.write_text("#!/bin/sh\necho tool ran with $1\n")
    script.chmod(0o755)
    result = run("-q", "--", "sh", "^tool.sh", "x")
    assert (result.returncode, result.stdout) == (0, "tool ran with x\n")


def test_dest_and_result_globs(home: Path) -> None:
    result = run(
        "-q",
        "--dest",
        "out",
        "--results",
        "*.csv",
        "--",
        "echo a > a.csv; echo b > b.txt",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (Path.cwd() / "out").iterdir()) == ["a.csv"]


def test_second_run_uploads_nothing(home: Path) -> None:
    (Path.cwd() / "big.bin").write_bytes(b"x" * 100_000)
    first = run("-u", "big.bin", "--", "true")
    second = run("-u", "big.bin", "--", "true")
    assert "uploaded 1 of 1 files (100000 of 100000 bytes)" in first.stderr
    assert "uploaded 0 of 1 files (0 of 100000 bytes)" in second.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "missing.txt", "--", "true"], "no such file"),
        (["-u", "present.txt:../x", "--", "true"], "climbs out"),
        (["-u", "present.txt:/etc/x", "--", "true"], "is absolute"),
        (["--", "no-such-program-here", "x"], "not found on this machine"),
        (["-n", "Bad_Name", "--", "true"], "not valid"),
        (["-o", "nonsense_key=1", "--", "true"], "nonsense_key"),
        (["--", "/no/such/cmd"], "does not exist"),
        (["--", "{work}/present.txt"], "not executable"),
        (["--", "./nope.sh"], "not among the uploaded"),
        (["--", "./tool.sh", "x"], "-u ./tool.sh"),
        (["--", "bin/tool.sh"], "-u bin/tool.sh:bin/tool.sh"),
        (["-u", "tool.sh", "--", "tool.sh"], "./tool.sh"),
    ],
    ids=[
        "missing-file",
        "dst-climbs-out",
        "dst-absolute",
        "no-command",
        "bad-name",
        "bad-key",
        "absent-path",
        "not-executable",
        "absent-relative",
        "local-not-uploaded",
        "under-folder",
        "uploaded-bare-name",
    ],
)
def test_bad_input_is_one_line_and_leaves_no_job(
    home: Path, args: list[str], message: str
) -> None:
    work = Path.cwd()
    (work / "present.txt").write_text("x")
    for script in (work / "tool.sh", work / "bin" / "tool.sh"):
        script.parent.mkdir(exist_ok=True)
        script.write_text("#!/bin/sh\necho tool\n")
        script.chmod(0o755)
    result = run(*(arg.replace("{work}", str(work)) for arg in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert stored_jobs() == []


COMMAND_PATHS = [
    ("uploaded", ["-u", "tool.sh", "--", "./tool.sh", "x"]),
    ("caret", ["--", "^tool.sh", "x"]),
    ("caret-in-folder", ["--", "^bin/tool.sh", "x"]),
    ("in-uploaded-folder", ["-u", "bin", "--", "bin/tool.sh", "x"]),
    ("absolute", ["--", "{work}/tool.sh", "x"]),
    ("shell-line", ["-u", "tool.sh", "--", "V=1 ./tool.sh x | cat; true"]),
    ("shell-word-first", ["-u", "tool.sh", "--", "cd . && ./tool.sh x"]),
]


@pytest.mark.parametrize(
    "args", [case[1] for case in COMMAND_PATHS], ids=[c[0] for c in COMMAND_PATHS]
)
def test_command_given_as_a_path_runs(home: Path, args: list[str]) -> None:
    work = Path.cwd()
    for script in (work / "tool.sh", work / "bin" / "tool.sh"):
        script.parent.mkdir(exist_ok=True)
        script.write_text("#!/bin/sh\necho tool ran with $1\n")
        script.chmod(0o755)
    result = run("-q", *(arg.replace("{work}", str(work)) for arg in args))
    assert (result.returncode, result.stdout) == (0, "tool ran with x\n"), result


def test_unusable_state_folder_is_one_line(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SPARKLES_HOME", str(blocker / "state"))
    result = run("--", "true")
    assert result.returncode == 2
    assert "SPARKLES_HOME" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_kills_the_task_and_leaves_no_worker(home: Path) -> None:
    proc = subprocess.Popen(
        [SPARKLES_RUN, "--", "echo started; sleep 60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    workers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "sparkles_worker" in (line := " ".join(p.info["cmdline"] or []))
        and str(home) in line
    ]
    assert workers, "no worker of this test was found"

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130
    assert "interrupted" in err and "killed" in err
    time.sleep(0.2)
    assert all(
        not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in workers
    )
    store = SQLiteStore.from_url(load_config().store_url)
    (job,) = store.list_jobs()
    assert store.count_tasks(job.id).get(TaskStatus.KILLED) == 1
    assert store.list_nodes() == []
    store.close()


def test_help_explains_with_an_example() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "Examples:" in result.stdout
    assert "sparkles-run -- echo hello" in result.stdout
