"""Bring a finished job's files home and say how it ended.

A job that succeeded gets its outputs, logs and benchmark files downloaded
(each checked against its digest) into the local working folder before
Snakemake hears of it, so Snakemake's own checks of missing, incomplete,
``temp()`` and ``directory()`` outputs work as with local execution. A job
that failed gets its rule log files, where the node wrote them, and the
whole output of its Snakemake run, kept under::

    .snakemake/sparkles/logs/<task id>.log

which Snakemake shows with ``--show-failed-logs``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from snakemake_executor_plugin_sparkles.files import JobFiles
from sparkles_cas.errors import ObjectNotFound, StorageError
from sparkles_core import layout
from sparkles_core.client import Client
from sparkles_core.models import Task, TaskResult, TaskStatus
from sparkles_core.paths import safe_join

__all__ = ["LOG_FOLDER", "describe_failure", "fetch_failure_logs", "fetch_products"]

logger = logging.getLogger(__name__)

LOG_FOLDER = Path(".snakemake", "sparkles", "logs")


def fetch_products(client: Client, task: Task, files: JobFiles, workdir: Path) -> int:
    """Download the task's products into ``workdir``; return how many."""
    fetched = client.fetch(task, workdir)
    # The CAS holds files only: a directory() output that the job left
    # empty would otherwise be missing here.
    for folder in files.directories:
        safe_join(workdir, folder).mkdir(parents=True, exist_ok=True)
    return len(fetched)


def fetch_failure_logs(
    client: Client, task: Task, files: JobFiles, workdir: Path
) -> Path:
    """Download the rule logs and the task's output; return the output's path."""
    task_log = _task_log(client, task)
    result = _result(client, task)
    written = set()
    if result is not None:
        written = _download_logs(client, result, files, workdir)
    for log in files.logs:
        if log not in written:
            # The job died before its rule wrote the log; the task's own
            # output is the best account of why.
            _write(safe_join(workdir, log), task_log)
    target = workdir / LOG_FOLDER / f"{task.id}.log"
    _write(target, task_log)
    return target


def describe_failure(task: Task) -> str:
    """Return one line saying how the task ended without success."""
    if task.status is TaskStatus.KILLED:
        return f"Sparkles task {task.id} was killed."
    if task.status is TaskStatus.FAILED:
        reason = task.failure_reason or "no reason recorded"
        return f"Sparkles could not run task {task.id}: {reason}."
    if task.timed_out:
        return f"Sparkles task {task.id} timed out{_after(task.spec.timeout)}."
    if task.signal is not None:
        return f"Sparkles task {task.id} was killed by signal {task.signal}."
    return f"Sparkles task {task.id} exited with status {task.exit_code}."


def _after(timeout: float | None) -> str:
    """Return how long the job was allowed, and which resource said so."""
    if timeout is None:
        return " (resources: runtime)"
    # The runtime resource is in minutes, and so is what the user sees.
    return f" after {timeout / 60:g} min (resources: runtime)"


def _result(client: Client, task: Task) -> TaskResult | None:
    try:
        return client.result(task)
    except (StorageError, ValueError) as exc:
        logger.warning("Task %s: result.json unreadable: %s", task.id, exc)
        return None


def _download_logs(
    client: Client, result: TaskResult, files: JobFiles, workdir: Path
) -> set[str]:
    """Download the outputs that are rule logs; return their paths."""
    wanted = set(files.logs)
    written = set()
    for output in result.outputs:
        if output.path in wanted:
            target = safe_join(workdir, output.path)
            client.cas.download(output.digest, target, output.executable)
            written.add(output.path)
    return written


def _task_log(client: Client, task: Task) -> bytes:
    """Return the merged output of the task's last attempt, and how it ended."""
    ending = f"\n{describe_failure(task)}\n"
    if task.failure_reason and task.status is not TaskStatus.FAILED:
        ending += f"Last reason given: {task.failure_reason}\n"
    if task.attempt == 0:
        return f"The task never started.{ending}".encode()
    key = task.log_key or layout.log_key(task.id, task.attempt)
    try:
        return client.storage.get_bytes(key) + ending.encode()
    except ObjectNotFound:
        return f"The task wrote no output.{ending}".encode()
    except StorageError as exc:
        return f"The task's output could not be read: {exc}{ending}".encode()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
