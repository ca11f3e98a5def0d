"""Tell plugins when a monitor sees tasks finish and jobs end.

The ``sparkles_task_finished`` hook fires once per finished attempt of a
task, and ``sparkles_job_finished`` once per job whose every task has
finished, when the monitor that watched it stops. Finding newly finished
tasks costs a query over the job's finished tasks, so it runs only when
some plugin implements the task hook. A plugin that raises is logged and
the monitor goes on: an observer must not stop the jobs it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pluggy import HookCaller

from sparkles_core.models import Job, Task, TaskStatus
from sparkles_core.plugins import plugin_manager
from sparkles_core.store.base import Store

__all__ = ["LifecycleEvents", "announce_task_end", "notify"]

logger = logging.getLogger(__name__)

_FINISHED = [TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.KILLED]
_UNFINISHED = (TaskStatus.PENDING, TaskStatus.CLAIMED)


def notify(hook: HookCaller, **kwargs: object) -> None:
    """Call each plugin's implementation of a lifecycle hook on its own.

    One plugin that raises is logged and skipped; the others still hear of
    the event (a plain hook call would stop at the first error).
    """
    for impl in hook.get_hookimpls():
        try:
            impl.function(*(kwargs[name] for name in impl.argnames))
        # Broad on purpose: plugins are third-party code observing the run.
        except Exception:
            logger.warning(
                "Plugin %s: hook %s failed; carrying on",
                impl.plugin_name,
                hook.name,
                exc_info=True,
            )


def announce_task_end(store: Store, task: Task) -> None:
    """Fire the task hook for ``task``, and the job hook if its job has ended.

    For front ends that follow tasks themselves rather than with a monitor
    (the Snakemake executor); the store is read only if a plugin listens.
    """
    hook = plugin_manager().hook
    if hook.sparkles_task_finished.get_hookimpls():
        notify(hook.sparkles_task_finished, task=task)
    if not hook.sparkles_job_finished.get_hookimpls():
        return
    counts = store.count_tasks(task.job_id)
    job = store.get_job(task.job_id)
    if job is None or any(counts.get(status, 0) for status in _UNFINISHED):
        return
    by_name = {str(status): count for status, count in counts.items()}
    notify(hook.sparkles_job_finished, job=job, counts=by_name)


class LifecycleEvents:
    """A monitor check that fires the task and job lifecycle hooks."""

    name = "events"

    def __init__(self, store: Store, jobs: Sequence[Job], interval: float) -> None:
        self._store, self._jobs, self._interval = store, list(jobs), interval
        self._hook = plugin_manager().hook
        self._seen: set[tuple[str, int]] = set()

    @property
    def _wants_tasks(self) -> bool:
        return bool(self._hook.sparkles_task_finished.get_hookimpls())

    def poll(self, now: float) -> float:
        """Fire the task hook for attempts that finished since the last round."""
        if self._wants_tasks:
            for job in self._jobs:
                self._scan(job)
        return self._interval

    def _scan(self, job: Job) -> None:
        for task in self._store.list_tasks(job.id, _FINISHED):
            key = (task.id, task.attempt)
            if key not in self._seen:
                self._seen.add(key)
                notify(self._hook.sparkles_task_finished, task=task)

    def finish(self) -> None:
        """Fire the job hook for each watched job that has ended."""
        for job in self._jobs:
            counts = self._store.count_tasks(job.id)
            if any(counts.get(status, 0) for status in _UNFINISHED):
                continue
            if self._wants_tasks:
                self._scan(job)
            by_name = {str(status): count for status, count in counts.items()}
            notify(self._hook.sparkles_job_finished, job=job, counts=by_name)
