"""``sparkles watch``: exit status, what it shows, and what it leaves running."""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from sparkles_core.cli.progress import (
    FailureFeed,
    PlainReporter,
    describe_failure,
    describe_nodes,
)
from sparkles_core.client import Client
from sparkles_core.errors import JobNotFound
from sparkles_core.models import (
    Download,
    Job,
    JobSpec,
    NodeClass,
    NodeReq,
    NodeStatus,
    ResourceUsage,
    Task,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.store.base import Completion
from tests.cli.conftest import MISSING_DIGEST, SPARKLES, Invoke, run_sparkles

ANSI = "\x1b["


def submit(invoke: Invoke, name: str, *command: str, seq: int | None = None) -> None:
    """Store a job without watching it."""
    extra = ["--seq", str(seq)] if seq else []
    result = invoke("sub", "--no-wait", "-n", name, *extra, *command)
    assert result.exit_code == 0, result.output


def most_nodes_shown(output: str) -> int:
    """Return the largest number of nodes any progress line showed."""
    counts = [
        sum(int(n) for n in re.findall(r"(\d+) \w+", line.split("nodes:", 1)[1]))
        for line in output.splitlines()
        if "nodes:" in line
    ]
    return max(counts, default=0)


# -- exit status and failures ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "code", "failure"),
    [
        ("true", 0, None),
        ("exit 3", 1, "Task w.1 failed: exit code 3"),
        ("kill -9 $$", 1, "Task w.1 failed: killed by signal 9"),
    ],
    ids=["all-succeeded", "non-zero-exit", "killed-by-signal"],
)
def test_watch_exits_0_only_when_every_task_succeeded(
    home: Path,
    client: Client,
    invoke: Invoke,
    command: str,
    code: int,
    failure: str | None,
) -> None:
    submit(invoke, "w", command)

    result = invoke("watch", "w")

    assert result.exit_code == code, result.output
    if failure is not None:
        assert result.output.count(failure) == 1
    assert "Job w: " in result.output.splitlines()[-1]


@pytest.mark.slow
def test_watch_says_why_a_task_could_not_run(
    home: Path, client: Client, invoke: Invoke
) -> None:
    unstageable = TaskSpec(
        command="true", downloads=[Download(dst="gone.txt", digest=MISSING_DIGEST)]
    )
    client.submit(JobSpec(name="nostage", tasks=[unstageable]), "nostage")

    result = invoke("watch", "nostage")

    assert result.exit_code == 1, result.output
    [task] = client.tasks("nostage")
    assert task.status is TaskStatus.FAILED
    assert f"Task nostage.1 failed: {task.failure_reason}" in result.output


@pytest.mark.slow
def test_watch_last_watches_the_newest_job(
    home: Path, client: Client, invoke: Invoke
) -> None:
    submit(invoke, "older", "exit 1")
    submit(invoke, "newer", "true")

    result = invoke("watch", "LAST")

    assert result.exit_code == 0, result.output
    assert "Job newer: 1 of 1 task succeeded." in result.output
    assert "older" not in result.output


def test_a_job_the_monitor_gives_up_on_is_killed(
    home: Path, client: Client, invoke: Invoke
) -> None:
    submit(invoke, "doomed", "true", seq=2)
    cluster = client.job("doomed").cluster
    for _ in range(5):  # five nodes died before any task finished
        client.store.put_node(node(NodeStatus.FAILED, NodeClass.STANDARD, cluster))

    result = invoke("watch", "doomed")

    assert result.exit_code == 1, result.output
    assert "5 nodes failed before any task finished" in result.output
    assert "The job was killed." in result.output
    assert client.job("doomed").status.value == "failed"
    assert client.store.count_tasks("doomed")[TaskStatus.KILLED] == 2


def test_watch_of_an_unknown_job_is_an_error(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke("watch", "nothing-here")
    assert isinstance(result.exception, JobNotFound)


@pytest.mark.usefixtures("plain_output")
def test_installed_watch_of_an_unknown_job_is_one_line_and_exit_2(
    home: Path, client: Client
) -> None:
    done = run_sparkles("watch", "nothing-here")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "sparkles: error: No job matches 'nothing-here'; run 'sparkles status' "
        "to list the jobs."
    ]


