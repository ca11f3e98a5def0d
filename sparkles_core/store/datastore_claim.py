"""Claim a task in Datastore without every worker fighting for the same one.

A claim reads a small batch of the cluster's pending tasks (lowest index
first) outside any transaction, keeps those whose job is live (submitted in
full and not killed), and tries them in random order, one transaction each:
read the task, check it is still free, start an attempt, write it back. The
transaction is what makes the claim exclusive; the random order is what keeps
workers that start together from all reading, and so locking, the same task.

A transaction that loses a race (``Contended``) sends the worker back to a
fresh batch after a short random pause, so it never works through a stale
one. Failing pending tasks, a claim takes a claimed task whose lease expired,
failing on the way those that are out of attempts.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

from sparkles_core.models import Task, TaskStatus
from sparkles_core.store import transitions
from sparkles_core.store.datastore_client import Contended, Datastore, Filter
from sparkles_core.store.datastore_records import (
    JOB,
    TASK,
    is_live,
    load_task,
    task_entity,
)

if TYPE_CHECKING:
    from google.cloud.datastore import Transaction

__all__ = ["CANDIDATES", "claim_task", "in_cluster"]

logger = logging.getLogger(__name__)

# Pending tasks read per batch (keys only). Two workers that pick the same
# task both wait on its lock, so the batch must be wide: with four workers
# draining one job on the emulator, 20 candidates lost about four times as
# many races as 50, which still costs one small query.
CANDIDATES = 50

# Batches read before a claim gives up on finding a task of a live job: the
# pending tasks of a job being submitted or killed are skipped, and the
# worker polls again soon.
_PAGES = 5

# Lost races per claim before it returns None (the worker asks again later),
# and the base of the pause after each: 20 ms, 40 ms, ... with jitter.
_LOSSES = 10
_PAUSE_S = 0.02

# Fresh batches per claim when other workers took every candidate first:
# each such batch means others made progress, so this is only a backstop.
_BATCHES = 100


def claim_task(
    db: Datastore, cluster: str, owner: str, now: float, lease_expires: float
) -> Task | None:
    """Claim one task of ``cluster`` for ``owner``, or return None."""
    losses = 0
    for _ in range(_BATCHES):
        candidates = _candidates(db, cluster, now)
        if not candidates:
            return None
        random.shuffle(candidates)
        try:
            task = _take_first(db, candidates, owner, now, lease_expires)
        except Contended:
            losses += 1
            if losses == _LOSSES:
                break
            time.sleep(random.uniform(0, _PAUSE_S * 2**losses))
            continue
        if task is not None:
            logger.debug("Task %s: claimed by %s", task.id, owner)
            return task
    logger.warning(
        "Cluster %s: %s found no free task while others kept taking them; "
        "it will ask again",
        cluster,
        owner,
    )
    return None


def in_cluster(cluster: str, status: TaskStatus) -> list[Filter]:
    """Return the filters for the tasks of ``cluster`` in ``status``."""
    return [("cluster", "=", cluster), ("status", "=", str(status))]


def _take_first(
    db: Datastore, task_ids: list[str], owner: str, now: float, expires: float
) -> Task | None:
    """Claim the first of ``task_ids`` that is still free, or return None."""
    for task_id in task_ids:
        task = _take(db, task_id, owner, now, expires)
        if task is not None:
            return task
    return None


def _candidates(db: Datastore, cluster: str, now: float) -> list[str]:
    """Return ids of tasks worth trying to claim: pending, else expired."""
    found = _live_batch(db, in_cluster(cluster, TaskStatus.PENDING), "idx")
    if found:
        return found
    expired = in_cluster(cluster, TaskStatus.CLAIMED)
    expired.append(("lease_expires", "<", now))
    return _live_batch(db, expired, "lease_expires")


def _live_batch(db: Datastore, filters: list[Filter], order: str) -> list[str]:
    """Return the ids in the first batch of matching tasks that has live jobs."""
    cursor: bytes | None = None
    for _ in range(_PAGES):
        page, cursor = db.query_page(TASK, filters, [order], CANDIDATES, cursor)
        # Keys only: a task's id is "{job_id}.{index}", which names its job.
        tasks = [(key.name, key.name.rpartition(".")[0]) for key in page]
        job_ids = dict.fromkeys(job_id for _, job_id in tasks)
        jobs = db.get_multi([db.key(JOB, job_id) for job_id in job_ids])
        live = {job.key.name for job in jobs if is_live(job)}
        found = [task_id for task_id, job_id in tasks if job_id in live]
        if found or cursor is None:
            return found
    return []


def _take(
    db: Datastore, task_id: str, owner: str, now: float, lease_expires: float
) -> Task | None:
    """Claim the task in one transaction if it is still free, else return None."""
    key = db.key(TASK, task_id)

    def body(transaction: Transaction) -> Task | None:
        entity = db.get(key, transaction)
        if entity is None:
            return None
        task = load_task(entity)
        if transitions.lease_expired(task, now):
            if not transitions.expire_lease(task, now):
                db.put(task_entity(db, task), transaction)
                return None  # out of attempts, now failed: try the next one
        elif task.status is not TaskStatus.PENDING:
            return None
        transitions.start_attempt(task, owner, lease_expires, now)
        db.put(task_entity(db, task), transaction)
        return task

    return db.transact(body, f"claim task {task_id!r}", tries=1)
