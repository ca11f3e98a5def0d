"""The rules for changing a task record, shared by every store backend.

A backend decides *which* records to change and makes the change atomic; the
functions here decide *what* the change is. Each one edits a
:class:`~sparkles_core.models.Task` in memory and touches no database, so the
SQLite and Datastore backends cannot drift apart on, say, what a claim clears
or when a lost lease turns into a failure.

Every status change goes through :func:`note`, which also appends the history
entry that explains it: a task's history is the list of its transitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sparkles_core.errors import StoreError
from sparkles_core.models import HistoryEntry, Job, Task, TaskSpec, TaskStatus
from sparkles_core.store.base import Completion

__all__ = [
    "KILL_REASON",
    "check_task_count",
    "clear_results",
    "complete",
    "ended_at",
    "expire_lease",
    "fail",
    "give_back",
    "is_owned_by",
    "kill",
    "lease_expired",
    "logged",
    "new_tasks",
    "note",
    "reclaim",
    "resolve_time",
    "restart",
    "start_attempt",
]

logger = logging.getLogger(__name__)

KILL_REASON = "job killed"


def check_task_count(job: Job, specs: Sequence[TaskSpec]) -> None:
    """Raise StoreError unless ``job`` counts exactly as many tasks as ``specs``."""
    if job.task_count != len(specs):
        raise StoreError(
            f"Job {job.id!r} says it has {job.task_count} tasks but "
            f"{len(specs)} specs were given; submit them together."
        )


def new_tasks(job: Job, specs: Sequence[TaskSpec]) -> list[Task]:
    """Return the job's tasks as submitted: pending, with one history entry."""
    # Validating plain dicts builds a fresh history entry per task inside
    # pydantic's core, several times faster than copying an entry model.
    entry = {"time": job.submit_time, "status": "pending", "reason": "submitted"}
    shared: dict[str, object] = {"job_id": job.id, "cluster": job.cluster}
    shared["max_attempts"] = job.max_attempts
    return [
        Task.model_validate(
            {"id": f"{job.id}.{n}", "index": n, "spec": spec, "history": [entry]}
            | shared
        )
        for n, spec in enumerate(specs, start=1)
    ]


def is_owned_by(task: Task, owner: str) -> bool:
    """Return True if ``owner`` holds ``task`` and may still write it."""
    return task.status is TaskStatus.CLAIMED and task.owner == owner


def lease_expired(task: Task, now: float) -> bool:
    """Return True if ``task`` is claimed under a lease that ran out before now."""
    if task.status is not TaskStatus.CLAIMED or task.lease_expires is None:
        return False
    return task.lease_expires < now


def start_attempt(task: Task, owner: str, lease_expires: float, now: float) -> None:
    """Hand ``task`` to ``owner`` for a new attempt with no results yet."""
    clear_results(task)
    task.owner = owner
    task.lease_expires = lease_expires
    task.attempt += 1
    reason = f"attempt {task.attempt} of {task.max_attempts}"
    note(task, now, TaskStatus.CLAIMED, owner, reason)


def complete(task: Task, owner: str, completion: Completion, now: float) -> None:
    """Record what the worker reported and mark ``task`` complete."""
    task.lease_expires = None
    task.exit_code = completion.exit_code
    task.signal = completion.signal
    task.started = completion.started
    task.finished = completion.finished
    task.usage = completion.usage
    task.result_key = completion.result_key
    task.timed_out = completion.timed_out
    note(task, now, TaskStatus.COMPLETE, owner, _ending(task, completion))


def _ending(task: Task, completion: Completion) -> str:
    """Return how the command ended, as a history entry's reason."""
    if completion.timed_out:
        limit = task.spec.timeout
        return "timed out" if limit is None else f"timed out after {limit:g} s"
    if completion.signal is not None:
        return f"signal {completion.signal}"
    return f"exit code {completion.exit_code}"


def fail(task: Task, owner: str, reason: str, now: float) -> None:
    """Mark ``task`` failed because Sparkles could not run it."""
    task.lease_expires = None
    task.failure_reason = reason
    note(task, now, TaskStatus.FAILED, owner, reason)


def give_back(task: Task, now: float, reason: str, by: str | None = None) -> bool:
    """Return a claimed task to pending (True), or fail it if out of attempts."""
    task.lease_expires = None
    if task.attempt >= task.max_attempts:
        task.failure_reason = f"{reason}; gave up after {task.attempt} attempts"
        note(task, now, TaskStatus.FAILED, by, task.failure_reason)
        return False
    task.owner = None
    note(task, now, TaskStatus.PENDING, by, reason)
    return True


def reclaim(task: Task, now: float, reason: str) -> bool:
    """Take ``task`` from its owner for ``reason``, as :func:`give_back` does."""
    return give_back(task, now, f"{reason}, was held by {task.owner}")


def expire_lease(task: Task, now: float) -> bool:
    """Take ``task`` from the owner whose lease ran out, as :func:`give_back`."""
    return reclaim(task, now, "lease expired")


def restart(task: Task, now: float, reason: str) -> None:
    """Make ``task`` pending again with a fresh attempt budget."""
    clear_results(task)
    task.owner = None
    task.lease_expires = None
    task.attempt = 0
    note(task, now, TaskStatus.PENDING, None, reason)


def kill(task: Task, now: float) -> None:
    """Mark an unfinished ``task`` killed because its job was killed."""
    task.lease_expires = None
    note(task, now, TaskStatus.KILLED, None, KILL_REASON)


def clear_results(task: Task) -> None:
    """Forget what an earlier attempt left, so attempts never mix."""
    task.exit_code = task.signal = None
    task.timed_out = False
    task.started = task.finished = None
    task.failure_reason = task.log_key = task.result_key = None
    task.usage = None


def note(
    task: Task, now: float, status: TaskStatus, owner: str | None, reason: str | None
) -> None:
    """Set the task's status and add the history entry that explains it."""
    task.status = status
    entry = HistoryEntry(time=now, status=status, owner=owner, reason=reason)
    task.history.append(entry)


def ended_at(task: Task) -> float | None:
    """Return when ``task`` reached its finished status, or None if unfinished.

    Backends store this beside the record so that a monitor can ask for
    the tasks that finished since it last looked.
    """
    if not task.status.finished or not task.history:
        return None
    return task.history[-1].time


def logged(tasks: list[Task], reason: str) -> list[str]:
    """Log each task taken from its owner; return their ids."""
    for task in tasks:
        logger.info("Task %s: %s (%s)", task.id, task.status, reason)
    return [task.id for task in tasks]


def resolve_time(now: float | None) -> float:
    """Return ``now``, or the current time."""
    return time.time() if now is None else now
