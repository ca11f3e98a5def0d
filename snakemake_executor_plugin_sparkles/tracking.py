"""The Sparkles jobs one workflow run has submitted, and what is left of them.

A job id is taken before the job is stored, so a Ctrl-C that lands between
storing a job and recording it still finds the job at shutdown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from snakemake_executor_plugin_sparkles.files import JobFiles
from snakemake_executor_plugin_sparkles.submission import job_id_for
from sparkles_core.store.base import Store

__all__ = ["RunJobs", "Submission"]


@dataclass(frozen=True)
class Submission:
    """One Snakemake job as submitted: its Sparkles job, task and files."""

    job_id: str
    task_id: str
    files: JobFiles


class RunJobs:
    """Job ids handed out in this run, and the submissions still active."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._lock = threading.Lock()
        self._job_ids: list[str] = []
        self._active: dict[str, Submission] = {}

    def new_job_id(self, name: str) -> str:
        """Return a fresh job id for a job of rule (or group) ``name``."""
        with self._lock:
            job_id = job_id_for(self._run_id, len(self._job_ids) + 1, name)
            self._job_ids.append(job_id)
            return job_id

    def add(self, submission: Submission) -> None:
        """Remember a stored job until its task is reported."""
        with self._lock:
            self._active[submission.task_id] = submission

    def pop(self, task_id: str) -> Submission | None:
        """Forget the submission of ``task_id`` and return it."""
        with self._lock:
            return self._active.pop(task_id, None)

    def unfinished(self, store: Store) -> list[str]:
        """Return the ids of this run's jobs whose task is still unfinished."""
        with self._lock:
            task_ids = [f"{job_id}.1" for job_id in self._job_ids]
        tasks = store.get_tasks(task_ids)
        return [task.job_id for task in tasks if not task.status.finished]