# -- what it shows ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "shown"),
    [("--loglive", True), ("--no-loglive", False)],
    ids=["loglive", "no-loglive"],
)
def test_live_log_follows_a_running_task(
    home: Path, client: Client, invoke: Invoke, flag: str, shown: bool
) -> None:
    submit(invoke, "chatty", "echo hello-from-the-task; sleep 2")

    result = invoke("watch", flag, "chatty")

    assert result.exit_code == 0, result.output
    assert ("chatty.1 | hello-from-the-task" in result.output) is shown


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "nodes"),
    [([], 1), (["--nodes", "3"], 3)],
    ids=["job-nodes", "nodes-override"],
)
def test_nodes_option_sets_how_many_nodes_start(
    home: Path, client: Client, invoke: Invoke, extra: list[str], nodes: int
) -> None:
    submit(invoke, "wide", "sleep 1", seq=3)

    result = invoke("watch", *extra, "wide")

    assert result.exit_code == 0, result.output
    assert most_nodes_shown(result.output) == nodes


@pytest.mark.slow
def test_finished_watch_stops_the_idle_cluster(
    home: Path, client: Client, invoke: Invoke
) -> None:
    submit(invoke, "tidy", "true")

    assert invoke("watch", "tidy").exit_code == 0

    job = client.job("tidy")
    assert client.store.list_nodes(job.cluster) == []
    assert job.status.value == "complete"


@pytest.mark.slow
@pytest.mark.usefixtures("plain_output")
def test_piped_watch_prints_plain_lines_only_on_change(
    home: Path, client: Client, invoke: Invoke
) -> None:
    submit(invoke, "piped", "echo line-{index}; sleep 0.5; exit {index}", seq=3)

    result = run_sparkles("watch", "piped")

    assert result.returncode == 1, result.stdout + result.stderr
    assert ANSI not in result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if "nodes:" in line]
    assert progress and all(a != b for a, b in itertools.pairwise(progress))
    assert progress[-1].startswith("piped: 3/3 done, 2 failed,")
    assert result.stdout.count("Task piped.3 failed: exit code 2 (index=2)") == 1
    assert result.stdout.splitlines()[-1] == (
        "Job piped: 1 of 3 tasks succeeded, 2 did not."
    )


def read_terminal(master: int, proc: subprocess.Popen[bytes]) -> bytes:
    """Return everything written to the terminal until the process ends."""
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.slow
def test_terminal_watch_draws_a_progress_bar(
    home: Path, client: Client, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(invoke, "tty", "sleep 0.3", seq=3)
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = pty.openpty()
    proc = subprocess.Popen([SPARKLES, "watch", "tty"], stdout=slave, stderr=slave)
    os.close(slave)
    try:
        output = read_terminal(master, proc).decode(errors="replace")
    finally:
        os.close(master)

    assert proc.wait(timeout=60) == 0, output
    assert ANSI in output
    assert "3/3" in output and "━" in output
    assert "Job tty: 3 of 3 tasks succeeded." in output


@pytest.mark.slow
@pytest.mark.usefixtures("plain_output")
def test_ctrl_c_stops_watching_but_not_the_job(
    home: Path, client: Client, invoke: Invoke
) -> None:
    submit(invoke, "long", "echo started; sleep 60")
    proc = subprocess.Popen(
        [SPARKLES, "watch", "long"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("long.1 | started"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert "Resume with: sparkles watch long" in err
    assert "Traceback" not in err
    [task] = client.tasks("long")
    assert task.status is TaskStatus.CLAIMED
    assert client.job("long").status.value == "submitted"
    client.kill("long")


# -- the pieces --------------------------------------------------------------------


def node(
    status: NodeStatus,
    node_class: NodeClass = NodeClass.PREEMPTIBLE,
    cluster: str = "c",
) -> NodeReq:
    return NodeReq(
        id=f"n-{time.monotonic_ns()}",
        cluster=cluster,
        node_class=node_class,
        status=status,
        created=0.0,
        updated=0.0,
    )


@pytest.mark.parametrize(
    ("nodes", "text"),
    [
        ([], "no nodes"),
        ([node(NodeStatus.COMPLETE)], "no nodes"),
        (
            [node(NodeStatus.RUNNING), node(NodeStatus.RUNNING)],
            "preemptible 2 running",
        ),
        (
            [
                node(NodeStatus.STAGING, NodeClass.STANDARD),
                node(NodeStatus.RUNNING),
                node(NodeStatus.FAILED),
            ],
            "preemptible 1 failed, 1 running; standard 1 staging",
        ),
    ],
    ids=["none", "finished-hidden", "one-class", "by-class-and-state"],
)
def test_nodes_are_shown_by_class_and_state(nodes: list[NodeReq], text: str) -> None:
    assert describe_nodes(nodes) == text


def test_nodes_without_classes_are_counted_by_state() -> None:
    nodes = [
        node(NodeStatus.STAGING, NodeClass.STANDARD),
        node(NodeStatus.RUNNING),
        node(NodeStatus.RUNNING),
    ]
    assert describe_nodes(nodes, by_class=False) == "2 running, 1 staging"


@pytest.mark.slow
@pytest.mark.usefixtures("plain_output")
def test_local_nodes_are_shown_without_a_class(home: Path, invoke: Invoke) -> None:
    submit(invoke, "here", "sleep 0.5")

    done = run_sparkles("watch", "here")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "; nodes: 1 running" in done.stdout
    assert "preemptible" not in done.stdout


def task(**fields: object) -> Task:
    values: dict[str, object] = {
        "id": "j.1",
        "job_id": "j",
        "index": 1,
        "cluster": "c",
        "spec": TaskSpec(command="true"),
        "status": TaskStatus.COMPLETE,
    }
    values.update(fields)
    return Task.model_validate(values)


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"exit_code": 2}, "Task j.1 failed: exit code 2"),
        ({"exit_code": None, "signal": 9}, "Task j.1 failed: killed by signal 9"),
        (
            {"status": TaskStatus.FAILED, "failure_reason": "staging failed"},
            "Task j.1 failed: staging failed",
        ),
        (
            {"exit_code": 1, "spec": TaskSpec(command="x", parameters={"a": "1"})},
            "Task j.1 failed: exit code 1 (a=1)",
        ),
        (
            {
                "exit_code": 1,
                "spec": TaskSpec(command="x", parameters={"a": "v" * 100}),
            },
            "Task j.1 failed: exit code 1 (a=" + "v" * 55 + "...)",
        ),
    ],
    ids=["exit-code", "signal", "reason", "parameters", "long-parameters"],
)
def test_failure_line_says_why(fields: dict[str, object], line: str) -> None:
    assert describe_failure(task(**fields)) == line


