"""Records and specs that cross a boundary: stored, sent to workers, configured.

Vocabulary: a *job* is a named set of *tasks*; each task is one command with
the files it downloads (*inputs*, by *digest* from the CAS) and the files it
leaves (*outputs*). A *worker* on a *node* claims a task, holding a *lease*
that it renews while it works; each claim is one *attempt*. Nodes that share
a :class:`MachineSpec` and image form a *cluster*.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sparkles_core.paths import check_relative_path

__all__ = [
    "GPU",
    "SNAKEMAKE_RUN_LABEL",
    "DataDisk",
    "Download",
    "HistoryEntry",
    "Job",
    "JobSpec",
    "JobStatus",
    "MachineSpec",
    "NodeClass",
    "NodeReq",
    "NodeStatus",
    "OutputFile",
    "ResourceUsage",
    "Task",
    "TaskResult",
    "TaskSpec",
    "TaskStatus",
    "UploadRules",
    "canonical_hash",
]


# The label the Snakemake executor puts on every job of a workflow run; its
# value is the run id. The run starts and stops those jobs' clusters itself.
SNAKEMAKE_RUN_LABEL = "snakemake-run"


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETE = "complete"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def finished(self) -> bool:
        """Return True for the statuses a task does not leave by itself."""
        return self in (TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.KILLED)


class JobStatus(StrEnum):
    """Where a job is in its life."""

    SUBMITTED = "submitted"
    KILLED = "killed"
    COMPLETE = "complete"
    FAILED = "failed"


class NodeClass(StrEnum):
    """How a node is billed: spot capacity first, standard when that runs out."""

    PREEMPTIBLE = "preemptible"
    STANDARD = "standard"


class NodeStatus(StrEnum):
    """Where a requested node is in its life."""

    SUBMITTED = "submitted"
    STAGING = "staging"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def alive(self) -> bool:
        """Return True while the node may still claim or run tasks."""
        return self in (NodeStatus.SUBMITTED, NodeStatus.STAGING, NodeStatus.RUNNING)


def canonical_hash(value: Any) -> str:
    """Return the sha256 of ``value`` as canonical (sorted, compact) JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GPU(_Model):
    """Accelerators attached to each node."""

    type: str
    count: int = Field(default=1, ge=1)


class DataDisk(_Model):
    """An extra disk mounted on each node."""

    size_gb: int = Field(ge=1)
    mount_path: str
    type: str | None = None


class MachineSpec(_Model):
    """What each node of a cluster looks like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine_type: str = "local"
    cpus: float | None = None
    memory_mb: int | None = None
    boot_disk_gb: int = 40
    boot_disk_type: str | None = None
    data_disks: tuple[DataDisk, ...] = ()
    gpus: tuple[GPU, ...] = ()
    preemptible: bool = True
    service_account: str | None = None
    work_folder: str | None = None


class Download(_Model):
    """One input file placed in the task's folder before the command runs.

    ``digest`` names a CAS object and is verified on download; ``src`` is a
    plain storage URL for the rare input that is not in the CAS.
    """

    dst: str
    digest: str | None = None
    src: str | None = None
    size: int | None = None
    executable: bool = False

    @field_validator("dst")
    @classmethod
    def _dst_is_inside(cls, value: str) -> str:
        return check_relative_path(value, what="download destination")


class UploadRules(_Model):
    """Which files of the task's folder go back to storage after the command."""

    include: list[str] = Field(default_factory=lambda: ["**"])
    exclude: list[str] = Field(default_factory=list)


class TaskSpec(_Model):
    """Everything a worker needs to run one task."""

    command: str | list[str]
    parameters: dict[str, str] = Field(default_factory=dict)
    working_dir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    # The storage key of a JSON object of further variables (credentials)
    # kept out of this record; the worker adds them to ``env`` at staging.
    secret_env_key: str | None = None
    downloads: list[Download] = Field(default_factory=list)
    uploads: UploadRules = Field(default_factory=UploadRules)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("working_dir")
    @classmethod
    def _working_dir_is_inside(cls, value: str) -> str:
        return check_relative_path(value, what="working folder")

    @property
    def shell_command(self) -> str:
        """Return the command as one line for ``/bin/sh -c``."""
        if isinstance(self.command, str):
            return self.command
        return shlex.join(self.command)


class JobSpec(_Model):
    """A job as submitted: its tasks and where they should run."""

    name: str
    tasks: list[TaskSpec]
    machine: MachineSpec = Field(default_factory=MachineSpec)
    image: str | None = None
    nodes: int = Field(default=1, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(default=3, ge=1)

    def spec_hash(self) -> str:
        """Return the hash that identifies "the same job" across submissions.

        The node count is left out: asking for more workers does not make
        it a different job.
        """
        return canonical_hash(self.model_dump(mode="json", exclude={"nodes"}))


class HistoryEntry(_Model):
    """One change of a task's status, with who made it and why."""

    time: float
    status: TaskStatus
    owner: str | None = None
    reason: str | None = None


class ResourceUsage(_Model):
    """What the command used.

    The CPU times are the kernel's, for the command and every descendant it
    waited for. ``max_rss_bytes`` is the peak resident memory the worker saw
    the command's processes use, sampled while they ran (see
    :mod:`sparkles_worker.memory` for how and at what resolution).
    """

    user_cpu_s: float = 0.0
    system_cpu_s: float = 0.0
    max_rss_bytes: int = 0


class Job(_Model):
    """The stored record of a job."""

    id: str
    status: JobStatus = JobStatus.SUBMITTED
    cluster: str
    spec_hash: str
    submit_time: float
    task_count: int
    nodes: int = 1
    machine: MachineSpec = Field(default_factory=MachineSpec)
    image: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = 3


class Task(_Model):
    """The stored record of a task: its spec and its current attempt."""

    id: str
    job_id: str
    index: int
    cluster: str
    spec: TaskSpec
    status: TaskStatus = TaskStatus.PENDING
    owner: str | None = None
    lease_expires: float | None = None
    attempt: int = 0
    max_attempts: int = 3
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    failure_reason: str | None = None
    log_key: str | None = None
    result_key: str | None = None
    started: float | None = None
    finished: float | None = None
    usage: ResourceUsage | None = None
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Return True when the command ran and exited 0."""
        return self.status is TaskStatus.COMPLETE and self.exit_code == 0


class NodeReq(_Model):
    """One node requested for a cluster."""

    id: str
    cluster: str
    node_class: NodeClass
    status: NodeStatus = NodeStatus.SUBMITTED
    instance_name: str | None = None
    job_id: str | None = None
    created: float
    updated: float
    detail: dict[str, str] = Field(default_factory=dict)


class OutputFile(_Model):
    """A file the task left behind, stored in the CAS under its digest."""

    path: str
    digest: str
    size: int
    executable: bool = False

    @field_validator("path")
    @classmethod
    def _path_is_inside(cls, value: str) -> str:
        return check_relative_path(value, what="output path")


class TaskResult(_Model):
    """What ``result.json`` holds for one attempt of a task."""

    task_id: str
    attempt: int
    command: str
    parameters: dict[str, str] = Field(default_factory=dict)
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    started: float
    finished: float
    usage: ResourceUsage = Field(default_factory=ResourceUsage)
    outputs: list[OutputFile] = Field(default_factory=list)
