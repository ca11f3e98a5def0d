"""The public Python API: what a front end or another engine calls.

A :class:`Client` opens the configured store, storage and cluster once and
offers the verbs every front end needs: upload inputs, submit a job, wait
for it under a monitor, read its tasks, fetch their outputs, kill it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sparkles_cas.cas import CAS, UploadReport
from sparkles_cas.hashcache import HashCache
from sparkles_core.cluster.base import ClusterContext, Provisioner, WorkerLaunch
from sparkles_core.config import Config, load_config
from sparkles_core.errors import ConfigError, JobFailed, JobNotFound
from sparkles_core.fetch import fetch_task, read_result
from sparkles_core.models import (
    Download,
    Job,
    JobSpec,
    JobStatus,
    Task,
    TaskResult,
    TaskStatus,
)
from sparkles_core.monitor import checks
from sparkles_core.monitor.jobs import wait_for_jobs
from sparkles_core.plugins import open_cluster, open_storage, open_store
from sparkles_core.submit import LocalInput, new_job_id, stage_inputs, store_job

__all__ = ["Client", "MonitorTiming"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorTiming:
    """Seconds between rounds of each monitor check."""

    progress: float
    log: float
    resize: float
    orphans: float

    @classmethod
    def for_cluster(cls, cluster_url: str) -> MonitorTiming:
        """Return quick timings for local workers, gentler ones for the cloud."""
        if cluster_url == "local":
            return cls(progress=0.2, log=0.5, resize=1.0, orphans=2.0)
        # Cloud API calls cost quota; nodes take a minute to boot anyway.
        return cls(progress=2.0, log=2.0, resize=30.0, orphans=30.0)


class Client:
    """Submit, watch, fetch and kill jobs on the configured backends."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or load_config()
        _check_home(self.config.home)
        self.store = open_store(self.config.store_url)
        self.storage = open_storage(self.config.storage_url)
        self._hash_cache = HashCache(self.config.home / "hash-cache.db")
        self.cas = CAS(open_storage(self.config.cas_url), self._hash_cache, prefix="")
        self.timing = MonitorTiming.for_cluster(self.config.cluster_url)

    @functools.cached_property
    def provisioner(self) -> Provisioner:
        """Return the provisioner of the configured cluster."""
        return open_cluster(ClusterContext.from_config(self.config, self.store))

    def upload(
        self, inputs: Sequence[LocalInput]
    ) -> tuple[list[Download], UploadReport]:
        """Upload local files to the CAS; return their downloads and a report."""
        return stage_inputs(self.cas, inputs)

    def check_job(self, spec: JobSpec) -> None:
        """Raise ClusterError if the configured cluster cannot run ``spec``."""
        self.provisioner.check_job(spec)

    def submit(
        self, spec: JobSpec, job_id: str | None = None, cluster_extra: str = ""
    ) -> Job:
        """Store the job; its tasks are claimable when this returns.

        The cluster is asked first whether it can run the job, so a job it
        would refuse is never stored. ``cluster_extra`` keeps apart the
        clusters of, say, different workflow runs with the same needs.
        """
        self.check_job(spec)
        if self.config.cas_url_prefix:
            # Nodes read inputs from one CAS: a node started for another CAS
            # must not claim this job's tasks.
            cluster_extra += f" cas={self.config.cas_url}"
        return store_job(self.store, job_id or new_job_id(), spec, cluster_extra)

    def job(self, job_id: str) -> Job:
        """Return the job, or raise JobNotFound."""
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def launch_for(self, job: Job) -> WorkerLaunch:
        """Return how this job's nodes start their workers."""
        local = self.config.cluster_url == "local"
        return WorkerLaunch(
            cluster_id=job.cluster,
            store_url=self.config.store_url,
            storage_url=self.config.storage_url,
            machine=job.machine,
            image=job.image,
            job_id=job.id,
            linger_s=self.config.worker_linger,
            log_interval_s=1.0 if local else 5.0,
            # Workers find the CAS at its default place by themselves, which
            # also keeps images that predate --cas working.
            cas_url=self.config.cas_url_prefix,
        )

    def wait(
        self,
        job: Job,
        reporter: checks.Reporter,
        follow: str | None = None,
        stream_logs: bool = True,
    ) -> dict[TaskStatus, int]:
        """Monitor the job until no task is pending or claimed; return counts.

        The cluster is sized by what all its unfinished jobs ask for, so jobs
        that share a cluster each get their nodes. Raise JobFailed if the
        failure monitor gives up on the job.
        """
        wait_for_jobs(
            self, [job], reporter, _reraise, stream_logs=stream_logs, follow=follow
        )
        return self.store.count_tasks(job.id)

    def record_outcome(self, job_id: str, succeeded: bool) -> Job | None:
        """Mark a finished job complete or failed, unless it was killed.

        Return the job's record as it was before, or None if it is gone.
        """
        current = self.store.get_job(job_id)
        if current is not None and current.status is JobStatus.SUBMITTED:
            status = JobStatus.COMPLETE if succeeded else JobStatus.FAILED
            self.store.set_job_status(job_id, status)
        return current

    def tasks(
        self, job_id: str, statuses: Sequence[TaskStatus] | None = None
    ) -> list[Task]:
        """Return the job's tasks, optionally only those statuses."""
        return self.store.list_tasks(job_id, statuses)

    def fetch(self, task: Task, dest: Path) -> list[Path]:
        """Download the outputs of the task's counting attempt under ``dest``."""
        return fetch_task(self.storage, self.cas, task, dest)

    def result(self, task: Task) -> TaskResult | None:
        """Return the task's ``result.json``, if it has one."""
        return read_result(self.storage, task)

    def kill(self, job_id: str, keep_cluster: bool = False) -> int:
        """Kill the job's unfinished tasks; stop its cluster if now idle."""
        job = self.job(job_id)
        killed = self.store.kill_job(job.id)
        logger.info("Job %s: killed %d tasks", job.id, killed)
        if not keep_cluster:
            self.stop_cluster_if_idle(job.cluster)
        return killed

    def stop_cluster_if_idle(self, cluster: str) -> bool:
        """Stop the cluster's nodes unless another job still has work there."""
        if self.store.unfinished_count(cluster):
            return False
        self.provisioner.stop_cluster(cluster)
        return True

    def close(self) -> None:
        """Release connections (nodes keep running)."""
        if "provisioner" in self.__dict__:
            self.provisioner.close()
        self._hash_cache.close()
        self.store.close()


def _reraise(exc: JobFailed) -> None:
    """Let a job the failure monitor gave up on end the wait."""
    raise exc


def _check_home(home: Path) -> None:
    """Make sure the state folder exists and is writable, or say how to fix it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the state folder {str(home)!r}: {exc.strerror}; "
            "set SPARKLES_HOME to a folder you can write.",
            key="SPARKLES_HOME",
        ) from exc
    if not os.access(home, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(
            f"The state folder {str(home)!r} is not readable and writable; "
            "fix its permissions or set SPARKLES_HOME to another folder.",
            key="SPARKLES_HOME",
        )
