"""``sparkles-run`` through its real entry point, on the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sparkles_core.config import load_config
from sparkles_core.models import JobStatus
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


def test_cas_url_prefix_puts_inputs_and_outputs_there(
    home: Path, tmp_path: Path
) -> None:
    cas = tmp_path / "elsewhere" / "CAS"
    (Path.cwd() / "in.txt").write_text("moved\n")

    result = run(
        "-o",
        f"cas_url_prefix=file://{cas}",
        "-u",
        "in.txt",
        "--",
        "rev in.txt > out.txt",
    )

    assert result.returncode == 0, result.stderr
    assert (Path.cwd() / "out.txt").read_text() == "devom\n"
    stored = sorted(path.read_bytes() for path in cas.iterdir())
    assert stored == [b"devom\n", b"moved\n"]
    assert not (home / "storage" / "cas").exists()


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
    assert "uploaded 1 of 1 file (100000 of 100000 bytes)" in first.stderr
    assert "uploaded 0 of 1 file (0 of 100000 bytes)" in second.stderr


BAD_INPUT = [
    ("missing-file", ["-u", "missing.txt", "--", "true"], "no such file"),
    ("dst-climbs-out", ["-u", "present.txt:../x", "--", "true"], "climbs out"),
    ("dst-absolute", ["-u", "present.txt:/etc/x", "--", "true"], "is absolute"),
    ("no-command", ["--", "no-such-program-here", "x"], "not found on this"),
    ("bad-name", ["-n", "Bad_Name", "--", "true"], "not valid"),
    ("bad-key", ["-o", "nonsense_key=1", "--", "true"], "nonsense_key"),
    ("negative-nodes", ["--nodes", "-1", "--", "true"], "'--nodes'"),
    ("no-nodes", ["--nodes", "0", "--", "true"], "'--nodes': 0 is not in"),
    ("negative-timeout", ["--timeout", "-1", "--", "true"], "'--timeout'"),
    ("unknown-option", ["--nodse", "2", "--", "true"], "No such option"),
    ("empty-command", ["--", ""], "empty"),
    ("unreadable-upload", ["-u", "/proc/self/mem:mem", "--", "true"], "Cannot read"),
    ("absent-path", ["--", "/no/such/cmd"], "does not exist"),
    ("not-executable", ["--", "{work}/present.txt"], "not executable"),
    ("absent-relative", ["--", "./nope.sh"], "not among the uploaded"),
    ("local-not-uploaded", ["--", "./tool.sh", "x"], "-u ./tool.sh"),
    ("under-folder", ["--", "bin/tool.sh"], "-u bin/tool.sh:bin/tool.sh"),
    ("uploaded-bare-name", ["-u", "tool.sh", "--", "tool.sh"], "./tool.sh"),
]
if os.geteuid() != 0:  # root reads a mode-000 file all the same
    BAD_INPUT.append(("no-permission", ["-u", "secret.txt", "--", "true"], "denied"))


@pytest.mark.parametrize(
    ("args", "message"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_one_line_and_leaves_no_job(
    home: Path, args: list[str], message: str
) -> None:
    work = Path.cwd()
    (work / "present.txt").write_text("x")
    (work / "secret.txt").write_text("x")
    (work / "secret.txt").chmod(0)
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


def test_default_image_command_is_not_looked_up_on_this_machine(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The program exists only in the image; with no engine on PATH the
    # local cluster is what refuses the job, naming the image.
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    result = run("-o", "default_image=debian:12", "--", "only-in-the-image", "x")

    assert result.returncode == 2
    assert "asks for image 'debian:12'" in result.stderr
    assert "PATH" not in result.stderr
    assert stored_jobs() == []


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


@pytest.mark.parametrize(
    ("command", "status"),
    [("true", JobStatus.COMPLETE), ("exit 3", JobStatus.FAILED)],
    ids=["success", "nonzero-exit"],
)
def test_job_record_ends_complete_or_failed(
    home: Path, command: str, status: JobStatus
) -> None:
    run("-q", "--", command)
    store = SQLiteStore.from_url(load_config().store_url)
    (job,) = store.list_jobs()
    store.close()
    assert job.status is status


@pytest.mark.slow
def test_timeout_says_timed_out(home: Path) -> None:
    result = run("--timeout", "1", "--", "sleep 30")
    assert result.returncode == 128 + signal.SIGTERM
    assert "timed out after 1 s" in result.stderr
    assert "killed by signal" not in result.stderr


@pytest.mark.slow
def test_warnings_are_console_lines_not_raw_log_records(
    home: Path, tmp_path: Path
) -> None:
    # The first attempt kills its own worker, so the monitor hands it back.
    first = tmp_path / "first-attempt"
    line = f"[ -e {first} ] || {{ touch {first}; kill -9 $PPID; }}; echo done"
    result = run("--", line)
    assert (result.returncode, result.stdout) == (0, "done\n"), result.stderr
    assert "sparkles: warning: Task" in result.stderr
    assert "orphaned" in result.stderr
    assert "WARNING:" not in result.stderr


def test_help_explains_options_exit_codes_and_state() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Examples: sparkles-run -- echo hello" in text
    assert "--config FILE Config file" in text
    assert "--override KEY=VALUE Override a config key" in text
    for code in ("128+N", "130", "125", "2"):
        assert f" {code} " in text
    assert "$SPARKLES_HOME" in text
