"""``sparkles fetch, kill, reset, delete`` on jobs real workers ran."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from sparkles_cas.errors import DigestMismatch
from sparkles_core import layout
from sparkles_core.client import Client
from sparkles_core.errors import InputError, JobNotFound
from sparkles_core.models import (
    Download,
    Job,
    JobStatus,
    NodeClass,
    NodeReq,
    NodeStatus,
    TaskSpec,
    TaskStatus,
)
from tests.cli.conftest import MISSING_DIGEST, Invoke, Sample, run_sparkles
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("plain_output")

Finished = Callable[..., Job]


def statuses(client: Client, job_id: str) -> list[str]:
    """Return each task's status and exit code, in task order."""
    return [f"{task.status.value}:{task.exit_code}" for task in client.tasks(job_id)]


def ending_three_ways(finished: Finished, name: str) -> Job:
    """Run a job whose tasks exit 0, exit 3, and fail to stage."""
    missing = Download(dst="gone.txt", digest=MISSING_DIGEST)
    return finished(
        name,
        [
            TaskSpec(command="echo ok > ok.txt"),
            TaskSpec(command="exit 3"),
            TaskSpec(command="true", downloads=[missing]),
        ],
    )


class QuietReporter:
    """A monitor reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Ignore progress."""

    def log(self, task_id: str, data: bytes) -> None:
        """Ignore logs."""

    def message(self, text: str) -> None:
        """Keep the message."""
        self.messages.append(text)


# -- fetch ------------------------------------------------------------------------


