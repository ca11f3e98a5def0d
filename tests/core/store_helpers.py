"""Shared pieces of the store tests: a cluster, a clock and job helpers."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from sparkles_core.models import Job, ResourceUsage, Task, TaskSpec
from sparkles_core.plugins import open_store
from sparkles_core.store.base import Completion, Store

CLUSTER = "cluster-a"
T0 = 1_000_000.0
LEASE_S = 30.0
SUCCESS = Completion(
    exit_code=0,
    signal=None,
    started=T0 + 1,
    finished=T0 + 2,
    usage=ResourceUsage(user_cpu_s=0.5, max_rss_bytes=1024),
    result_key="results/job.1/1/result.json",
)


def submit(
    store: Store,
    job_id: str = "job",
    count: int = 3,
    *,
    cluster: str = CLUSTER,
    max_attempts: int = 3,
    submit_time: float = T0,
    timeout: float | None = None,
) -> list[Task]:
    """Create a job of ``count`` echo tasks and return its tasks."""
    job = Job(
        id=job_id,
        cluster=cluster,
        spec_hash="0" * 64,
        submit_time=submit_time,
        task_count=count,
        max_attempts=max_attempts,
    )
    specs = [
        TaskSpec(command=["echo", str(n)], timeout=timeout) for n in range(1, count + 1)
    ]
    return store.create_job(job, specs)


def must_get(store: Store, task_id: str) -> Task:
    """Return the task, failing the test if it is missing."""
    task = store.get_task(task_id)
    assert task is not None, f"task {task_id} is missing"
    return task


def must_claim(store: Store, owner: str, now: float = T0) -> Task:
    """Claim a task of CLUSTER for ``owner``, failing the test if none is given."""
    task = store.claim(CLUSTER, owner, LEASE_S, now=now)
    assert task is not None, f"{owner} got no task"
    return task


def drain(url: str, cluster: str, owner: str) -> list[str]:
    """Claim and complete tasks until none is left; return the ids claimed."""
    store = open_store(url)
    claimed: list[str] = []
    try:
        while (task := store.claim(cluster, owner, 600.0)) is not None:
            claimed.append(task.id)
            assert store.complete(task.id, owner, SUCCESS), task.id
    finally:
        store.close()
    return claimed


def submit_one(url: str, job_id: str) -> list[str]:
    """Open the store at ``url`` and submit a one-task job; return its ids."""
    store = open_store(url)
    try:
        return [task.id for task in submit(store, job_id, 1)]
    finally:
        store.close()


class CountingStore:
    """A store that passes every call to a real one and counts them by method."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return counted

    @property
    def as_store(self) -> Store:
        """Return this wrapper typed as the store it stands in for."""
        return cast(Store, self)

    def queries(self) -> int:
        """Return how many calls were made in all."""
        return sum(self.calls.values())
