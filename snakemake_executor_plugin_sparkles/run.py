"""The Sparkles side of one workflow run, apart from Snakemake's executor API.

A :class:`WorkflowRun` owns the one :class:`~sparkles_core.client.Client`
of the run, the cluster monitor and the record of submitted jobs. The
executor calls it with Snakemake jobs and gets back plain values, which
keeps this logic typed (the executor's base class is not) and testable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_sparkles.config import load_plugin_config
from snakemake_executor_plugin_sparkles.envvars import discard_envvars, store_envvars
from snakemake_executor_plugin_sparkles.files import job_files
from snakemake_executor_plugin_sparkles.interrupts import sigint_ignored
from snakemake_executor_plugin_sparkles.machines import PreemptionPolicy
from snakemake_executor_plugin_sparkles.monitor import ClusterMonitor
from snakemake_executor_plugin_sparkles.results import (
    describe_failure,
    fetch_failure_logs,
    fetch_products,
)
from snakemake_executor_plugin_sparkles.settings import ExecutorSettings
from snakemake_executor_plugin_sparkles.staging import Stager, guarded
from snakemake_executor_plugin_sparkles.submission import (
    RunContext,
    build_job_spec,
    new_run_id,
)
from snakemake_executor_plugin_sparkles.tracking import RunJobs, Submission
from sparkles_cas.cas import UploadReport
from sparkles_core.client import Client
from sparkles_core.errors import SparklesError
from sparkles_core.models import JobStatus, Task, TaskStatus
from sparkles_core.monitor.events import announce_task_end

__all__ = ["Submitted", "WorkflowRun"]

logger = logging.getLogger(__name__)

# Writing fetched files can fail locally (disk full, a folder in the way),
# and a result.json that does not parse is a ValueError.
_LOCAL_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)


@dataclass(frozen=True)
class Submitted:
    """What submitting one Snakemake job did."""

    task_id: str
    cluster: str
    report: UploadReport


class WorkflowRun:
    """Submit a run's jobs, follow their tasks and tear down their clusters."""

    def __init__(
        self, settings: ExecutorSettings, workflow: Any, workdir: Path
    ) -> None:
        config = load_plugin_config(settings)
        self.client = guarded("open the store", lambda: Client(config))
        self.run_id = new_run_id()
        self.workdir = workdir
        self.context = RunContext(
            run_id=self.run_id,
            base_machine=config.machine_spec(),
            image=config.default_image,
            nodes=settings.nodes,
            policy=preemption_policy(workflow, config.preemptible),
        )
        self._keep_cluster = settings.keep_cluster
        # Each run gets clusters of its own, so stopping them at the end
        # cannot take nodes from another workflow. Nodes kept for the next
        # run must be found by it, so then only the needs name the cluster.
        self._cluster_scope = "" if settings.keep_cluster else self.run_id
        self._stager = Stager(self.client, workflow, workdir)
        self._monitor = ClusterMonitor(self.client, settings.nodes)
        self._jobs = RunJobs(self.run_id)
        self._closed = False

    @property
    def is_local(self) -> bool:
        """Return True when nodes are processes on this machine."""
        return self.client.config.cluster_url == "local"

    def submit(self, job: Any, command: str, env: dict[str, str]) -> Submitted:
        """Upload the job's files and store it as a one-task Sparkles job."""
        files = job_files(job, self.workdir)
        downloads, report = self._stager.stage(files)
        job_id = self._jobs.new_job_id(job.name)
        storage = self.client.storage
        env_key = guarded(
            f"store the environment of job {job_id}",
            lambda: store_envvars(storage, job_id, env),
        )
        try:
            spec = build_job_spec(
                job, job_id, command, env_key, downloads, files, self.context
            )
            stored = guarded(
                f"submit job {job_id}",
                lambda: self.client.submit(spec, job_id, self._cluster_scope),
            )
        except BaseException:
            self._abandon_submission(job_id, env_key)
            raise
        self._monitor.watch(stored)
        submission = Submission(job_id, f"{job_id}.1", files)
        self._jobs.add(submission)
        return Submitted(submission.task_id, stored.cluster, report)

    def _abandon_submission(self, job_id: str, env_key: str | None) -> None:
        """Clean up after a submission that failed or was interrupted.

        A store error may come after the job was written (a commit whose
        reply was lost): then the job is killed, so none of its tasks runs
        untracked. Either way no job will read its variables any more.
        """
        with sigint_ignored():
            try:
                if self.client.store.get_job(job_id) is not None:
                    self._kill(job_id)
            except (SparklesError, WorkflowError) as exc:
                logger.warning(
                    "Job %s: could not make sure it is not left behind (%s); "
                    "check with: sparkles status %s",
                    job_id,
                    exc,
                    job_id,
                )
            discard_envvars(self.client.storage, env_key)

    def tasks(self, task_ids: list[str]) -> dict[str, Task]:
        """Return the tasks by id, read in one store query."""
        tasks = guarded(
            "read task status", lambda: self.client.store.get_tasks(task_ids)
        )
        return {task.id: task for task in tasks}

    def collect_success(self, task: Task) -> int:
        """Fetch a succeeded task's products; return how many files came.

        Raise WorkflowError if they could not all be fetched: the job failed.
        """
        submission = self._take(task)
        try:
            count = guarded(
                f"fetch the outputs of task {task.id}",
                lambda: fetch_products(
                    self.client, task, submission.files, self.workdir
                ),
                also=_LOCAL_ERRORS,
            )
        except WorkflowError:
            self._record_end(task, JobStatus.FAILED)
            raise
        self._record_end(task, JobStatus.COMPLETE)
        return count

    def collect_failure(self, task: Task) -> tuple[str, Path | None]:
        """Fetch a failed task's logs; return what happened and the log's path."""
        submission = self._take(task)
        self._record_end(task, JobStatus.FAILED)
        message = describe_failure(task)
        try:
            log = guarded(
                f"fetch the log of task {task.id}",
                lambda: fetch_failure_logs(
                    self.client, task, submission.files, self.workdir
                ),
                also=_LOCAL_ERRORS,
            )
        except WorkflowError as exc:
            logger.warning("Task %s: %s", task.id, exc)
            return f"{message} {exc}", None
        return message, log

    def _take(self, task: Task) -> Submission:
        """Forget the task's submission and return it."""
        submission = self._jobs.pop(task.id)
        if submission is None:
            raise WorkflowError(f"Sparkles task {task.id!r} was reported twice.")
        return submission

    def _record_end(self, task: Task, status: JobStatus) -> None:
        """Record how the task's job ended (unless killed); tell plugins."""
        try:
            if task.status is not TaskStatus.KILLED:
                self.client.store.set_job_status(task.job_id, status)
            announce_task_end(self.client.store, task)
        except SparklesError as exc:
            # The record informs `sparkles status` only; Snakemake is told
            # the job's outcome all the same.
            logger.warning(
                "Job %s: could not record it as %s: %s", task.job_id, status.value, exc
            )

    def forget(self, task_id: str) -> None:
        """Stop following a task that is gone from the store."""
        self._jobs.pop(task_id)

    def abandon(self, task_id: str) -> None:
        """Stop following a task whose status cannot be read; kill it if possible."""
        submission = self._jobs.pop(task_id)
        if submission is None:
            return
        try:
            self._kill(submission.job_id)
        except WorkflowError as exc:
            # close() tries again: it kills every unfinished job of the run.
            logger.warning("Job %s: not killed yet: %s", submission.job_id, exc)

    def cancel(self, task_ids: list[str]) -> None:
        """Kill the jobs of these tasks; their nodes stop at :meth:`close`."""
        for task_id in task_ids:
            submission = self._jobs.pop(task_id)
            if submission is not None:
                self._kill(submission.job_id)

    def close(self, join_poller: Callable[[], None] = lambda: None) -> None:
        """Kill what is left of the run, stop its clusters, close the client, once.

        ``join_poller`` returns once no other thread (Snakemake's status
        poller) can still use the client; it is called before the client is
        closed. Ctrl-C is ignored meanwhile: stopping half way would leave
        nodes up, or a poll reading from a closed store.
        """
        with sigint_ignored():
            if self._closed:
                return
            self._closed = True
            self._tear_down(join_poller)

    def _tear_down(self, join_poller: Callable[[], None]) -> None:
        """Stop the monitor, kill the unfinished jobs, stop the clusters."""
        self._monitor.stop()
        try:
            leftovers = guarded(
                "read task status", lambda: self._jobs.unfinished(self.client.store)
            )
            for job_id in leftovers:
                self._kill(job_id)
        finally:
            if self._keep_cluster:
                logger.info("Run %s: nodes left to linger", self.run_id)
            else:
                self._monitor.stop_clusters()
            try:
                join_poller()
            finally:
                self.client.close()

    def _kill(self, job_id: str) -> None:
        killed = guarded(
            f"kill job {job_id}", lambda: self.client.store.kill_job(job_id)
        )
        logger.info("Job %s: killed, %d tasks stopped", job_id, killed)


def preemption_policy(workflow: Any, default: bool) -> PreemptionPolicy:
    """Return the policy that --preemptible-rules and -retries describe."""
    remote = workflow.remote_execution_settings
    rules = getattr(remote, "preemptible_rules", None)
    return PreemptionPolicy(
        rules=frozenset(getattr(rules, "rules", ()) or ()),
        all_rules=bool(getattr(rules, "all", False)),
        retries=getattr(remote, "preemptible_retries", None),
        default=default,
    )