def test_fetch_writes_outputs_and_logs_per_task(
    sample: Sample, invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke("fetch", "sample", "--dest", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    files = sorted(
        p.relative_to(tmp_path / "out").as_posix()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    )
    # Task 3 never started and task 5 never ran: nothing of theirs.
    assert files == ["1/out.txt", "1/stdout.txt", "2/stdout.txt", "4/stdout.txt"]
    assert (tmp_path / "out/1/out.txt").read_text() == "result-a\n"
    assert (tmp_path / "out/1/stdout.txt").read_text().splitlines()[-1] == "30"
    assert (tmp_path / "out/2/stdout.txt").read_text() == "oops\n"
    assert (tmp_path / "out/4/stdout.txt").read_text() == ""
    assert result.output == f"Fetched 4 files of 3 tasks into {tmp_path / 'out'}.\n"


def test_fetch_defaults_to_a_folder_named_for_the_job(
    sample: Sample, invoke: Invoke
) -> None:
    assert invoke("fetch", "LAST").exit_code == 0
    assert (Path.cwd() / "sample" / "1" / "out.txt").read_text() == "result-a\n"


def test_fetch_flat_puts_outputs_together(sample: Sample) -> None:
    done = run_sparkles("fetch", "sample", "--flat", "--dest", "flat")

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    names = sorted(p.name for p in (Path.cwd() / "flat").iterdir())
    assert names == ["out.txt", "stdout-1.txt", "stdout-2.txt", "stdout-4.txt"]


def test_fetch_flat_refuses_clashing_outputs(
    finished: Finished, invoke: Invoke
) -> None:
    finished(
        "clash",
        [TaskSpec(command=f"echo {word} > same.txt") for word in ("a", "b")],
    )

    in_process = invoke("fetch", "clash", "--flat", "--dest", "out")
    piped = run_sparkles("fetch", "clash", "--flat", "--dest", "out")

    assert isinstance(in_process.exception, InputError)
    assert piped.returncode == 2
    assert "Tasks clash.1 and clash.2 both wrote 'same.txt'" in piped.stderr
    assert not (Path.cwd() / "out").exists()


def test_fetch_flat_accepts_identical_outputs(
    finished: Finished, invoke: Invoke
) -> None:
    finished("same", [TaskSpec(command="echo x > same.txt") for _ in range(2)])

    result = invoke("fetch", "same", "--flat", "--dest", "out")

    assert result.exit_code == 0, result.output
    assert (Path.cwd() / "out" / "same.txt").read_text() == "x\n"


def test_fetch_refuses_a_corrupted_output(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("corrupt", [TaskSpec(command="echo good > out.txt")])
    result = client.result(client.tasks(job.id)[0])
    assert result is not None
    client.cas.storage.put_bytes(client.cas.key_for(result.outputs[0].digest), b"bad\n")

    in_process = invoke("fetch", "corrupt")
    piped = run_sparkles("fetch", "corrupt")

    assert isinstance(in_process.exception, DigestMismatch)
    assert piped.returncode == 2
    assert len(piped.stderr.strip().splitlines()) == 1, piped.stderr
    assert "Traceback" not in piped.stderr


# -- kill ---------------------------------------------------------------------------


def test_kill_marks_unfinished_tasks_killed(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("half", [TaskSpec(command="true") for _ in range(3)], ran=1)

    result = invoke("kill", "half")

    assert result.exit_code == 0, result.output
    assert "Job half: killed 2 unfinished tasks." in result.output
    assert client.job(job.id).status is JobStatus.KILLED
    assert statuses(client, job.id) == ["complete:0", "killed:None", "killed:None"]


def test_kill_takes_a_wildcard(client: Client, finished: Finished) -> None:
    for name in ("sweep-1", "sweep-2", "other"):
        finished(name, [TaskSpec(command="true")], ran=0)

    done = run_sparkles("kill", "sweep-*")

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    killed = {j.id for j in client.store.list_jobs() if j.status is JobStatus.KILLED}
    assert killed == {"sweep-1", "sweep-2"}


@pytest.fixture
def busy_node(client: Client, finished: Finished) -> Iterator[NodeReq]:
    """Yield a local node running job ``busy``'s one long task."""
    job = finished("busy", [TaskSpec(command="sleep 120")], ran=0)
    launch = client.launch_for(job)
    [node] = client.provisioner.add_nodes(launch, 1, NodeClass.STANDARD)
    wait_for(lambda: statuses(client, job.id) == ["claimed:None"], timeout=60)
    yield node
    # Stop it if the test did not, and reap the process this client started.
    client.provisioner.delete_nodes([node])


def node_alive(node: NodeReq) -> bool:
    try:
        return psutil.Process(int(node.detail["pid"])).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_stops_the_idle_cluster(
    client: Client, busy_node: NodeReq, invoke: Invoke
) -> None:
    node = busy_node

    result = invoke("kill", "busy")

    assert result.exit_code == 0, result.output
    assert f"Cluster {node.cluster}: stopped." in result.output
    wait_for(lambda: not node_alive(node), timeout=60)
    assert client.store.list_nodes(node.cluster) == []


def test_kill_keepcluster_keeps_the_nodes(client: Client, busy_node: NodeReq) -> None:
    node = busy_node

    done = run_sparkles("kill", "busy", "--keepcluster")

    assert done.returncode == 0, done.stderr
    assert "Cluster" not in done.stdout
    assert statuses(client, "busy") == ["killed:None"]
    assert node_alive(node)
    assert [n.id for n in client.store.list_nodes(node.cluster)] == [node.id]


def test_kill_help_says_keepcluster_keeps_nodes(invoke: Invoke) -> None:
    text = " ".join(invoke("kill", "--help").output.split())
    assert "--keepcluster Keep the cluster's nodes running" in text


# -- reset --------------------------------------------------------------------------


def test_reset_returns_failures_to_pending_and_they_run_again(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = ending_three_ways(finished, "retry")

    result = invoke("reset", "retry")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "Job retry: 2 tasks back to pending; run 'sparkles watch retry' to run them.\n"
    )
    assert statuses(client, job.id) == ["complete:0", "pending:None", "pending:None"]
    assert client.tasks(job.id)[1].history[-1].reason == "reset with 'sparkles reset'"

    client.wait(job, QuietReporter(), stream_logs=False)

    tasks = client.tasks(job.id)
    assert statuses(client, job.id) == ["complete:0", "complete:3", "failed:None"]
    assert [task.attempt for task in tasks] == [1, 1, 1]
    assert len(tasks[1].history) == 6  # submitted, claimed, done, reset, again


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--all"], ["pending:None", "pending:None", "pending:None"]),
        (["--", "retry.2"], ["complete:0", "pending:None", "failed:None"]),
        (["--", "retry.1"], ["pending:None", "complete:3", "failed:None"]),
    ],
    ids=["all", "one-failed-task", "one-ok-task"],
)
def test_reset_scope(
    client: Client,
    finished: Finished,
    invoke: Invoke,
    args: list[str],
    expected: list[str],
) -> None:
    ending_three_ways(finished, "retry")
    target = [] if "--all" not in args else ["retry"]

    result = invoke("reset", *target, *args)

    assert result.exit_code == 0, result.output
    assert statuses(client, "retry") == expected


def test_reset_of_a_killed_job_lets_it_run_again(
    client: Client, finished: Finished
) -> None:
    job = finished("stopped", [TaskSpec(command="true") for _ in range(2)], ran=0)
    client.kill(job.id)

    done = run_sparkles("reset", "stopped")

    assert done.returncode == 0, done.stderr
    assert "run 'sparkles watch stopped'" in done.stdout
    assert client.job(job.id).status is JobStatus.SUBMITTED
    assert statuses(client, job.id) == ["pending:None", "pending:None"]


@pytest.mark.slow
def test_reset_job_that_ended_runs_again_under_watch(
    home: Path, client: Client
) -> None:
    first = run_sparkles("sub", "-n", "flaky", "--", "exit 3")
    assert first.returncode == 1, first.stdout + first.stderr
    assert client.job("flaky").status is JobStatus.FAILED

    reset = run_sparkles("reset", "flaky")
    assert reset.returncode == 0, reset.stderr
    assert client.job("flaky").status is JobStatus.SUBMITTED

    again = run_sparkles("watch", "flaky")

    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 pending" not in again.stdout.splitlines()[-1]
    [task] = client.tasks("flaky")
    claims = [e for e in task.history if e.status is TaskStatus.CLAIMED]
    assert (task.status, task.exit_code, len(claims)) == (TaskStatus.COMPLETE, 3, 2)
    assert client.job("flaky").status is JobStatus.FAILED


def test_reset_leaves_pending_tasks_alone(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    finished("waiting", [TaskSpec(command="true")], ran=0)

    assert invoke("reset", "waiting.1").output == (
        "Task waiting.1 is pending; nothing to reset.\n"
    )
    assert invoke("reset", "waiting").output == "Job waiting: nothing to reset.\n"


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("retry.9", InputError, "Job 'retry' has no task 9"),
        ("nope.1", JobNotFound, "No job matches 'nope.1'"),
        ("nope", JobNotFound, "No job matches 'nope'"),
    ],
    ids=["no-such-task", "task-of-no-job", "no-such-job"],
)
def test_reset_unknown_target_is_one_line_and_exit_2(
    finished: Finished,
    invoke: Invoke,
    target: str,
    error: type[Exception],
    message: str,
) -> None:
    ending_three_ways(finished, "retry")

    in_process = invoke("reset", target)
    piped = run_sparkles("reset", target)

    assert isinstance(in_process.exception, error)
    assert piped.returncode == 2
    assert len(piped.stderr.strip().splitlines()) == 1, piped.stderr
    assert message in piped.stderr


# -- delete ---------------------------------------------------------------------------


def test_delete_removes_records_and_job_files_but_not_the_cas(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("gone", [TaskSpec(command="echo kept > out.txt; echo log")])
    result = client.result(client.tasks(job.id)[0])
    assert result is not None
    cas_key = client.cas.key_for(result.outputs[0].digest)
    stored = list(client.storage.list(layout.job_prefix(job.id)))

    done = invoke("delete", "gone")

    assert done.exit_code == 0, done.output
    assert f"Deleted job gone: 1 task, {len(stored)} files." in done.output
    assert len(stored) == 2  # the log and result.json
    assert client.store.get_job("gone") is None
    assert client.tasks("gone") == []
    assert list(client.storage.list(layout.job_prefix(job.id))) == []
    assert client.cas.storage.exists(cas_key)


def test_delete_kills_an_unfinished_job_first(
    client: Client, busy_node: NodeReq, invoke: Invoke
) -> None:
    node = busy_node

    result = invoke("delete", "busy")

    assert result.exit_code == 0, result.output
    assert client.store.get_job("busy") is None
    wait_for(lambda: not node_alive(node), timeout=60)


@pytest.mark.parametrize(
    ("args", "answer", "left"),
    [
        ([], "n\n", {"one", "two"}),
        ([], "y\n", set()),
        ([], "", {"one", "two"}),
        (["-y"], None, set()),
    ],
    ids=["declined", "confirmed", "no-answer", "yes-flag"],
)
def test_delete_of_several_jobs_asks_first(
    client: Client,
    finished: Finished,
    invoke: Invoke,
    args: list[str],
    answer: str | None,
    left: set[str],
) -> None:
    for name in ("one", "two"):
        finished(name, [TaskSpec(command="true")], ran=0)

    result = invoke("delete", *args, input=answer)

    assert result.exit_code == 0, result.output
    assert ("Delete 2 jobs (one, two)?" in result.output) == (answer is not None)
    assert {job.id for job in client.store.list_jobs()} == left


def test_delete_piped_without_an_answer_deletes_nothing(
    client: Client, finished: Finished
) -> None:
    for name in ("one", "two"):
        finished(name, [TaskSpec(command="true")], ran=0)

    done = run_sparkles("delete", "*", input="")

    assert done.returncode == 0, done.stderr
    assert "Nothing deleted." in done.stdout
    assert "\x1b[" not in done.stdout
    assert len(client.store.list_jobs()) == 2


def test_delete_with_no_jobs_says_so(home: Path, invoke: Invoke) -> None:
    result = invoke("delete")
    assert (result.exit_code, result.output) == (0, "No jobs to delete.\n")


@pytest.mark.parametrize("command", ["fetch", "kill", "delete"])
def test_unknown_job_is_one_line_and_exit_2(finished: Finished, command: str) -> None:
    finished("real", [TaskSpec(command="true")], ran=0)

    done = run_sparkles(command, "nope")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sparkles: error: No job matches 'nope'; run 'sparkles status' to list "
        "the jobs."
    ]


def test_reset_orphaned_resets_only_tasks_nobody_is_running(
    client: Client, busy_node: NodeReq, finished: Finished, invoke: Invoke
) -> None:
    job = finished("lost", [TaskSpec(command="true")] * 3, ran=0)
    client.store.put_node(
        NodeReq(
            id="dead-node",
            cluster=job.cluster,
            node_class=NodeClass.STANDARD,
            status=NodeStatus.FAILED,
            created=0.0,
            updated=0.0,
        )
    )
    long_ago = time.time() - 3600
    assert client.store.claim(job.cluster, "silent-node", 60.0, now=long_ago)
    assert client.store.claim(job.cluster, "dead-node", 3600.0)

    result = invoke("reset", "*", "--orphaned")

    assert result.exit_code == 0, result.output
    assert "Job lost: 2 tasks back to pending" in result.output
    assert statuses(client, "lost") == ["pending:None"] * 3
    assert statuses(client, "busy") == ["claimed:None"]
    reasons = sorted(task.history[-1].reason or "" for task in client.tasks("lost"))
    assert reasons == [
        "its node is gone, was held by dead-node",
        "lease expired, was held by silent-node",
        "submitted",
    ]


def test_reset_orphaned_counts_the_attempt_and_locks_out_the_old_owner(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("stalled", [TaskSpec(command="true")] * 2, ran=0)
    long_ago = time.time() - 3600
    stalled = client.store.claim(job.cluster, "silent-node", 60.0, now=long_ago)
    assert stalled is not None and stalled.attempt == 1
    running = client.store.claim(job.cluster, "live-node", 3600.0)
    assert running is not None

    result = invoke("reset", "stalled", "--orphaned")

    assert result.exit_code == 0, result.output
    assert "Job stalled: 1 task back to pending;" in result.output
    assert client.store.renew(stalled.id, "silent-node", 60.0) is False
    again = client.store.claim(job.cluster, "new-node", 60.0)
    assert again is not None and (again.id, again.attempt) == (stalled.id, 2)
    assert client.store.get_task(running.id) == running


def test_reset_orphaned_fails_a_task_out_of_attempts(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("spent", [TaskSpec(command="true")], ran=0)
    long_ago = time.time() - 3600
    for n in range(job.max_attempts):  # each lease runs out before the next
        now = long_ago + 120 * n
        assert client.store.claim(job.cluster, "silent-node", 60.0, now=now)

    result = invoke("reset", "spent.1", "--orphaned")

    assert result.exit_code == 0, result.output
    assert "1 task out of attempts and now failed" in result.output
    assert statuses(client, "spent") == ["failed:None"]


def test_reset_orphaned_leaves_the_outcome_of_a_job_with_nothing_to_run(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("spent", [TaskSpec(command="true")], ran=0)
    long_ago = time.time() - 3600
    for _ in range(job.max_attempts):  # each lease runs out before the next
        assert client.store.claim(job.cluster, "silent-node", 60.0, now=long_ago)
        long_ago += 120
    client.store.set_job_status("spent", JobStatus.FAILED)  # a run recorded it

    result = invoke("reset", "spent", "--orphaned")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "Job spent: 0 tasks back to pending, 1 task out of attempts and now failed.\n"
    )
    assert client.job("spent").status is JobStatus.FAILED


def test_reset_orphaned_never_reopens_a_killed_job(
    client: Client, finished: Finished, invoke: Invoke
) -> None:
    job = finished("stopped", [TaskSpec(command="true")] * 2, ran=0)
    long_ago = time.time() - 3600
    assert client.store.claim(job.cluster, "silent-node", 60.0, now=long_ago)
    # Killed while a claim was under way: the job, not yet that task.
    client.store.set_job_status("stopped", JobStatus.KILLED)

    result = invoke("reset", "stopped", "--orphaned")

    assert result.exit_code == 0, result.output
    assert "Job stopped: 1 task back to pending; the job stays killed" in (
        result.output
    )
    assert client.job("stopped").status is JobStatus.KILLED
    assert client.store.claim(job.cluster, "new-node", 60.0) is None


def test_reset_orphaned_with_all_is_a_usage_error(
    client: Client, invoke: Invoke
) -> None:
    result = invoke("reset", "*", "--orphaned", "--all")
    assert result.exit_code == 2
    assert "not both" in result.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["kill", "*"], "No jobs match '*'; nothing to kill."),
        (["kill", "sweep-?"], "No jobs match 'sweep-?'; nothing to kill."),
        (["reset", "*"], "No jobs match '*'; nothing to reset."),
        (["delete", "test-*", "-y"], "No jobs to delete."),
    ],
    ids=["kill-everything", "kill-question-mark", "reset-everything", "delete"],
)
def test_a_wildcard_matching_no_job_has_nothing_to_do(
    home: Path, args: list[str], line: str
) -> None:
    done = run_sparkles(*args)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [line]


@pytest.mark.parametrize("command", ["kill", "reset"])
def test_an_exact_id_matching_no_job_is_still_an_error(
    home: Path, command: str
) -> None:
    done = run_sparkles(command, "nope")

    assert done.returncode == 2
    assert "No job matches 'nope'" in done.stderr
