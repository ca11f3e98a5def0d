"""The Datastore store's read-only queries over many records at once.

Monitors ask these every few seconds, so each one reads as little as the
indexes of ``index.yaml`` allow: counts are aggregations (no entity is
read), the jobs with work come from a projection of one index entry per
job, and newly finished tasks from a range of the ``(job_id, ended)``
index. Datastore has no grouped count and no ``IN`` beside an inequality
in every service and emulator, so a question about many jobs is one query
per job; the counts are sent several at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from sparkles_core.models import Job, Task, TaskStatus
from sparkles_core.store import transitions
from sparkles_core.store.datastore_claim import in_cluster
from sparkles_core.store.datastore_client import Datastore, Filter
from sparkles_core.store.datastore_records import (
    JOB,
    TASK,
    is_live,
    load_job,
    load_task,
)

__all__ = ["count_by_job", "count_tasks", "finished_since", "jobs_with_work"]

_UNFINISHED = (TaskStatus.PENDING, TaskStatus.CLAIMED)

# Counts in flight at once: each is a small request, so a few at a time
# hide most of the round trips without crowding the client's connections.
_PARALLEL_COUNTS = 8


def count_tasks(db: Datastore, job_id: str) -> dict[TaskStatus, int]:
    """Return how many of the job's tasks are in each status, zeros included."""
    return {
        status: db.count(TASK, [("job_id", "=", job_id), ("status", "=", str(status))])
        for status in TaskStatus
    }


def count_by_job(
    db: Datastore, job_ids: Iterable[str]
) -> dict[str, dict[TaskStatus, int]]:
    """Return :func:`count_tasks` for each of ``job_ids``."""
    wanted = list(dict.fromkeys(job_ids))
    if len(wanted) < 2:
        return {job_id: count_tasks(db, job_id) for job_id in wanted}
    with ThreadPoolExecutor(min(len(wanted), _PARALLEL_COUNTS)) as pool:
        counts = pool.map(lambda job_id: count_tasks(db, job_id), wanted)
        return dict(zip(wanted, counts, strict=True))


def finished_since(db: Datastore, job_ids: Iterable[str], since: float) -> list[Task]:
    """Return the tasks of these jobs that finished at ``since`` or later."""
    found: list[Task] = []
    for job_id in dict.fromkeys(job_ids):
        filters: list[Filter] = [("job_id", "=", job_id), ("ended", ">=", since)]
        tasks = [load_task(e) for e in db.query(TASK, filters, ["ended"])]
        # A task is finished by its status, whatever an ``ended`` left on
        # the entity says. The query cannot ask for that too (no ``IN``
        # beside the inequality), and one query per status would cost
        # three round trips for what the records read anyway tell.
        found += [task for task in tasks if task.status.finished]
    return sorted(found, key=lambda task: (transitions.ended_at(task) or 0.0, task.id))


def jobs_with_work(db: Datastore, cluster: str) -> list[Job]:
    """Return the cluster's live jobs with a pending or claimed task, oldest first."""
    job_ids = {
        str(job_id)
        for status in _UNFINISHED
        for job_id in db.distinct(TASK, in_cluster(cluster, status), "job_id")
    }
    entities = db.get_multi([db.key(JOB, job_id) for job_id in sorted(job_ids)])
    jobs = [load_job(entity) for entity in entities if is_live(entity)]
    return sorted(jobs, key=lambda job: (job.submit_time, job.id))
