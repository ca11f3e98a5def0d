"""Tell plugins when a monitor sees tasks finish and jobs end.

What "once" means here is once per monitor; nothing is stored to say what
was announced:

- ``sparkles_task_finished`` fires once for each time a task of a watched
  job finishes (complete, failed or killed) that the monitor finds,
  including finishes from before it started. A task that is reset and runs
  again finishes, and is announced, again. Two monitors of one job (two
  watches side by side, or a watch started again after Ctrl-C) each
  announce every finish; an observer that must act only once can tell
  finishes apart by the task id and the length of its history.
- ``sparkles_job_finished`` fires once for each watched job with no
  pending or claimed task, when the monitor stops; not when an exception
  (Ctrl-C, a store error) stopped it.

Finding new finishes costs one store query over the tasks that finished
since the last look, and runs only when some plugin implements the task
hook; the job hook costs one count of the watched jobs' tasks, only when
some plugin implements it. A plugin that raises is logged and the monitor
goes on: an observer must not stop the jobs it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from pluggy import HookCaller, HookRelay

from sparkles_core.models import Job, Task, TaskStatus
from sparkles_core.monitor.finishes import FinishReader
from sparkles_core.plugins import plugin_manager
from sparkles_core.store.base import Store

__all__ = ["LifecycleEvents", "announce_task_end", "notify"]

logger = logging.getLogger(__name__)

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
        except Exception as exc:
            # One line for the user; the traceback only with --debug.
            logger.warning(
                "Plugin %s: hook %s failed (%s: %s); carrying on",
                impl.plugin_name,
                hook.name,
                type(exc).__name__,
                exc,
            )
            logger.debug("Plugin %s: traceback", impl.plugin_name, exc_info=True)


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
    job = store.get_job(task.job_id)
    if job is not None:
        _announce_if_ended(hook, job, store.count_tasks(job.id))


def _announce_if_ended(
    hook: HookRelay, job: Job, counts: Mapping[TaskStatus, int]
) -> None:
    """Fire the job hook for ``job`` if none of its tasks is unfinished."""
    if any(counts.get(status, 0) for status in _UNFINISHED):
        return
    by_name = {str(status): count for status, count in counts.items()}
    notify(hook.sparkles_job_finished, job=job, counts=by_name)


class LifecycleEvents:
    """A monitor check that fires the task and job lifecycle hooks."""

    name = "events"

    def __init__(self, store: Store, jobs: Sequence[Job], interval: float) -> None:
        self._store, self._jobs, self._interval = store, list(jobs), interval
        self._hook = plugin_manager().hook
        self._finishes = FinishReader(store, [job.id for job in jobs])

    def _wants(self, hook: HookCaller) -> bool:
        return bool(hook.get_hookimpls())

    def poll(self, now: float) -> float:
        """Fire the task hook for finishes since the last round."""
        if self._wants(self._hook.sparkles_task_finished):
            self._scan()
        return self._interval

    def _scan(self) -> None:
        for task in self._finishes.read():
            notify(self._hook.sparkles_task_finished, task=task)

    def finish(self, error: BaseException | None) -> None:
        """Fire the job hook for each watched job that has ended.

        After an error nothing is fired and the store is not read; nor is
        it when no plugin listens.
        """
        if error is not None:
            return
        if self._wants(self._hook.sparkles_task_finished):
            self._scan()
        if not self._wants(self._hook.sparkles_job_finished):
            return
        counts = self._store.count_tasks_by_job(job.id for job in self._jobs)
        for job in self._jobs:
            _announce_if_ended(self._hook, job, counts[job.id])
