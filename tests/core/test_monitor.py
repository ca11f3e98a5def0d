"""The monitor's checks and the local cluster, with real worker processes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import psutil
import pytest

from sparkles_core.client import Client
from sparkles_core.errors import JobFailed
from sparkles_core.models import (
    Job,
    JobSpec,
    NodeClass,
    NodeReq,
    NodeStatus,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.monitor.checks import FailureMonitor, ResetOrphans, ResizeCluster
from sparkles_core.monitor.runner import STOP, Runner


class Recorder:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.progress_calls: list[dict[TaskStatus, int]] = []
        self.output = b""
        self.messages: list[str] = []

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        self.progress_calls.append(dict(counts))

    def log(self, task_id: str, data: bytes) -> None:
        self.output += data

    def message(self, text: str) -> None:
        self.messages.append(text)


def node(node_id: str, cluster: str, status: NodeStatus, cls: NodeClass) -> NodeReq:
    now = time.time()
    return NodeReq(
        id=node_id,
        cluster=cluster,
        node_class=cls,
        status=status,
        created=now,
        updated=now,
    )


def test_wait_runs_the_job_streams_its_log_and_stops_the_cluster(
    client: Client,
) -> None:
    spec = JobSpec(
        name="j",
        tasks=[TaskSpec(command="echo line one; echo line two")],
        nodes=1,
    )
    job = client.submit(spec, "j")
    recorder = Recorder()

    counts = client.wait(job, recorder, follow="j.1")

    assert counts[TaskStatus.COMPLETE] == 1
    assert recorder.output == b"line one\nline two\n"
    assert recorder.progress_calls[-1][TaskStatus.COMPLETE] == 1
    assert client.stop_cluster_if_idle(job.cluster)
    assert client.store.list_nodes(job.cluster) == []


def test_cluster_grows_to_min_of_nodes_and_work(client: Client) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="sleep 0.3")] * 3, nodes=5)
    job = client.submit(spec, "j")
    resize = ResizeCluster(
        client.store, client.provisioner, client.launch_for(job), 5, 2, 1.0
    )
    resize.poll(time.time())
    nodes = client.provisioner.refresh(job.cluster)
    assert len([n for n in nodes if n.status.alive]) == 3
    pids = [int(n.detail["pid"]) for n in nodes]

    client.provisioner.stop_cluster(job.cluster)

    assert client.store.list_nodes(job.cluster) == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_preemptible_budget_then_standard_nodes(client: Client) -> None:
    job = client.submit(
        JobSpec(name="j", tasks=[TaskSpec(command="true")] * 4, nodes=2), "j"
    )
    # Two earlier preemptible nodes of this cluster died; the budget (2 x 1) is spent.
    for n in range(2):
        client.store.put_node(
            node(f"old{n}", job.cluster, NodeStatus.FAILED, NodeClass.PREEMPTIBLE)
        )

    resize = ResizeCluster(
        client.store, client.provisioner, client.launch_for(job), 2, 1, 1.0
    )
    resize.poll(time.time())

    fresh = [n for n in client.store.list_nodes(job.cluster) if n.status.alive]
    assert [n.node_class for n in fresh] == [NodeClass.STANDARD] * 2


def test_tasks_of_a_gone_node_go_back_to_pending(client: Client) -> None:
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command="true")]), "j")
    claimed = client.store.claim(job.cluster, "ghost", lease_s=3600)
    assert claimed is not None
    client.store.put_node(
        node("ghost", job.cluster, NodeStatus.FAILED, NodeClass.STANDARD)
    )

    ResetOrphans(client.store, job.cluster, 1.0).poll(time.time())

    task = client.store.get_task("j.1")
    assert task is not None
    assert task.status is TaskStatus.PENDING
    assert "gone" in (task.history[-1].reason or "")


def test_expired_lease_is_reset_without_any_node_record(client: Client) -> None:
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command="true")]), "j")
    assert client.store.claim(job.cluster, "stalled", lease_s=0.01) is not None
    time.sleep(0.05)

    ResetOrphans(client.store, job.cluster, 1.0).poll(time.time())

    task = client.store.get_task("j.1")
    assert task is not None and task.status is TaskStatus.PENDING


def test_many_dead_nodes_and_no_progress_stop_the_job(client: Client) -> None:
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command="true")]), "j")
    monitor = FailureMonitor(client.store, job, 1.0)
    assert monitor.poll(time.time()) == 1.0
    for n in range(FailureMonitor.DEAD_NODE_LIMIT):
        client.store.put_node(
            node(f"n{n}", job.cluster, NodeStatus.FAILED, NodeClass.PREEMPTIBLE)
        )

    with pytest.raises(JobFailed, match="nodes failed before any task finished"):
        monitor.poll(time.time())


class Countdown:
    name = "countdown"

    def __init__(self, rounds: int) -> None:
        self.rounds, self.finished = rounds, False

    def poll(self, now: float) -> float:
        self.rounds -= 1
        return STOP if self.rounds == 0 else 0.001

    def finish(self) -> None:
        self.finished = True


def test_runner_stops_when_a_check_says_so_and_finishes_all() -> None:
    first, second = Countdown(3), Countdown(100)
    Runner([first, second]).run()
    assert first.rounds == 0 and second.rounds > 0
    assert first.finished and second.finished
