"""Turn local files and commands into a stored job, all or nothing.

Inputs are uploaded to the CAS first (only the digests storage lacks), then
the job and its tasks are written in one store transaction. A failure or a
Ctrl-C before that transaction leaves no task behind; at worst some CAS
objects that a later submission will reuse.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sparkles_cas.cas import CAS, UploadReport
from sparkles_core import __version__
from sparkles_core.errors import InputError
from sparkles_core.models import (
    Download,
    Job,
    JobSpec,
    MachineSpec,
    TaskSpec,
    canonical_hash,
)
from sparkles_core.monitor.events import notify
from sparkles_core.paths import check_relative_path
from sparkles_core.plugins import plugin_manager
from sparkles_core.store.base import Store

__all__ = [
    "LocalInput",
    "cluster_id_for",
    "new_job_id",
    "parse_push",
    "stage_inputs",
    "store_job",
    "validate_job_name",
]

logger = logging.getLogger(__name__)

_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class LocalInput:
    """A local file and where it goes in the task's folder."""

    path: Path
    dst: str


def validate_job_name(name: str) -> str:
    """Return ``name`` if it is a valid job name, else raise InputError."""
    if not _LABEL.match(name):
        raise InputError(
            f"Job name {name!r} is not valid: use 1 to 63 characters of "
            "lowercase letters, digits and '-', starting with a letter."
        )
    return name


def new_job_id(prefix: str = "run") -> str:
    """Return a fresh job id such as ``run-20260101-120000-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def cluster_id_for(machine: MachineSpec, image: str | None, extra: str = "") -> str:
    """Return the id of the cluster whose nodes fit ``machine`` and ``image``.

    Jobs with the same needs share a cluster, so lingering nodes are reused.
    """
    digest = canonical_hash(
        [machine.model_dump(mode="json"), image, __version__, extra]
    )
    return f"c-{digest[:16]}"


def parse_push(text: str) -> LocalInput:
    """Parse ``SRC`` or ``SRC:DST`` as given to ``-u``."""
    src, sep, dst = text.partition(":")
    if not sep:
        dst = Path(src).name
    if not src:
        raise InputError(f"Upload {text!r} has no source; use SRC or SRC:DST.")
    return LocalInput(Path(src), check_relative_path(dst, "upload destination"))


def _expand(inputs: Iterable[LocalInput]) -> list[LocalInput]:
    """Return the inputs with folders replaced by the files under them."""
    files: list[LocalInput] = []
    for item in inputs:
        if item.path.is_dir():
            for path in sorted(p for p in item.path.rglob("*") if p.is_file()):
                rel = path.relative_to(item.path).as_posix()
                files.append(LocalInput(path, f"{item.dst}/{rel}"))
        elif item.path.is_file():
            files.append(item)
        else:
            raise InputError(
                f"Cannot upload {str(item.path)!r}: no such file or folder; "
                "check the path."
            )
    return files


def stage_inputs(
    cas: CAS, inputs: Sequence[LocalInput]
) -> tuple[list[Download], UploadReport]:
    """Upload the inputs to the CAS; return their downloads and the report."""
    files = _expand(inputs)
    report = cas.upload([item.path for item in files])
    downloads = []
    for item in files:
        digest = report.digests[item.path]
        downloads.append(
            Download(
                dst=item.dst,
                digest=digest.digest,
                size=digest.size,
                executable=digest.executable,
            )
        )
    return downloads, report


def _prepare(spec: JobSpec) -> list[TaskSpec]:
    """Return the tasks as rewritten by the ``sparkles_prepare_task`` hooks."""
    impls = plugin_manager().hook.sparkles_prepare_task.get_hookimpls()
    if not impls:
        return list(spec.tasks)
    tasks = []
    for task in spec.tasks:
        for impl in impls:
            rewritten = impl.function(job=spec, task=task)
            if isinstance(rewritten, TaskSpec):
                task = rewritten
        tasks.append(task)
    return tasks


def store_job(store: Store, job_id: str, spec: JobSpec, cluster_extra: str = "") -> Job:
    """Write the job and its tasks to the store in one transaction."""
    if not spec.tasks:
        raise InputError(f"Job {job_id!r} has no tasks; give at least one command.")
    tasks = _prepare(spec)
    job = Job(
        id=job_id,
        cluster=cluster_id_for(spec.machine, spec.image, cluster_extra),
        spec_hash=spec.spec_hash(),
        submit_time=time.time(),
        task_count=len(tasks),
        nodes=spec.nodes,
        machine=spec.machine,
        image=spec.image,
        labels=spec.labels,
        max_attempts=spec.max_attempts,
    )
    store.create_job(job, tasks)
    logger.info(
        "Job %s: submitted %d tasks to cluster %s", job.id, len(tasks), job.cluster
    )
    # The job is claimable now: a plugin that raises must not make the
    # submission look failed, or the caller would leave it behind.
    notify(plugin_manager().hook.sparkles_job_submitted, job=job)
    return job
