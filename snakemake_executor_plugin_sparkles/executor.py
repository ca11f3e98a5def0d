# snakemake-interface-executor-plugins ships no type information (no py.typed).
# mypy: disable-error-code="import-untyped"
# mypy: allow-subclassing-any
"""The Snakemake executor: rule jobs in, Sparkles tasks out, outputs back.

Per job: upload its inputs and the workflow's sources to the CAS, store a
one-task job whose command is the job's own Snakemake invocation, and wake
the cluster monitor. Per status poll: read every active task in one store
query; fetch the products of those that succeeded, the logs of those that
failed, and report them to Snakemake. A poll that cannot read the store is
tried again at the next (see :mod:`.polling`); products that cannot be
fetched fail their job only. At the end, or on Ctrl-C: kill what is left
and stop every cluster of the run.

The work is done by :class:`~snakemake_executor_plugin_sparkles.run.WorkflowRun`;
this class translates between it and Snakemake's executor API.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.utils import format_cli_arg

from snakemake_executor_plugin_sparkles.polling import StatusPolls
from snakemake_executor_plugin_sparkles.settings import ExecutorSettings
from snakemake_executor_plugin_sparkles.sources import check_snakefile

if TYPE_CHECKING:
    from snakemake_executor_plugin_sparkles.run import WorkflowRun
    from sparkles_core.models import Task

__all__ = ["Executor"]

# Polling the embedded store costs one SQLite read, so local runs can notice
# finished jobs almost at once; Snakemake's 10 s default suits cloud queues.
_LOCAL_STATUS_INTERVAL_S = 0.2
# How soon a poller between checks notices the run is shutting down.
_SHUTDOWN_NOTICE_S = 0.2


class Executor(RemoteExecutor):
    """Run each Snakemake job as a Sparkles task."""

    def __post_init__(self) -> None:
        # Every snakemake process imports every executor plugin, each job's
        # included; the engine (pydantic models, storage) loads only here.
        from snakemake_executor_plugin_sparkles.run import WorkflowRun

        settings = self.workflow.executor_settings
        if not isinstance(settings, ExecutorSettings):
            settings = ExecutorSettings()
        check_snakefile(self.snakefile, Path.cwd())
        self._run: WorkflowRun = WorkflowRun(settings, self.workflow, Path.cwd())
        self._status_interval_s = self._status_interval(settings)
        self._polls = StatusPolls()
        # Reentrant: the poller may itself be the thread that shuts down.
        self._checking = threading.RLock()
        self._polling_ended = False
        config = self._run.client.config
        self.logger.info(
            f"Sparkles: run {self._run.run_id}, store {config.store_url}, "
            f"cluster {config.cluster_url}"
        )

    def _status_interval(self, settings: ExecutorSettings) -> float:
        if settings.status_interval is not None:
            return settings.status_interval
        if self._run.is_local:
            return _LOCAL_STATUS_INTERVAL_S
        remote = self.workflow.remote_execution_settings
        return float(remote.seconds_between_status_checks)

    async def sleep(self) -> None:
        """Wait until the next status check, or until polling stops."""
        # Snakemake starts polling before __post_init__ has run; until then,
        # nap briefly rather than for Snakemake's default of 10 s.
        interval = getattr(self, "_status_interval_s", _LOCAL_STATUS_INTERVAL_S)
        # Waking now and then lets shutdown join the poller in a moment, not
        # after a whole cloud interval with Ctrl-C ignored.
        deadline = time.monotonic() + interval
        while self.wait and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _SHUTDOWN_NOTICE_S))

    def get_python_executable(self) -> str:
        """Return this Python for local nodes, the image's ``python`` otherwise."""
        if self._run.is_local and self._run.context.image is None:
            return sys.executable
        return "python"

    def format_job_exec(self, job: JobExecutorInterface) -> str:
        """Return the job's Snakemake command, run from the task's folder."""
        command: str = super().format_job_exec(job)
        # The task folder is the working folder on the node; a local
        # --directory path would point the job outside it.
        workdir = getattr(self.workflow, "overwrite_workdir", None)
        if workdir is not None:
            command = command.replace(format_cli_arg("--directory", workdir), "")
        return command

    def run_job(self, job: JobExecutorInterface) -> None:
        """Upload the job's files and submit it as a one-task Sparkles job."""
        submitted = self._run.submit(job, self.format_job_exec(job), self.envvars())
        report = submitted.report
        self.logger.info(
            f"Sparkles: job {job.jobid} submitted as task {submitted.task_id} "
            f"on cluster {submitted.cluster} (uploaded {report.uploaded_files} "
            f"of {report.files} files, {report.uploaded_bytes} bytes)"
        )
        info = SubmittedJobInfo(job, external_jobid=submitted.task_id)
        self.report_job_submission(info)

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        """Report the jobs whose task has finished; yield the others."""
        if not active_jobs:
            return
        # Held while the check uses the client, so shutdown can wait for it.
        with self._checking:
            if self._polling_ended:
                still_active = active_jobs  # the client is closing or closed
            else:
                still_active = await self._check(active_jobs)
        for info in still_active:
            yield info

    async def _check(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> list[SubmittedJobInfo]:
        """Read the tasks of the jobs in one query; return the unfinished ones."""
        ids = [info.external_jobid for info in active_jobs]
        try:
            async with self.status_rate_limiter:
                tasks = self._run.tasks(ids)
        except WorkflowError as exc:
            return self._status_unread(active_jobs, exc)
        self._polls.succeeded()
        return [
            info
            for info in active_jobs
            if self._still_active(info, tasks.get(info.external_jobid))
        ]

    def _still_active(self, info: SubmittedJobInfo, task: Task | None) -> bool:
        """Report the job if its task has finished; return True if it has not."""
        if task is None:
            self._report_missing(info)
        elif not task.status.finished:
            # Pending again after a preemption is still running, as far as
            # Snakemake is concerned: Sparkles retries it.
            return True
        elif task.succeeded:
            self._report_success(info, task)
        else:
            self._report_failure(info, task)
        return False

    def _status_unread(
        self, active_jobs: list[SubmittedJobInfo], error: WorkflowError
    ) -> list[SubmittedJobInfo]:
        """Return the jobs to poll again, or fail them all if the outage lasts."""
        if not self._polls.failed(error):
            return active_jobs
        for info in active_jobs:
            self._run.abandon(info.external_jobid)
            self.report_job_error(
                info,
                msg=f"Sparkles could not read the status of task "
                f"{info.external_jobid} for {self._polls.limit_min:g} min: {error} ",
            )
        return []

    def _report_success(self, info: SubmittedJobInfo, task: Task) -> None:
        try:
            count = self._run.collect_success(task)
        except WorkflowError as exc:
            # One job's outputs that cannot come home fail that job only.
            self.report_job_error(info, msg=f"{exc} ")
            return
        self.logger.debug(f"Sparkles: task {task.id}: {count} files fetched")
        self.report_job_success(info)

    def _report_failure(self, info: SubmittedJobInfo, task: Task) -> None:
        message, log = self._run.collect_failure(task)
        # Snakemake appends its own advice to the message, hence the space.
        aux_logs = [] if log is None else [str(log)]
        self.report_job_error(info, msg=f"{message} ", aux_logs=aux_logs)

    def _report_missing(self, info: SubmittedJobInfo) -> None:
        self._run.forget(info.external_jobid)
        self.report_job_error(
            info,
            msg=f"Sparkles task {info.external_jobid} is no longer in the store; "
            "was it deleted while the workflow ran? ",
        )

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Kill the tasks of the given jobs; their nodes stop at shutdown."""
        self._run.cancel([info.external_jobid for info in active_jobs])

    def cancel(self) -> None:
        """Kill the active jobs, then shut down, even if Ctrl-C comes again."""
        try:
            super().cancel()
        finally:
            self._run.close(self._end_polling)

    def shutdown(self) -> None:
        """Stop polling, kill what is left and stop every cluster of the run."""
        # A second Ctrl-C while Snakemake's poller is joined lands here;
        # the run must still be closed, or its nodes keep running.
        try:
            super().shutdown()
        finally:
            self._run.close(self._end_polling)

    def _end_polling(self) -> None:
        """Stop Snakemake's status poller and wait for a check in progress."""
        # The base class's join may have been cut short by Ctrl-C, leaving
        # the poller inside check_active_jobs; and joining again cannot be
        # trusted then (Python 3.11 marks the thread stopped once its join is
        # interrupted), so the check itself is waited for.
        with self.lock:
            self.wait = False
        with self._checking:
            self._polling_ended = True
