"""What a round of ``sparkles watch`` costs in store calls, however many jobs."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from sparkles_core.cli.progress import FailureFeed, PlainReporter
from sparkles_core.client import Client
from sparkles_core.errors import JobFailed
from sparkles_core.hooks import hookimpl
from sparkles_core.models import Job, JobSpec, ResourceUsage, Task, TaskSpec
from sparkles_core.monitor.checks import JobsProgress
from sparkles_core.monitor.events import LifecycleEvents
from sparkles_core.plugins import plugin_manager
from sparkles_core.store.base import Completion
from tests.core.store_helpers import CountingStore

ROUNDS = 3


class TaskObserver:
    """A plugin that listens for finished tasks, so the monitor looks for them."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def sparkles_task_finished(self, task: Task) -> None:
        self.seen.append(task.id)


@pytest.fixture
def observer() -> Iterator[TaskObserver]:
    plugin = TaskObserver()
    name = plugin_manager().register(plugin)
    yield plugin
    plugin_manager().unregister(name=name)


def jobs_with_a_failure(client: Client, count: int) -> list[Job]:
    """Submit ``count`` jobs of two tasks; the first task of each exits 3."""
    spec = JobSpec(name="j", tasks=[TaskSpec(command="true")] * 2)
    jobs = [client.submit(spec, f"j{n}") for n in range(count)]
    for job in jobs:
        # SQLite hands out the lowest index first: task 1 of every job.
        claimed = client.store.claim(job.cluster, "node-x", 60.0)
        assert claimed is not None and claimed.index == 1
        now = time.time()
        ended = Completion(3, None, now, now, ResourceUsage(), result_key=None)
        assert client.store.complete(claimed.id, "node-x", ended)
    return jobs


@pytest.mark.parametrize("count", [1, 8], ids=["one-job", "eight-jobs"])
def test_a_round_costs_the_same_store_calls_for_one_job_or_many(
    client: Client, observer: TaskObserver, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However long the rounds take (a busy machine may stall one for over a
    # second), the failure feed scans only once: the count below is exact.
    monkeypatch.setattr(FailureFeed, "SCAN_INTERVAL_S", math.inf)
    jobs = jobs_with_a_failure(client, count)
    counting = CountingStore(client.store)
    console = Console(record=True, width=200, force_terminal=False)
    reporter = PlainReporter(console, counting.as_store, jobs)
    failed: list[JobFailed] = []
    progress = JobsProgress(counting.as_store, jobs, reporter, 0.2, failed.append)
    events = LifecycleEvents(counting.as_store, jobs, 2.0)

    with reporter:
        for _ in range(ROUNDS):
            progress.poll(time.time())
            events.poll(time.time())

    # Per round: one count of every job's tasks, one node listing for their
    # one cluster and one look for finished tasks; plus the first look for
    # failures, which finds every job's.
    assert counting.calls == {
        "count_tasks_by_job": ROUNDS,
        "list_nodes": ROUNDS,
        "finished_since": ROUNDS + 1,
    }
    output = console.export_text()
    assert output.count("failed: exit code 3") == count
    assert len(observer.seen) == count and failed == []
