"""The periodic checks a monitor runs while a job is unfinished.

:class:`ResizeCluster` lives in :mod:`sparkles_core.monitor.resize`; it is
offered here beside the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from sparkles_cas.errors import ObjectNotFound, StorageError
from sparkles_cas.storage import ObjectStorage
from sparkles_core import layout
from sparkles_core.errors import JobFailed
from sparkles_core.models import Job, NodeReq, Task, TaskStatus
from sparkles_core.monitor.resize import ResizeCluster
from sparkles_core.monitor.runner import STOP
from sparkles_core.store.base import Store

__all__ = [
    "FailureMonitor",
    "JobProgress",
    "LogStream",
    "Reporter",
    "ResetOrphans",
    "ResizeCluster",
]

logger = logging.getLogger(__name__)


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


class JobProgress:
    """Report progress on change; stop when no task is pending or claimed."""

    name = "progress"

    def __init__(self, store: Store, job: Job, reporter: Reporter, interval: float):
        self._store, self._job, self._reporter = store, job, reporter
        self._interval = interval
        self._last: tuple[object, ...] | None = None

    def poll(self, now: float) -> float:
        """Report counts and nodes if they changed."""
        counts = self._store.count_tasks(self._job.id)
        nodes = self._store.list_nodes(self._job.cluster)
        state = (sorted(counts.items()), sorted((n.id, n.status) for n in nodes))
        if state != self._last:
            self._last = state
            self._reporter.progress(self._job, counts, nodes)
        unfinished = counts.get(TaskStatus.PENDING, 0) + counts.get(
            TaskStatus.CLAIMED, 0
        )
        return STOP if unfinished == 0 else self._interval

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


class FailureMonitor:
    """Stop a job whose nodes keep dying before any task finishes."""

    name = "failures"
    # Several dead nodes with nothing done is a broken image or setup, not
    # bad luck; stopping here saves paying for more nodes that will die too.
    DEAD_NODE_LIMIT = 5

    def __init__(self, store: Store, job: Job, interval: float) -> None:
        self._store, self._job, self._interval = store, job, interval

    def poll(self, now: float) -> float:
        """Raise JobFailed when too many nodes died with no task finished."""
        dead = [
            node
            for node in self._store.list_nodes(self._job.cluster)
            if node.status.value == "failed"
        ]
        if len(dead) < self.DEAD_NODE_LIMIT:
            return self._interval
        counts = self._store.count_tasks(self._job.id)
        if counts.get(TaskStatus.COMPLETE, 0) == 0:
            raise JobFailed(
                f"Job {self._job.id!r}: {len(dead)} nodes failed before any "
                "task finished; check the worker image and the node logs.",
                self._job.id,
            )
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
