"""The periodic checks a monitor runs while a job is unfinished.

:class:`ResizeCluster` lives in :mod:`sparkles_core.monitor.resize`; it is
offered here beside the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from sparkles_cas.errors import ObjectNotFound, StorageError
from sparkles_cas.storage import ObjectStorage
from sparkles_core import layout
from sparkles_core.errors import JobFailed
from sparkles_core.models import Job, NodeReq, NodeStatus, Task, TaskStatus
from sparkles_core.monitor.resize import ResizeCluster
from sparkles_core.monitor.runner import STOP
from sparkles_core.store.base import Store

__all__ = [
    "JobsProgress",
    "LogStream",
    "Reporter",
    "ResetOrphans",
    "ResizeCluster",
]

logger = logging.getLogger(__name__)

_UNFINISHED = (TaskStatus.PENDING, TaskStatus.CLAIMED)


class Reporter(Protocol):
    """Where a monitor tells the user what is happening."""

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Show task counts and nodes; called when either changes."""

    def log(self, task_id: str, data: bytes) -> None:
        """Show more output of the task being followed."""

    def message(self, text: str) -> None:
        """Show a line about the job."""


class JobsProgress:
    """Report the watched jobs on change; give up on jobs whose nodes keep dying.

    A round costs one store call for the task counts of every watched job
    and one node listing per cluster, however many jobs share it. A job
    leaves the round once none of its tasks is pending or claimed, or once
    the failure rule gives up on it (handed to ``on_failed``); the check says
    STOP when no job is left.

    The failure rule: a cluster with :attr:`DEAD_NODE_LIMIT` failed nodes
    and a job on it with no complete task is a broken image or setup, not
    bad luck; stopping the job then saves paying for more nodes that would
    die too.
    """

    name = "progress"
    DEAD_NODE_LIMIT = 5

    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        reporter: Reporter,
        interval: float,
        on_failed: Callable[[JobFailed], None],
    ) -> None:
        self._store, self._reporter, self._interval = store, reporter, interval
        self._on_failed = on_failed
        self._active = {job.id: job for job in jobs}
        self._last: dict[str, tuple[object, ...]] = {}

    def poll(self, now: float) -> float:
        """Report what changed; return STOP once no watched job is unfinished."""
        counts = self._store.count_tasks_by_job(list(self._active))
        clusters = {job.cluster for job in self._active.values()}
        nodes = {cluster: self._store.list_nodes(cluster) for cluster in clusters}
        for job in list(self._active.values()):
            self._round(job, counts[job.id], nodes[job.cluster])
        return STOP if not self._active else self._interval

    def _round(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Report one job if it changed; let it go if it ended or is hopeless."""
        state = (sorted(counts.items()), sorted((n.id, n.status) for n in nodes))
        if state != self._last.get(job.id):
            self._last[job.id] = state
            self._reporter.progress(job, counts, nodes)
        if not any(counts.get(status, 0) for status in _UNFINISHED):
            del self._active[job.id]
            return
        failure = self._failure(job, counts, nodes)
        if failure is not None:
            del self._active[job.id]
            self._on_failed(failure)

    def _failure(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> JobFailed | None:
        """Return why to give up on ``job``, or None to keep watching it."""
        dead = sum(1 for node in nodes if node.status is NodeStatus.FAILED)
        if dead < self.DEAD_NODE_LIMIT or counts.get(TaskStatus.COMPLETE, 0):
            return None
        return JobFailed(
            f"Job {job.id!r}: {dead} nodes failed before any task finished; "
            "check the worker image and the node logs.",
            job.id,
        )

    def finish(self, error: BaseException | None) -> None:
        """Nothing to release."""


class ResetOrphans:
    """Hand back tasks whose lease expired or whose node is gone."""

    name = "orphans"

    def __init__(self, store: Store, cluster: str, interval: float) -> None:
        self._store, self._cluster, self._interval = store, cluster, interval

    def poll(self, now: float) -> float:
        """Reset orphaned tasks to pending."""
        expired = self._store.expire_leases(self._cluster, now)
        gone = [
            node.id
            for node in self._store.list_nodes(self._cluster)
            if not node.status.alive
        ]
        lost = self._store.reset_owned_by(gone, "its node is gone") if gone else []
        for task_id in [*expired, *lost]:
            logger.warning("Task %s: orphaned; back to pending", task_id)
        return self._interval

    def finish(self, error: BaseException | None) -> None:
        """Nothing to release."""


class LogStream:
    """Follow the log of one task: a given one, or any claimed task."""

    name = "log"

    def __init__(
        self,
        store: Store,
        storage: ObjectStorage,
        job: Job,
        reporter: Reporter,
        interval: float,
        task_id: str | None = None,
    ) -> None:
        self._store, self._storage, self._job = store, storage, job
        self._reporter, self._interval = reporter, interval
        self._pinned = task_id
        self._task: Task | None = None
        self._offset = 0

    def poll(self, now: float) -> float:
        """Show whatever the followed task wrote since the last poll."""
        task = self._current()
        if task is None:
            return self._interval
        previous = self._task
        if (
            previous is not None
            and previous.attempt
            and task.attempt != previous.attempt
        ):
            self._read(previous)  # the end of the attempt that was cut short
            self._reporter.message(f"task {task.id}: attempt {task.attempt} started")
            self._offset = 0
        self._task = task
        self._read(task)
        if task.status.finished and self._pinned is None:
            self._task, self._offset = None, 0
        return self._interval

    def _current(self) -> Task | None:
        if self._pinned is not None:
            return self._store.get_task(self._pinned)
        if self._task is not None:
            return self._store.get_task(self._task.id)
        claimed = self._store.list_tasks(self._job.id, [TaskStatus.CLAIMED])
        return claimed[0] if claimed else None

    def _read(self, task: Task) -> None:
        if task.attempt == 0:
            return
        key = task.log_key or layout.log_key(task.id, task.attempt)
        try:
            data = self._storage.get_bytes(key, self._offset)
        except ObjectNotFound:
            return
        except StorageError as exc:
            logger.warning("Task %s: could not read the log: %s", task.id, exc)
            return
        if data:
            self._offset += len(data)
            self._reporter.log(task.id, data)

    def finish(self, error: BaseException | None) -> None:
        """Show the rest of the followed task's log, unless stopped by an error."""
        if error is not None:
            return
        task = self._current()
        if task is not None:
            self._read(task)