def test_each_failure_is_announced_once(home: Path, client: Client) -> None:
    spec = JobSpec(name="f", tasks=[TaskSpec(command="true")])
    job = client.submit(spec, "f")
    feed = FailureFeed(client.store, [job])
    failed = task(id="f.1", job_id="f", exit_code=3)

    assert [t.id for t in feed.unseen([failed, task(exit_code=0)])] == ["f.1"]
    assert feed.unseen([failed]) == []
    assert feed.failures("f") == 1


def test_plain_reporter_prints_a_progress_line_only_when_it_changes(
    home: Path, client: Client
) -> None:
    job = client.submit(JobSpec(name="p", tasks=[TaskSpec(command="true")]), "p")
    console = Console(record=True, width=200, force_terminal=False)
    reporter = PlainReporter(console, client.store, [job])
    counts = {TaskStatus.PENDING: 1}

    with reporter:
        reporter.progress(job, counts, [])
        reporter.progress(job, counts, [])
        reporter.log("p.1", b"first line\npart")
        reporter.log("p.1", b"ial\n")

    assert console.export_text().splitlines() == [
        "p: 0/1 done, 0 failed, 0 running, 1 pending; nodes: no nodes",
        "p.1 | first line",
        "p.1 | partial",
    ]


def finish(client: Client, job: Job, exit_code: int) -> None:
    """Claim the job's next task and complete it with ``exit_code``."""
    claimed = client.store.claim(job.cluster, "node-x", 60.0)
    assert claimed is not None
    now = time.time()
    usage = ResourceUsage()
    done = Completion(exit_code, None, now, now, usage, result_key=None)
    assert client.store.complete(claimed.id, "node-x", done)


def test_last_progress_line_counts_every_failure(home: Path, client: Client) -> None:
    spec = JobSpec(name="end", tasks=[TaskSpec(command="true")] * 2)
    job = client.submit(spec, "end")
    console = Console(record=True, width=200, force_terminal=False)
    reporter = PlainReporter(console, client.store, [job])

    with reporter:
        finish(client, job, 0)
        reporter.progress(job, client.store.count_tasks(job.id), [])
        finish(client, job, 4)  # well within the scan interval
        reporter.progress(job, client.store.count_tasks(job.id), [])

    lines = console.export_text().splitlines()
    assert lines[-2] == "Task end.2 failed: exit code 4"
    assert lines[-1].startswith("end: 2/2 done, 1 failed,")
