"""``sparkles-run`` stopped part way: nothing it stored may stay claimable.

Each test runs the real ``sparkles-run`` and real workers, signals it, or
makes it fail, at one point of its life, and then looks at what is left: the
job's records and every process the run started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sparkles_core.config import load_config
from sparkles_core.models import JobStatus, TaskStatus
from sparkles_core.store.sqlite import SQLiteStore
from tests.conftest import wait_for
from tests.core.test_run_cli import SPARKLES_RUN, run, stored_jobs

# A real sparkles plugin, found through its entry point like any other, that
# pauses the run at one step (PAUSE_AT), until the file PAUSE_RELEASE exists,
# so a test can signal it there.
PAUSE_PLUGIN = """
import os, time
from pathlib import Path

import pluggy

hookimpl = pluggy.HookimplMarker("sparkles")


def pause(step):
    if os.environ.get("PAUSE_AT") == step:
        Path(os.environ["PAUSE_MARKER"]).write_text(step)
        while not Path(os.environ["PAUSE_RELEASE"]).exists():
            time.sleep(0.05)


@hookimpl
def sparkles_storage_backends():
    from sparkles_cas.filestore import FileStorage

    class PausingStorage(FileStorage):
        def put_file(self, key, path, if_absent=False):
            pause("upload")
            return super().put_file(key, path, if_absent)

    return {"pausing": lambda url: PausingStorage("file" + url[len("pausing"):])}


@hookimpl
def sparkles_prepare_task(job, task):
    pause("submit")
"""


def start_run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SPARKLES_RUN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def workers_of(home: Path) -> list[psutil.Process]:
    """Return the worker processes started for this test's state folder."""
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if "sparkles_worker" in (line := " ".join(p.info["cmdline"] or []))
        and str(home) in line
    ]


def all_ended(processes: list[psutil.Process]) -> bool:
    """Return True once none of the processes runs (a zombie has ended)."""
    _, alive = psutil.wait_procs(processes, timeout=1)
    return all(p.status() == psutil.STATUS_ZOMBIE for p in alive)


def the_task_status() -> TaskStatus:
    """Return the one task's status, checking no node record is left."""
    store = SQLiteStore.from_url(load_config().store_url)
    try:
        (job,) = store.list_jobs()
        (task,) = store.list_tasks(job.id)
        assert store.list_nodes() == []
        if task.status is TaskStatus.KILLED:
            assert job.status is JobStatus.KILLED
        return task.status
    finally:
        store.close()


def the_task_is(status: TaskStatus) -> bool:
    """Return True if the run's one task, once stored, has this status."""
    store = SQLiteStore.from_url(load_config().store_url)
    try:
        jobs = store.list_jobs()
        tasks = [task for job in jobs for task in store.list_tasks(job.id)]
        return [task.status for task in tasks] == [status]
    finally:
        store.close()


def task_command(pid_file: Path, prelude: str = "") -> str:
    """Return a long-running command that writes its shell's and sleep's pids."""
    return f"{prelude}sleep 60 & echo $$ $! > {pid_file}; echo started; wait"


def running_command(
    proc: subprocess.Popen[str], pid_file: Path
) -> list[psutil.Process]:
    """Wait until the task runs; return its processes."""
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    return [psutil.Process(int(pid)) for pid in pid_file.read_text().split()]


@pytest.fixture
def pause_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Yield an environment in which the pausing plugin is installed."""
    site = tmp_path / "site"
    info = site / "sparkles_pause_plugin-0.dist-info"
    info.mkdir(parents=True)
    (site / "sparkles_pause_plugin.py").write_text(PAUSE_PLUGIN)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sparkles-pause-plugin\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(
        "[sparkles]\npause = sparkles_pause_plugin\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(site), env.get("PYTHONPATH")])
    )
    env["PAUSE_MARKER"] = str(tmp_path / "paused")
    env["PAUSE_RELEASE"] = str(tmp_path / "released")
    yield env


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["ctrl-c", "sigterm", "terminal-closed"],
)
def test_stop_signal_kills_the_task_and_leaves_no_process(
    home: Path, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    pid_file = tmp_path / "pids"
    proc = start_run("--", task_command(pid_file))
    command = running_command(proc, pid_file)
    workers = workers_of(home)
    assert workers, "no worker of this test was found"

    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == code
    assert "interrupted" in err and "killed" in err
    assert "Traceback" not in err
    assert all_ended([*workers, *command])
    assert the_task_status() is TaskStatus.KILLED


@pytest.mark.slow
def test_error_after_submission_kills_the_job(home: Path) -> None:
    # Workers cannot start: their log folder is taken by a file.
    home.mkdir(parents=True)
    (home / "logs").write_text("")

    result = run("-q", "--", "echo should not run")

    assert result.returncode == 125
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sparkles-run: error: ") and "was killed" in line
    assert the_task_status() is TaskStatus.KILLED

    (home / "logs").unlink()
    again = run("-q", "--", "echo fresh")
    assert (again.returncode, again.stdout) == (0, "fresh\n")


def test_ctrl_c_during_upload_submits_nothing(
    home: Path, pause_env: dict[str, str]
) -> None:
    (Path.cwd() / "data.txt").write_text("x")
    env = pause_env | {
        "PAUSE_AT": "upload",
        "SPARKLES_STORAGE": f"pausing://{home / 'storage'}",
    }
    proc = start_run("-u", "data.txt", "--", "cat data.txt", env=env)
    wait_for(Path(env["PAUSE_MARKER"]).exists)

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130
    assert err.strip().splitlines() == ["sparkles: interrupted: nothing was submitted"]
    assert stored_jobs() == []


@pytest.mark.slow
def test_signal_while_storing_the_job_kills_it_once_stored(
    home: Path, pause_env: dict[str, str]
) -> None:
    env = pause_env | {"PAUSE_AT": "submit"}
    proc = start_run("--", "echo should not run", env=env)
    wait_for(Path(env["PAUSE_MARKER"]).exists)

    proc.send_signal(signal.SIGTERM)
    # Held until the job is stored, the signal can be sent before the
    # release; it takes effect after it.
    Path(env["PAUSE_RELEASE"]).touch()
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 143
    assert "interrupted by SIGTERM" in err and "killed" in err
    assert out == ""
    assert the_task_status() is TaskStatus.KILLED


@pytest.mark.slow
def test_second_ctrl_c_waits_until_the_workers_are_gone(
    home: Path, tmp_path: Path
) -> None:
    # The command ignores SIGTERM, so stopping it takes the worker's grace
    # period: long enough for a second Ctrl-C to land during the clean-up.
    pid_file = tmp_path / "pids"
    proc = start_run("--", task_command(pid_file, prelude="trap '' TERM; "))
    command = running_command(proc, pid_file)
    workers = workers_of(home)

    proc.send_signal(signal.SIGINT)
    # The job is killed first, then the workers are stopped: from then on a
    # second Ctrl-C lands in the clean-up, as its note on stderr shows.
    wait_for(lambda: the_task_is(TaskStatus.KILLED))
    assert proc.poll() is None, "the clean-up ended before the second Ctrl-C"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130
    assert "stopping the workers first" in err
    assert "interrupted: task" in err and "killed" in err
    assert "Aborted" not in err and "Traceback" not in err
    assert all_ended([*workers, *command])
    assert the_task_status() is TaskStatus.KILLED
