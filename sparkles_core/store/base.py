"""The job and task store: the one place where task ownership is decided.

Every backend keeps three kinds of record: :class:`~sparkles_core.models.Job`,
:class:`~sparkles_core.models.Task` (with its spec embedded, so a worker needs
one read to run it) and :class:`~sparkles_core.models.NodeReq`. Workers and
front ends never write a task directly; they call the transitions below, each
of which is conditional, so two processes can never both believe they own a
task.

Transitions of a task::

    pending --claim--> claimed --complete--> complete
       ^                  |  \\--fail------> failed
       |                  |
       +---release/expire-+   (attempt budget spent: failed)

    any unfinished --kill--> killed;  any --reset--> pending
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sparkles_core.models import (
    Job,
    JobStatus,
    NodeReq,
    ResourceUsage,
    Task,
    TaskSpec,
    TaskStatus,
)

__all__ = ["Completion", "Store"]


@dataclass(frozen=True)
class Completion:
    """What a worker reports when a task's command has run.

    ``timed_out`` says the worker stopped the command at the task's timeout;
    ``signal`` is then the signal that ended it.
    """

    exit_code: int | None
    signal: int | None
    started: float
    finished: float
    usage: ResourceUsage
    result_key: str | None
    timed_out: bool = False


class Store(abc.ABC):
    """Job, task and node records, with conditional task transitions.

    ``now`` arguments exist so tests can move time; callers normally leave
    them out and the backend uses ``time.time()``.
    """

    url: str

    # -- jobs ---------------------------------------------------------------

    @abc.abstractmethod
    def create_job(self, job: Job, specs: Sequence[TaskSpec]) -> list[Task]:
        """Store ``job`` and one pending task per spec, all or nothing.

        Task ids are ``"{job.id}.{n}"`` with ``n`` from 1. If a job with this
        id exists, raise :class:`~sparkles_core.errors.StoreError` and write
        nothing.
        """

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job | None:
        """Return the job, or None."""

    @abc.abstractmethod
    def list_jobs(self, pattern: str = "*") -> list[Job]:
        """Return jobs whose id matches the shell wildcard, oldest first."""

    @abc.abstractmethod
    def set_job_status(self, job_id: str, status: JobStatus) -> None:
        """Set the job's status."""

    @abc.abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Delete the job and all its tasks."""

    # -- task queries ---------------------------------------------------------

    @abc.abstractmethod
    def get_task(self, task_id: str) -> Task | None:
        """Return the task, or None."""

    @abc.abstractmethod
    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Return the tasks that exist among ``task_ids``, in one query."""

    @abc.abstractmethod
    def list_tasks(
        self, job_id: str, statuses: Iterable[TaskStatus] | None = None
    ) -> list[Task]:
        """Return the job's tasks (optionally only those statuses) by index."""

    @abc.abstractmethod
    def count_tasks(self, job_id: str) -> dict[TaskStatus, int]:
        """Return how many of the job's tasks are in each status."""

    @abc.abstractmethod
    def claimed_tasks(self, cluster: str) -> list[Task]:
        """Return the tasks of ``cluster`` that are currently claimed."""

    @abc.abstractmethod
    def count_tasks_by_job(
        self, job_ids: Iterable[str]
    ) -> dict[str, dict[TaskStatus, int]]:
        """Return :meth:`count_tasks` for each of ``job_ids``, in one call.

        Every id given is a key of the result; a job that does not exist
        counts zero everywhere.
        """

    @abc.abstractmethod
    def finished_since(self, job_ids: Iterable[str], since: float) -> list[Task]:
        """Return the tasks of these jobs that finished at ``since`` or later.

        A task counts from the time its status became complete, failed or
        killed, as its last history entry records it; a task since reset or
        claimed again is not finished. Oldest first.
        """

    @abc.abstractmethod
    def unfinished_count(self, cluster: str) -> int:
        """Return how many tasks of ``cluster`` are pending or claimed."""

    @abc.abstractmethod
    def jobs_with_work(self, cluster: str) -> list[Job]:
        """Return the cluster's jobs that still have work, oldest first.

        A job has work if it is not killed and some task of it is pending
        or claimed, whatever the job's status says (a reset job may have
        been marked complete before).
        """

    # -- task transitions -----------------------------------------------------

    @abc.abstractmethod
    def claim(
        self, cluster: str, owner: str, lease_s: float, now: float | None = None
    ) -> Task | None:
        """Claim one task of ``cluster`` for ``owner``, or return None.

        A pending task is taken first; failing that, a claimed task whose
        lease has expired (its history then says so). The claim is exclusive:
        of several concurrent callers exactly one gets each task. The task's
        ``attempt`` goes up by one and its log and result keys are cleared.
        A task of a killed job is never handed out.
        """

    @abc.abstractmethod
    def renew(
        self, task_id: str, owner: str, lease_s: float, now: float | None = None
    ) -> bool:
        """Extend the lease; return False if ``owner`` no longer holds it."""

    @abc.abstractmethod
    def set_log_key(self, task_id: str, owner: str, log_key: str) -> bool:
        """Point the task at the log of the current attempt, if still owned."""

    @abc.abstractmethod
    def complete(self, task_id: str, owner: str, completion: Completion) -> bool:
        """Mark the task complete, if ``owner`` still holds it."""

    @abc.abstractmethod
    def fail(self, task_id: str, owner: str, reason: str) -> bool:
        """Mark the task failed (Sparkles could not run it), if still owned."""

    @abc.abstractmethod
    def release(
        self, task_id: str, owner: str, reason: str, now: float | None = None
    ) -> bool:
        """Hand the task back as pending (say, on preemption), if still owned.

        If the task has used its ``max_attempts``, it becomes failed instead,
        with ``reason``.
        """

    @abc.abstractmethod
    def expire_leases(
        self,
        cluster: str,
        now: float | None = None,
        *,
        task_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Return to pending the claimed tasks whose lease has expired.

        Tasks out of attempts become failed. With ``task_ids``, only those
        tasks are considered. Return the ids that changed.
        """

    @abc.abstractmethod
    def reset_owned_by(
        self,
        owners: Iterable[str],
        reason: str,
        *,
        task_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Return to pending the claimed tasks held by these (gone) nodes.

        As with an expired lease, the attempt counts: a task out of attempts
        becomes failed. With ``task_ids``, only those tasks are considered.
        Return the ids that changed.
        """

    @abc.abstractmethod
    def reset(
        self,
        task_ids: Iterable[str],
        reason: str = "reset",
        statuses: Iterable[TaskStatus] | None = None,
    ) -> int:
        """Set tasks back to pending with a fresh attempt budget.

        With ``statuses``, only tasks currently in one of them are reset.
        Return how many changed.
        """

    @abc.abstractmethod
    def kill_job(self, job_id: str) -> int:
        """Mark the job killed and its unfinished tasks killed; return count."""

    # -- nodes ------------------------------------------------------------------

    @abc.abstractmethod
    def put_node(self, node: NodeReq) -> None:
        """Insert or replace a node record."""

    @abc.abstractmethod
    def list_nodes(self, cluster: str | None = None) -> list[NodeReq]:
        """Return the node records, of one cluster or all."""

    @abc.abstractmethod
    def delete_nodes(self, node_ids: Iterable[str]) -> None:
        """Delete node records."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release connections; the store is unusable afterwards."""
