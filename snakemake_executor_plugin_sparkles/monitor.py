"""One background monitor for every cluster a workflow run uses.

Each cluster gets the engine's :class:`~sparkles_core.monitor.checks.ResizeCluster`
and :class:`~sparkles_core.monitor.checks.ResetOrphans` checks, polled from one
thread. A new job wakes the thread so its cluster grows at once rather than
at the next round. Keeping this out of Snakemake's status polls means a slow
node start never delays the news that a job has finished, and a poll never
pays for cloud API calls.

The rejected alternative, growing clusters from ``check_active_jobs``, would
tie node starts to ``--seconds-between-status-checks``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sparkles_cas.errors import StorageError
from sparkles_core.client import Client
from sparkles_core.errors import SparklesError
from sparkles_core.models import Job
from sparkles_core.monitor.checks import ResetOrphans, ResizeCluster
from sparkles_core.monitor.runner import Check

__all__ = ["ClusterMonitor"]

logger = logging.getLogger(__name__)

# A check that raised is tried again after this long, not in a tight loop.
_RETRY_S = 5.0


@dataclass
class _Scheduled:
    """A check, when it is next due (monotonic seconds), and if it is urgent."""

    check: Check
    due: float = 0.0
    # Set by a new job; cleared before the poll it causes, so a job that
    # arrives during that poll is not missed.
    urgent: bool = False


@dataclass
class _ClusterChecks:
    """The checks that keep one cluster sized and its orphans handed back."""

    resize: _Scheduled
    orphans: _Scheduled


class ClusterMonitor:
    """Keep each cluster of a run as big as its unfinished jobs need."""

    def __init__(self, client: Client, max_nodes: int) -> None:
        self._client = client
        self._max_nodes = max_nodes
        self._clusters: dict[str, _ClusterChecks] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def clusters(self) -> list[str]:
        """Return the ids of every cluster a job was submitted to."""
        with self._lock:
            return list(self._clusters)

    def watch(self, job: Job) -> None:
        """Look after the job's cluster and grow it now."""
        with self._lock:
            checks = self._clusters.get(job.cluster)
            if checks is None:
                checks = self._new_checks(job)
                self._clusters[job.cluster] = checks
            checks.resize.urgent = True
        self._ensure_thread()
        self._wake.set()

    def _new_checks(self, job: Job) -> _ClusterChecks:
        client, timing = self._client, self._client.timing
        launch = client.launch_for(job)
        resize = ResizeCluster(
            client.store,
            client.provisioner,
            launch,
            self._max_nodes,
            client.config.max_preemptable_attempts_scale,
            timing.resize,
        )
        orphans = ResetOrphans(client.store, job.cluster, timing.orphans)
        return _ClusterChecks(_Scheduled(resize), _Scheduled(orphans))

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(
                target=self._run, name="sparkles-monitor", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()
            next_due = self._poll_due(time.monotonic())
            self._wake.wait(max(0.0, next_due - time.monotonic()))

    def _poll_due(self, now: float) -> float:
        """Poll every check that is due; return when the next one is."""
        with self._lock:
            scheduled = [
                item
                for checks in self._clusters.values()
                for item in (checks.resize, checks.orphans)
            ]
        for item in scheduled:
            if (item.urgent or item.due <= now) and not self._stopped:
                item.urgent = False
                item.due = now + self._poll(item.check)
        dues = [now if item.urgent else item.due for item in scheduled]
        return min(dues, default=now + 60.0)

    def _poll(self, check: Check) -> float:
        """Run one round of a check; return seconds until the next."""
        try:
            return check.poll(time.time())
        except (SparklesError, StorageError) as exc:
            logger.warning(
                "Monitor: %s check failed, retrying in %g s: %s",
                check.name,
                _RETRY_S,
                exc,
            )
            return _RETRY_S

    def stop(self) -> None:
        """Stop the monitor thread; nodes keep running."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def stop_clusters(self) -> None:
        """Stop every node of every cluster this run used."""
        for cluster in self.clusters:
            try:
                self._client.provisioner.stop_cluster(cluster)
            except SparklesError as exc:
                logger.error("Cluster %s: could not stop it: %s", cluster, exc)
            else:
                logger.info("Cluster %s: stopped", cluster)
