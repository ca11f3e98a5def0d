"""The worker daemon, as real processes against a real SQLite store."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from sparkles_core.client import Client
from sparkles_core.fetch import read_result
from sparkles_core.models import Job, JobSpec, TaskSpec, TaskStatus, UploadRules
from sparkles_core.submit import LocalInput
from tests.conftest import WorkerFactory, wait_for


def submit(
    client: Client, *tasks: TaskSpec, name: str = "job", **fields: object
) -> Job:
    return client.submit(JobSpec(name=name, tasks=list(tasks), **fields), name)


def process_gone(pid: int) -> bool:
    """Return True if the process ended (a zombie awaiting its reaper counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def task_status(client: Client, task_id: str) -> TaskStatus:
    task = client.store.get_task(task_id)
    assert task is not None
    return task.status


@pytest.mark.slow
def test_every_task_runs_exactly_once_across_workers(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    count = 2000
    specs = [TaskSpec(command=f"echo {i} >> {ledger}") for i in range(count)]
    job = submit(client, *specs)

    workers = [start_worker(job.cluster, f"w{n}", "--linger=1") for n in range(4)]
    for proc in workers:
        assert proc.wait(timeout=240) == 0

    lines = ledger.read_text().split()
    assert sorted(map(int, lines)) == list(range(count))
    assert client.store.count_tasks(job.id)[TaskStatus.COMPLETE] == count
    owners = {t.owner for t in client.tasks(job.id)}
    assert len(owners) > 1, "the work was not shared between workers"


@pytest.mark.slow
def test_task_of_killed_worker_finishes_on_another_after_its_lease(
    client: Client, start_worker: WorkerFactory
) -> None:
    job = submit(client, TaskSpec(command="sleep 1; echo done > out.txt"))
    first = start_worker(job.cluster, "doomed", "--lease=2")
    wait_for(lambda: task_status(client, "job.1") is TaskStatus.CLAIMED)

    children = psutil.Process(first.pid).children(recursive=True)
    first.send_signal(signal.SIGKILL)
    first.wait()
    for child in children:
        child.kill()

    second = start_worker(job.cluster, "rescuer", "--linger=4")
    assert second.wait(timeout=60) == 0
    task = client.store.get_task("job.1")
    assert task is not None
    assert (task.status, task.exit_code, task.owner) == (
        TaskStatus.COMPLETE,
        0,
        "rescuer",
    )
    assert task.attempt == 2
    assert any("lease expired" in (h.reason or "") for h in task.history)


@pytest.mark.slow
def test_sigterm_stops_the_command_and_hands_the_task_back(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job = submit(client, TaskSpec(command=f"echo $$ > {pid_file}; sleep 60"))
    worker = start_worker(job.cluster, "spot")
    wait_for(pid_file.exists)
    wait_for(lambda: pid_file.read_text().strip() != "")

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    task = client.store.get_task("job.1")
    assert task is not None
    assert task.status is TaskStatus.PENDING
    assert task.owner is None
    assert task.history[-1].reason == "preempted"
    assert process_gone(int(pid_file.read_text()))


def test_outputs_come_back_and_unchanged_inputs_do_not(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("input a\n")
    (tmp_path / "b.txt").write_text("input b\n")
    downloads, _ = client.upload(
        [
            LocalInput(tmp_path / "a.txt", "in/a.txt"),
            LocalInput(tmp_path / "b.txt", "b.txt"),
        ]
    )
    spec = TaskSpec(
        command="cat in/a.txt > out.txt; echo more >> b.txt; touch skip.log",
        downloads=downloads,
        uploads=UploadRules(exclude=["*.log"]),
    )
    job = submit(client, spec)
    assert start_worker(job.cluster, "w", "--linger=0.5").wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None and task.succeeded
    result = read_result(client.storage, task)
    assert result is not None
    assert sorted(o.path for o in result.outputs) == ["b.txt", "out.txt"]
    dest = tmp_path / "fetched"
    client.fetch(task, dest)
    assert (dest / "out.txt").read_text() == "input a\n"
    assert (dest / "b.txt").read_text() == "input b\nmore\n"


def test_timeout_kills_the_whole_process_group(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    spec = TaskSpec(command=f"sleep 60 & echo $! > {pid_file}; wait", timeout=1)
    job = submit(client, spec)
    assert start_worker(job.cluster, "w", "--linger=0.5").wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None
    assert task.status is TaskStatus.COMPLETE
    assert task.signal is not None and not task.succeeded
    assert task.timed_out
    assert task.history[-1].reason == "timed out after 1 s"
    result = read_result(client.storage, task)
    assert result is not None and result.timed_out
    assert process_gone(int(pid_file.read_text()))


def test_result_reports_the_commands_own_peak_memory(
    client: Client, start_worker: WorkerFactory
) -> None:
    allocate = "b = bytearray(200 << 20); import time; time.sleep(1)"
    job = submit(
        client,
        TaskSpec(command=f"{sys.executable} -c '{allocate}'"),
        TaskSpec(command="sleep 1"),
    )
    worker = start_worker(job.cluster, "w", "--linger=0.5")
    assert worker.wait(timeout=60) == 0

    big, small = client.tasks(job.id)
    assert big.usage is not None and small.usage is not None
    assert big.usage.max_rss_bytes >= 200 << 20
    assert 0 < small.usage.max_rss_bytes < 16 << 20, "that is the worker's size"


def test_corrupt_input_fails_the_task_and_writes_nothing(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("the real content\n")
    downloads, _ = client.upload([LocalInput(tmp_path / "data.txt", "data.txt")])
    digest = downloads[0].digest
    assert digest is not None
    cas_root = Path(client.cas.storage.url.removeprefix("file://"))
    stored = cas_root / client.cas.key_for(digest)
    stored.chmod(0o644)
    stored.write_text("tampered content!\n")

    job = submit(client, TaskSpec(command="cat data.txt", downloads=downloads))
    assert start_worker(job.cluster, "w", "--linger=0.5").wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None
    assert task.status is TaskStatus.FAILED
    assert "corrupt" in (task.failure_reason or "")


def test_killing_the_job_stops_its_running_command(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job = submit(client, TaskSpec(command=f"echo $$ > {pid_file}; sleep 60"))
    worker = start_worker(job.cluster, "w", "--lease=1.5", "--linger=0.5")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")

    client.kill(job.id, keep_cluster=True)

    assert worker.wait(timeout=30) == 0
    assert task_status(client, "job.1") is TaskStatus.KILLED
    assert process_gone(int(pid_file.read_text()))


def test_idle_worker_exits_after_linger(
    client: Client, start_worker: WorkerFactory
) -> None:
    worker = start_worker("c-empty", "w", "--linger=0.3")
    assert worker.wait(timeout=30) == 0


def test_environment_names_the_task(
    client: Client, start_worker: WorkerFactory
) -> None:
    spec = TaskSpec(
        command='echo "$SPARKLES_TASK_ID $SPARKLES_ATTEMPT $GREETING" > env.txt',
        env={"GREETING": "hi"},
    )
    job = submit(client, spec)
    assert start_worker(job.cluster, "w", "--linger=0.5").wait(timeout=60) == 0
    task = client.store.get_task("job.1")
    assert task is not None
    dest = Path(os.getcwd()) / "env"
    client.fetch(task, dest)
    assert (dest / "env.txt").read_text() == "job.1 1 hi\n"


def test_kept_apart_variables_reach_the_command_and_override_env(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    client.storage.put_bytes("jobs/job/env.json", b'{"TOKEN": "t0k3n", "A": "2"}')
    spec = TaskSpec(
        command='echo "$TOKEN $A $B" > env.txt',
        env={"A": "1", "B": "3"},
        secret_env_key="jobs/job/env.json",
    )
    job = submit(client, spec)
    # At debug level the worker logs the most, and so would most likely leak.
    worker = start_worker(job.cluster, "w", "--linger=0.5", debug=True)
    assert worker.wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None and task.succeeded
    client.fetch(task, tmp_path / "fetched")
    assert (tmp_path / "fetched" / "env.txt").read_text() == "t0k3n 2 3\n"
    assert "t0k3n" not in (tmp_path / "w.log").read_text()


@pytest.mark.parametrize(
    "content",
    [b'{"TOKEN": "t0k3n", "N": 1}', b'["t0k3n"]', b"TOKEN=t0k3n"],
    ids=["number-value", "not-an-object", "not-json"],
)
def test_bad_variables_object_fails_the_task_without_showing_it(
    client: Client, start_worker: WorkerFactory, tmp_path: Path, content: bytes
) -> None:
    client.storage.put_bytes("jobs/job/env.json", content)
    spec = TaskSpec(command="true", secret_env_key="jobs/job/env.json")
    job = submit(client, spec)
    worker = start_worker(job.cluster, "w", "--linger=0.5", debug=True)
    assert worker.wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None and task.status is TaskStatus.FAILED
    reason = task.failure_reason or ""
    assert "'jobs/job/env.json' is not a JSON object of strings" in reason
    assert "t0k3n" not in reason
    assert "t0k3n" not in (tmp_path / "w.log").read_text()


def test_output_links_that_leave_the_task_folder_are_not_uploaded(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for storage\n")
    command = (
        f"ln -s {outside / 'secret.txt'} leak.txt; ln -s {outside} leakdir; "
        "echo mine > inside.txt; ln -s inside.txt alias.txt"
    )
    job = submit(client, TaskSpec(command=command))
    assert start_worker(job.cluster, "w", "--linger=0.5").wait(timeout=60) == 0

    task = client.store.get_task("job.1")
    assert task is not None and task.succeeded
    result = read_result(client.storage, task)
    assert result is not None
    assert sorted(o.path for o in result.outputs) == ["alias.txt", "inside.txt"]
    log = (tmp_path / "w.log").read_text()
    assert "Output leak.txt: skipped" in log
