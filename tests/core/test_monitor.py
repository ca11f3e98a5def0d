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
    JobStatus,
    NodeClass,
    NodeReq,
    NodeStatus,
    ResourceUsage,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.monitor.checks import JobsProgress, ResetOrphans, ResizeCluster
from sparkles_core.monitor.finishes import FinishReader
from sparkles_core.monitor.resize import NODE_REFRESH_S
from sparkles_core.monitor.runner import STOP, Runner
from sparkles_core.store.base import Completion, Store
from tests.core.store_helpers import SUCCESS, CountingStore, must_claim, submit


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


def alive(client: Client, cluster: str) -> int:
    return sum(1 for n in client.store.list_nodes(cluster) if n.status.alive)


def test_two_jobs_on_one_cluster_get_the_nodes_both_ask_for(client: Client) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")] * 2, nodes=1)
    first, second = client.submit(spec, "first"), client.submit(spec, "second")
    assert first.cluster == second.cluster
    resize = ResizeCluster(
        client.store,
        client.provisioner,
        client.launch_for(second),
        None,
        1,
        1.0,
        requested=second.nodes,
    )

    resize.poll(time.time())

    assert alive(client, first.cluster) == 2


def test_cluster_size_is_capped_by_max_nodes_and_by_work(client: Client) -> None:
    wide = JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")] * 2, nodes=4)
    job = client.submit(wide, "wide")
    client.submit(wide, "other")
    launch = client.launch_for(job)

    ResizeCluster(client.store, client.provisioner, launch, 3, 1, 1.0).poll(0.0)
    assert alive(client, job.cluster) == 3
    ResizeCluster(client.store, client.provisioner, launch, None, 1, 1.0).poll(0.0)
    assert alive(client, job.cluster) == 4, "four tasks in all"


def test_watch_override_replaces_the_jobs_own_request(client: Client) -> None:
    job = client.submit(
        JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")] * 3, nodes=1), "j"
    )
    resize = ResizeCluster(
        client.store,
        client.provisioner,
        client.launch_for(job),
        None,
        1,
        1.0,
        requested=2,
    )

    resize.poll(time.time())

    assert alive(client, job.cluster) == 2


def test_finished_job_asks_for_no_nodes_whatever_its_status(client: Client) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")], nodes=3)
    done = client.submit(spec, "done")
    client.store.kill_job(done.id)
    client.store.set_job_status(done.id, JobStatus.SUBMITTED)
    job = client.submit(spec.model_copy(update={"nodes": 1}), "j")
    launch = client.launch_for(job)

    ResizeCluster(client.store, client.provisioner, launch, None, 1, 1.0).poll(0.0)

    assert alive(client, job.cluster) == 1


def test_a_job_that_ended_and_was_reset_gets_nodes_again(client: Client) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")], nodes=1)
    job = client.submit(spec, "flaky")
    claimed = client.store.claim(job.cluster, "old-node", 60.0)
    assert claimed is not None
    now = time.time()
    ended = Completion(3, None, now, now, ResourceUsage(), result_key=None)
    assert client.store.complete(claimed.id, "old-node", ended)
    # As a watch records it; a reset by 'sub --retry' leaves this status.
    client.store.set_job_status(job.id, JobStatus.FAILED)
    client.store.reset([claimed.id])
    launch = client.launch_for(job)

    ResizeCluster(client.store, client.provisioner, launch, None, 1, 1.0).poll(0.0)

    assert alive(client, job.cluster) == 1


def test_resize_reads_only_the_clusters_jobs_with_work(client: Client) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="sleep 5")], nodes=1)
    for n in range(5):
        client.store.kill_job(client.submit(spec, f"old-{n}").id)
    job = client.submit(spec, "j")
    counting = CountingStore(client.store)
    resize = ResizeCluster(
        counting.as_store, client.provisioner, client.launch_for(job), None, 1, 1.0
    )

    resize.poll(0.0)

    assert alive(client, job.cluster) == 1
    assert counting.calls == {"unfinished_count": 1, "jobs_with_work": 1}


