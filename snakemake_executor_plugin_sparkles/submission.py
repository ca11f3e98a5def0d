"""Describe one Snakemake job as a one-task Sparkles job.

The task's command is the job's own Snakemake invocation, run in a task
folder laid out like the local working folder: the job's inputs and the
workflow's sources are downloaded at their relative paths, and the job's
products are uploaded when the command ends. Names follow the pattern::

    sm-<run id>-<n>-<rule>      job id: n counts this run's submissions
    c-<hash>                    cluster: the machine, image and run id
                                (no run id with --sparkles-keep-cluster, so
                                the next run finds the nodes left running)
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snakemake_executor_plugin_sparkles.files import JobFiles, upload_rules
from snakemake_executor_plugin_sparkles.machines import PreemptionPolicy, place_job
from sparkles_core.models import (
    SNAKEMAKE_RUN_LABEL,
    Download,
    JobSpec,
    MachineSpec,
    TaskSpec,
)

__all__ = ["RunContext", "build_job_spec", "job_id_for", "new_run_id"]

_NOT_IN_NAME = re.compile(r"[^a-z0-9]+")
# Job ids are at most 63 characters (they double as cloud labels).
_MAX_ID = 63


def new_run_id() -> str:
    """Return an id for one workflow run, such as ``20260101-120000-ab12``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def job_id_for(run_id: str, count: int, name: str) -> str:
    """Return the Sparkles job id of this run's ``count``-th submission."""
    rule = _NOT_IN_NAME.sub("-", name.lower()).strip("-") or "job"
    return f"sm-{run_id}-{count}-{rule}"[:_MAX_ID].rstrip("-")


@dataclass(frozen=True)
class RunContext:
    """What every job of one workflow run shares."""

    run_id: str
    base_machine: MachineSpec
    image: str | None
    nodes: int
    policy: PreemptionPolicy


def build_job_spec(
    job: Any,
    job_id: str,
    command: str,
    secret_env_key: str | None,
    downloads: Sequence[Download],
    files: JobFiles,
    context: RunContext,
) -> JobSpec:
    """Return the spec of the one-task job that runs ``job``.

    The job's ``--envvars`` travel apart, in the storage object named by
    ``secret_env_key`` (see :mod:`.envvars`), never in the record.
    """
    placement = place_job(
        job.resources, job.threads, job.rules, context.base_machine, context.policy
    )
    task = TaskSpec(
        command=command,
        secret_env_key=secret_env_key,
        downloads=list(downloads),
        uploads=upload_rules(files.products),
        timeout=placement.timeout,
    )
    labels = {
        SNAKEMAKE_RUN_LABEL: context.run_id,
        "snakemake-jobid": str(job.jobid),
        "snakemake-rule": _NOT_IN_NAME.sub("-", job.name.lower()).strip("-"),
        "snakemake-attempt": str(job.attempt),
    }
    return JobSpec(
        name=job_id,
        tasks=[task],
        machine=placement.machine,
        image=context.image,
        nodes=context.nodes,
        labels=labels,
        max_attempts=placement.max_attempts,
    )
