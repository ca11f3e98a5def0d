"""Monitor one job or many with one runner: what ``watch`` and ``wait`` run.

Progress and the failure rule run over every watched job together, one
count of all their tasks and one node listing per cluster a round; cluster
resizing and the orphan reset run once per cluster (jobs of one cluster
share its nodes); and, when one job is watched, its live log. The log is
not followed for several jobs, since their lines would interleave. The
runner returns once no watched job has an unfinished task. A job the
failure rule gives up on is handed to ``on_failed`` and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sparkles_core.errors import JobFailed
from sparkles_core.models import Job
from sparkles_core.monitor import checks
from sparkles_core.monitor.events import LifecycleEvents
from sparkles_core.monitor.resize import ResizeCluster
from sparkles_core.monitor.runner import Check, Runner

if TYPE_CHECKING:
    from sparkles_core.client import Client

__all__ = ["wait_for_jobs"]

logger = logging.getLogger(__name__)

OnFailed = Callable[[JobFailed], None]

# Finding newly finished tasks reads the tasks that finished since the last
# look; every two seconds is prompt enough for an observer.
EVENTS_INTERVAL_S = 2.0


def wait_for_jobs(
    client: Client,
    jobs: Sequence[Job],
    reporter: checks.Reporter,
    on_failed: OnFailed,
    nodes: int | None = None,
    stream_logs: bool = True,
    follow: str | None = None,
) -> None:
    """Monitor ``jobs`` until none has a pending or claimed task.

    Each cluster is sized by what its unfinished jobs ask for, or kept at
    ``nodes`` when that is given. With one job, its live log follows the
    task ``follow`` (by default, whichever task is running).
    """
    store, timing = client.store, client.timing
    monitors: list[Check] = [
        checks.JobsProgress(store, jobs, reporter, timing.progress, on_failed),
        LifecycleEvents(store, jobs, max(timing.progress, EVENTS_INTERVAL_S)),
    ]
    clusters = _by_cluster(jobs)
    for members in clusters.values():
        monitors.extend(_cluster_checks(client, members, nodes))
    if stream_logs and len(jobs) == 1:
        monitors.append(
            checks.LogStream(
                store, client.storage, jobs[0], reporter, timing.log, follow
            )
        )
    logger.info("Watching %d jobs on %d clusters", len(jobs), len(clusters))
    Runner(monitors).run()


def _by_cluster(jobs: Sequence[Job]) -> dict[str, list[Job]]:
    """Return the jobs grouped by the cluster they run on."""
    clusters: dict[str, list[Job]] = {}
    for job in jobs:
        clusters.setdefault(job.cluster, []).append(job)
    return clusters


def _cluster_checks(
    client: Client, members: Sequence[Job], nodes: int | None
) -> list[Check]:
    """Return the resize and orphan checks of the cluster ``members`` share."""
    first, timing = members[0], client.timing
    # With --nodes, the first job asks for that many and the cluster is
    # capped there; without, the check adds up what the cluster's jobs ask.
    resize = ResizeCluster(
        client.store,
        client.provisioner,
        client.launch_for(first),
        nodes,
        client.config.max_preemptable_attempts_scale,
        timing.resize,
        requested=nodes,
    )
    orphans = checks.ResetOrphans(client.store, first.cluster, timing.orphans)
    return [resize, orphans]
