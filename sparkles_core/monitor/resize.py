"""The monitor check that keeps a cluster as big as its unfinished jobs ask.

Several jobs can share a cluster (the same machine, image and version): two
``sparkles-run`` commands started side by side, say. Each job asks for its
``nodes``; the cluster's target is the sum of what its unfinished jobs ask,
never more than its unfinished tasks (an idle node only costs), and never
more than the monitor's ``max_nodes`` when one is given (a workflow engine's
per-cluster limit). A job is unfinished while it is not killed and has a
pending or claimed task, whatever its status says: a job that ended and was
then reset asks for its nodes again.

A round costs one count of the cluster's unfinished tasks; only when fewer
nodes are alive than that does it also ask the store which jobs have work.

Preemptible nodes come first, up to a budget of ``requested * scale`` node
starts per cluster; after that, standard ones. The budget is counted from
the stored node records, so restarting the monitor does not refill it. When
preemptible capacity runs short, standard nodes make up the difference;
when the provisioner can start no more at all, the check asks again one
``interval`` later.

Node records are refreshed more often than the cluster is resized would
need (every :data:`NODE_REFRESH_S` at most), so that what a monitor shows
about its nodes is never far behind.
"""

from __future__ import annotations

import logging

from sparkles_core.cluster.base import Provisioner, WorkerLaunch
from sparkles_core.models import Job, NodeClass, NodeReq
from sparkles_core.store.base import Store

__all__ = ["NODE_REFRESH_S", "ResizeCluster"]

logger = logging.getLogger(__name__)

# Listing a cluster's instances is one cheap call; ten seconds keeps the
# node states a user sees close to the truth without spending API quota.
NODE_REFRESH_S = 10.0


class ResizeCluster:
    """Keep as many nodes alive as the cluster's unfinished jobs ask for."""

    name = "resize"

    def __init__(
        self,
        store: Store,
        provisioner: Provisioner,
        launch: WorkerLaunch,
        max_nodes: int | None,
        preemptible_scale: int,
        interval: float,
        *,
        requested: int | None = None,
    ) -> None:
        """Watch the cluster of ``launch``; see the module docstring.

        ``requested`` replaces the stored ``nodes`` of the launch's own job
        (as ``sparkles watch --nodes`` asks); ``max_nodes`` caps the cluster.
        """
        self._store, self._provisioner, self._launch = store, provisioner, launch
        self._max_nodes, self._scale = max_nodes, preemptible_scale
        self._requested = requested
        self._interval = interval
        self._grow_after = 0.0

    @property
    def cluster(self) -> str:
        """Return the id of the cluster this check sizes."""
        return self._launch.cluster_id

    def poll(self, now: float) -> float:
        """Refresh the nodes; start more if fewer are alive than the target."""
        nodes = self._provisioner.refresh(self.cluster)
        if now >= self._grow_after:
            self._resize(nodes, now)
        return min(self._interval, NODE_REFRESH_S)

    def _resize(self, nodes: list[NodeReq], now: float) -> None:
        alive = sum(1 for node in nodes if node.status.alive)
        unfinished = self._store.unfinished_count(self.cluster)
        if unfinished <= alive:
            return
        requested = self._requested_nodes()
        missing = min(requested, unfinished) - alive
        if missing <= 0:
            return
        started = self._grow(missing, nodes, requested)
        if started < missing:
            self._grow_after = now + self._interval
            logger.warning(
                "Cluster %s: %d of %d nodes could not start; asking again in %g s",
                self.cluster,
                missing - started,
                missing,
                self._interval,
            )

    def _requested_nodes(self) -> int:
        """Return how many nodes the cluster's unfinished jobs ask for, capped."""
        cap = self._max_nodes
        total = 0
        for job in self._candidates():
            if cap is not None and total >= cap:
                break
            request = job.nodes
            if job.id == self._launch.job_id and self._requested is not None:
                request = self._requested
            total += request
        return total if cap is None else min(total, cap)

    def _candidates(self) -> list[Job]:
        """Return the cluster's jobs with work, this check's own job first."""
        jobs = self._store.jobs_with_work(self.cluster)
        return sorted(jobs, key=lambda job: job.id != self._launch.job_id)

    def _grow(self, missing: int, nodes: list[NodeReq], requested: int) -> int:
        """Start ``missing`` nodes, preemptible first; return how many started."""
        budget = 0
        if self._launch.machine.preemptible:
            used = sum(1 for n in nodes if n.node_class is NodeClass.PREEMPTIBLE)
            budget = max(0, requested * self._scale - used)
        spot = min(missing, budget)
        logger.info(
            "Cluster %s: starting %d preemptible and %d standard nodes",
            self.cluster,
            spot,
            missing - spot,
        )
        started = 0
        if spot:
            started = len(self._provisioner.add_nodes(self._launch, spot, _SPOT))
        if started < spot:
            logger.warning(
                "Cluster %s: %d preemptible nodes could not start; asking for "
                "standard ones instead",
                self.cluster,
                spot - started,
            )
        if missing > started:
            standard = missing - started
            started += len(self._provisioner.add_nodes(self._launch, standard, _STD))
        return started

    def finish(self, error: BaseException | None) -> None:
        """Nothing to release: stopping the cluster is the caller's choice."""


_SPOT, _STD = NodeClass.PREEMPTIBLE, NodeClass.STANDARD