def test_node_records_are_refreshed_at_least_every_ten_seconds(
    client: Client,
) -> None:
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command="true")]), "j")
    launch = client.launch_for(job)
    resize = ResizeCluster(client.store, client.provisioner, launch, 1, 1, 30.0)

    assert resize.poll(time.time()) == NODE_REFRESH_S == 10.0


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
    spec = JobSpec(name="j", tasks=[TaskSpec(command="true")])
    job, other = client.submit(spec, "j"), client.submit(spec, "other")
    failed: list[JobFailed] = []
    monitor = JobsProgress(client.store, [job, other], Recorder(), 1.0, failed.append)
    assert monitor.poll(time.time()) == 1.0
    for n in range(JobsProgress.DEAD_NODE_LIMIT):
        client.store.put_node(
            node(f"n{n}", job.cluster, NodeStatus.FAILED, NodeClass.PREEMPTIBLE)
        )

    assert monitor.poll(time.time()) == STOP

    assert sorted(exc.job_id for exc in failed) == ["j", "other"]
    assert "5 nodes failed before any task finished" in str(failed[0])


def test_progress_leaves_a_job_that_ended_and_stops_after_the_last(
    client: Client,
) -> None:
    spec = JobSpec(name="j", tasks=[TaskSpec(command="true")])
    done, running = client.submit(spec, "done"), client.submit(spec, "running")
    client.store.kill_job(done.id)
    recorder = Recorder()
    failed: list[JobFailed] = []
    monitor = JobsProgress(client.store, [done, running], recorder, 1.0, failed.append)

    assert monitor.poll(time.time()) == 1.0
    client.store.kill_job(running.id)
    assert monitor.poll(time.time()) == STOP
    assert failed == []

    killed = [calls[TaskStatus.KILLED] for calls in recorder.progress_calls]
    assert killed == [1, 0, 1], "each job reported once per change"


class Countdown:
    name = "countdown"

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.finished: list[BaseException | None] = []

    def poll(self, now: float) -> float:
        self.rounds -= 1
        return STOP if self.rounds == 0 else 0.001

    def finish(self, error: BaseException | None) -> None:
        self.finished.append(error)


class Interrupted(Countdown):
    def poll(self, now: float) -> float:
        raise KeyboardInterrupt


def test_runner_stops_when_a_check_says_so_and_finishes_all() -> None:
    first, second = Countdown(3), Countdown(100)
    Runner([first, second]).run()
    assert first.rounds == 0 and second.rounds > 0
    assert first.finished == second.finished == [None]


def test_runner_tells_every_check_what_stopped_it() -> None:
    quiet, stopper = Countdown(100), Interrupted(1)

    with pytest.raises(KeyboardInterrupt) as caught:
        Runner([quiet, stopper]).run()

    assert quiet.finished == stopper.finished == [caught.value]


# -- finishes read since the last look ------------------------------------------


def test_finish_reader_returns_each_finish_once_in_order(store: Store) -> None:
    submit(store, "job", 3, max_attempts=1)
    first = must_claim(store, "w1").id
    store.complete(first, "w1", SUCCESS)
    reader = FinishReader(store, ["job"])

    assert [task.id for task in reader.read()] == [first]
    second = must_claim(store, "w1").id
    store.fail(second, "w1", "upload failed")
    assert [task.id for task in reader.read()] == [second]
    assert reader.read() == []


def test_finishes_after_one_stamped_by_a_fast_clock_are_still_read(
    store: Store,
) -> None:
    submit(store, "job", 2, max_attempts=1)
    reader = FinishReader(store, ["job"])
    # A process whose clock runs a minute ahead ends the first task.
    ahead = must_claim(store, "laptop").id
    store.release(ahead, "laptop", "stopped", now=time.time() + 60)
    assert [task.id for task in reader.read()] == [ahead]

    # A worker with the right time ends the second one afterwards.
    later = must_claim(store, "w1").id
    store.complete(later, "w1", SUCCESS)

    assert [task.id for task in reader.read()] == [later]
