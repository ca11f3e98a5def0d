"""Where a job's files live in storage.

Under the storage root (a ``file://`` folder or a ``gs://`` prefix)::

    cas/<sha256>                                 every input and output, once
    jobs/<job>/<index>/<attempt>/log.txt         merged stdout and stderr
    jobs/<job>/<index>/<attempt>/result.json     exit code, usage, outputs
    jobs/<job>/env.json                          a Snakemake job's --envvars

The CAS may live elsewhere (``cas_url_prefix``); then ``cas/`` is not here.

Each attempt has its own prefix, so a retried task never mixes its files
with those of an earlier attempt; the task record names the attempt that
counts.
"""

from __future__ import annotations

__all__ = ["attempt_prefix", "job_prefix", "log_key", "result_key", "split_task_id"]


def split_task_id(task_id: str) -> tuple[str, int]:
    """Return the job id and index of ``"{job}.{index}"``."""
    job_id, _, index = task_id.rpartition(".")
    return job_id, int(index)


def job_prefix(job_id: str) -> str:
    """Return the storage prefix of everything a job wrote."""
    return f"jobs/{job_id}/"


def attempt_prefix(task_id: str, attempt: int) -> str:
    """Return the storage prefix of one attempt of a task."""
    job_id, index = split_task_id(task_id)
    return f"jobs/{job_id}/{index}/{attempt}/"


def log_key(task_id: str, attempt: int) -> str:
    """Return the key of an attempt's log."""
    return attempt_prefix(task_id, attempt) + "log.txt"


def result_key(task_id: str, attempt: int) -> str:
    """Return the key of an attempt's ``result.json``."""
    return attempt_prefix(task_id, attempt) + "result.json"
