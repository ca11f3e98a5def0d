"""The job and task store in Cloud Datastore (Firestore in Datastore mode).

URL: ``datastore://PROJECT``, ``datastore://PROJECT/DATABASE`` for a named
database, either with ``?namespace=NAME`` to keep several stores apart in one
database. The entity layout is in :mod:`sparkles_core.store.datastore_records`
and the all-or-nothing submission in :mod:`sparkles_core.store.datastore_submit`.

Consistency: Firestore in Datastore mode answers queries with strong
consistency, which the claim relies on; the legacy Datastore service, whose
queries are eventually consistent, is not supported.

Exclusivity: every change of a task is a transaction that reads the task,
checks the rule (pending, or ``claimed`` by this owner) and writes it back, so
two processes can never both believe they own a task. How a claim picks its
task is in :mod:`sparkles_core.store.datastore_claim`. Changes to many tasks
(kill, reset, expiry) run one transaction per 500 tasks, the most one commit
may write.

Indexes: the queries need only the built-in single-property indexes and the
composite indexes in ``index.yaml`` beside this module; deploy them once per
database with ``gcloud datastore indexes create sparkles_core/store/index.yaml``.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Self

from sparkles_core.errors import JobNotFound
from sparkles_core.models import Job, JobStatus, NodeReq, Task, TaskSpec, TaskStatus
from sparkles_core.store import datastore_queries as queries
from sparkles_core.store import transitions
from sparkles_core.store.base import Completion, Store
from sparkles_core.store.datastore_claim import claim_task, in_cluster
from sparkles_core.store.datastore_client import (
    MAX_WRITES,
    Datastore,
    DatastoreLocation,
    Filter,
)
from sparkles_core.store.datastore_records import (
    JOB,
    NODE,
    TASK,
    is_ready,
    load_job,
    load_node,
    load_task,
    node_entity,
    task_entity,
    with_status,
)
from sparkles_core.store.datastore_submit import submit_job

if TYPE_CHECKING:
    from google.cloud.datastore import Entity, Transaction

__all__ = ["DatastoreStore"]

logger = logging.getLogger(__name__)

_UNFINISHED = (TaskStatus.PENDING, TaskStatus.CLAIMED)


class DatastoreStore(Store):
    """Keep jobs, tasks and nodes as entities in Cloud Datastore."""

    def __init__(self, location: DatastoreLocation) -> None:
        self.location = location
        self.url = location.url
        self._db = Datastore(location)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the store named by ``datastore://PROJECT[/DATABASE][?namespace=]``."""
        return cls(DatastoreLocation.from_url(url))

    # -- jobs -----------------------------------------------------------------

    def create_job(self, job: Job, specs: Sequence[TaskSpec]) -> list[Task]:
        """Store ``job`` and one pending task per spec, all or nothing."""
        transitions.check_task_count(job, specs)
        tasks = transitions.new_tasks(job, specs)
        submit_job(self._db, job, tasks)
        return tasks

    def get_job(self, job_id: str) -> Job | None:
        """Return the job, or None (also while it is being submitted)."""
        entity = self._db.get(self._db.key(JOB, job_id))
        if entity is None or not is_ready(entity):
            return None
        return load_job(entity)

    def list_jobs(self, pattern: str = "*") -> list[Job]:
        """Return jobs whose id matches the shell wildcard, oldest first."""
        entities = self._db.query(JOB)
        jobs = [load_job(e) for e in entities if is_ready(e)]
        jobs = [job for job in jobs if fnmatchcase(job.id, pattern)]
        return sorted(jobs, key=lambda job: (job.submit_time, job.id))

    def set_job_status(self, job_id: str, status: JobStatus) -> None:
        """Set the job's status; raise JobNotFound if there is no such job."""
        self._change_job(job_id, status, f"set the status of job {job_id!r}")
        logger.info("Job %s: status set to %s", job_id, status)

    def delete_job(self, job_id: str) -> None:
        """Delete the job and all its tasks; a missing job is not an error."""
        keys = [e.key for e in self._tasks_of(job_id, keys_only=True)]
        self._db.delete_multi(keys, f"delete the tasks of job {job_id!r}")
        # The job goes last: if this is interrupted, it is still there to retry.
        self._db.delete_multi([self._db.key(JOB, job_id)], f"delete job {job_id!r}")
        logger.info("Job %s: deleted", job_id)

    # -- task queries ---------------------------------------------------------

    def get_task(self, task_id: str) -> Task | None:
        """Return the task, or None."""
        entity = self._db.get(self._db.key(TASK, task_id))
        return None if entity is None else load_task(entity)

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Return the tasks that exist among ``task_ids``, in the order given."""
        wanted = list(dict.fromkeys(task_ids))
        entities = self._db.get_multi([self._db.key(TASK, i) for i in wanted])
        found = {task.id: task for task in map(load_task, entities)}
        return [found[i] for i in wanted if i in found]

    def list_tasks(
        self, job_id: str, statuses: Iterable[TaskStatus] | None = None
    ) -> list[Task]:
        """Return the job's tasks (optionally only those statuses) by index."""
        if statuses is None:
            return _load_all(self._tasks_of(job_id))
        # One query per status, each served by the (job_id, status, idx)
        # index, merged here by index.
        runs = [
            _load_all(self._tasks_of(job_id, TaskStatus(status)))
            for status in dict.fromkeys(statuses)
        ]
        return list(heapq.merge(*runs, key=lambda task: task.index))

    def count_tasks(self, job_id: str) -> dict[TaskStatus, int]:
        """Return how many of the job's tasks are in each status, zeros included."""
        return queries.count_tasks(self._db, job_id)

    def count_tasks_by_job(
        self, job_ids: Iterable[str]
    ) -> dict[str, dict[TaskStatus, int]]:
        """Return each job's task counts by status: one count per job and status."""
        return queries.count_by_job(self._db, job_ids)

    def finished_since(self, job_ids: Iterable[str], since: float) -> list[Task]:
        """Return the tasks of these jobs that finished at ``since`` or later."""
        return queries.finished_since(self._db, job_ids, since)

    def claimed_tasks(self, cluster: str) -> list[Task]:
        """Return the tasks of ``cluster`` that are currently claimed."""
        filters = in_cluster(cluster, TaskStatus.CLAIMED)
        return _load_all(self._db.query(TASK, filters, ["idx"]))

    def unfinished_count(self, cluster: str) -> int:
        """Return how many tasks of ``cluster`` are pending or claimed."""
        return sum(
            self._db.count(TASK, in_cluster(cluster, status)) for status in _UNFINISHED
        )

    def jobs_with_work(self, cluster: str) -> list[Job]:
        """Return the cluster's jobs that still have work, oldest first."""
        return queries.jobs_with_work(self._db, cluster)

    # -- task transitions -----------------------------------------------------

    def claim(
        self, cluster: str, owner: str, lease_s: float, now: float | None = None
    ) -> Task | None:
        """Claim one task of ``cluster`` for ``owner``, or return None."""
        when = transitions.resolve_time(now)
        return claim_task(self._db, cluster, owner, when, when + lease_s)

    def renew(
        self, task_id: str, owner: str, lease_s: float, now: float | None = None
    ) -> bool:
        """Extend the lease; return False if ``owner`` no longer holds it."""
        expires = transitions.resolve_time(now) + lease_s

        def change(task: Task) -> None:
            task.lease_expires = expires

        return self._change_owned(task_id, owner, "renew the lease of", change)

    def set_log_key(self, task_id: str, owner: str, log_key: str) -> bool:
        """Point the task at the log of the current attempt, if still owned."""

        def change(task: Task) -> None:
            task.log_key = log_key

        return self._change_owned(task_id, owner, "set the log of", change)

    def complete(self, task_id: str, owner: str, completion: Completion) -> bool:
        """Mark the task complete, if ``owner`` still holds it."""

        def change(task: Task) -> None:
            transitions.complete(task, owner, completion, time.time())

        return self._change_owned(task_id, owner, "complete", change)

    def fail(self, task_id: str, owner: str, reason: str) -> bool:
        """Mark the task failed (Sparkles could not run it), if still owned."""

        def change(task: Task) -> None:
            transitions.fail(task, owner, reason, time.time())

        return self._change_owned(task_id, owner, "fail", change)

    def release(
        self, task_id: str, owner: str, reason: str, now: float | None = None
    ) -> bool:
        """Hand the task back as pending, or failed once its attempts are spent."""
        when = transitions.resolve_time(now)

        def change(task: Task) -> None:
            transitions.give_back(task, when, reason, by=owner)

        return self._change_owned(task_id, owner, "release", change)

    def expire_leases(
        self,
        cluster: str,
        now: float | None = None,
        *,
        task_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Return to pending the claimed tasks whose lease has expired."""
        when = transitions.resolve_time(now)
        if task_ids is None:
            filters = [*in_cluster(cluster, TaskStatus.CLAIMED)]
            filters.append(("lease_expires", "<", when))
            found = self._db.query(TASK, filters, ["lease_expires"], keys_only=True)
            task_ids = [entity.key.name for entity in found]

        def change(task: Task) -> bool:
            if task.cluster != cluster or not transitions.lease_expired(task, when):
                return False
            transitions.expire_lease(task, when)
            return True

        ids = list(task_ids)
        changed = self._change_many(ids, change, f"expire leases in {cluster!r}")
        return transitions.logged(changed, "lease expired")

    def reset_owned_by(
        self,
        owners: Iterable[str],
        reason: str,
        *,
        task_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Return to pending the claimed tasks held by these (gone) nodes."""
        now, gone = time.time(), set(owners)
        ids = list(task_ids) if task_ids is not None else self._owned_by(gone)

        def change(task: Task) -> bool:
            if task.status is not TaskStatus.CLAIMED or task.owner not in gone:
                return False
            transitions.reclaim(task, now, reason)
            return True

        changed = self._change_many(ids, change, "reset the tasks of gone nodes")
        return transitions.logged(changed, reason)

    def reset(
        self,
        task_ids: Iterable[str],
        reason: str = "reset",
        statuses: Iterable[TaskStatus] | None = None,
    ) -> int:
        """Set tasks back to pending with a fresh attempt budget; return count."""
        now = time.time()
        only = None if statuses is None else {TaskStatus(s) for s in statuses}

        def change(task: Task) -> bool:
            if only is not None and task.status not in only:
                return False
            transitions.restart(task, now, reason)
            return True

        count = len(self._change_many(list(task_ids), change, "reset tasks"))
        logger.info("Store: %d tasks reset (%s)", count, reason)
        return count

    def kill_job(self, job_id: str) -> int:
        """Mark the job killed and its unfinished tasks killed; return count."""
        now = time.time()
        self._change_job(job_id, JobStatus.KILLED, f"kill job {job_id!r}")
        ids = [
            entity.key.name
            for status in _UNFINISHED
            for entity in self._tasks_of(job_id, status, keys_only=True)
        ]

        def change(task: Task) -> bool:
            if task.status not in _UNFINISHED:
                return False
            transitions.kill(task, now)
            return True

        count = len(self._change_many(ids, change, f"kill the tasks of {job_id!r}"))
        logger.info("Job %s: killed, %d tasks stopped", job_id, count)
        return count

    # -- nodes ----------------------------------------------------------------

    def put_node(self, node: NodeReq) -> None:
        """Insert or replace a node record."""
        self._db.put_multi([node_entity(self._db, node)], f"save node {node.id!r}")

    def list_nodes(self, cluster: str | None = None) -> list[NodeReq]:
        """Return the node records, of one cluster or all, oldest first."""
        filters: list[Filter] = [] if cluster is None else [("cluster", "=", cluster)]
        nodes = [load_node(entity) for entity in self._db.query(NODE, filters)]
        return sorted(nodes, key=lambda node: (node.created, node.id))

    def delete_nodes(self, node_ids: Iterable[str]) -> None:
        """Delete node records."""
        keys = [self._db.key(NODE, node_id) for node_id in dict.fromkeys(node_ids)]
        self._db.delete_multi(keys, "delete nodes")

    def close(self) -> None:
        """Drop the connections; the store is unusable afterwards."""
        self._db.close()

    # -- plumbing -------------------------------------------------------------

    def _tasks_of(
        self, job_id: str, status: TaskStatus | None = None, keys_only: bool = False
    ) -> list[Entity]:
        """Return the entities of the job's tasks (of one status) by index."""
        filters: list[Filter] = [("job_id", "=", job_id)]
        if status is not None:
            filters.append(("status", "=", str(status)))
        return self._db.query(TASK, filters, ["idx"], keys_only=keys_only)

    def _owned_by(self, owners: Iterable[str]) -> list[str]:
        """Return the ids of the claimed tasks held by ``owners``."""
        ids: list[str] = []
        for owner in sorted(owners):
            filters = [("owner", "=", owner), ("status", "=", "claimed")]
            ids += [e.key.name for e in self._db.query(TASK, filters, keys_only=True)]
        return ids

    def _change_owned(
        self, task_id: str, owner: str, action: str, change: Callable[[Task], None]
    ) -> bool:
        """Apply ``change`` if ``owner`` holds the task; return whether it did."""
        key = self._db.key(TASK, task_id)

        def body(transaction: Transaction) -> bool:
            entity = self._db.get(key, transaction)
            if entity is None or not transitions.is_owned_by(load_task(entity), owner):
                logger.debug(
                    "Task %s: %s refused, %s does not hold it", task_id, action, owner
                )
                return False
            task = load_task(entity)
            change(task)
            self._db.put(task_entity(self._db, task), transaction)
            return True

        return self._db.transact(body, f"{action} task {task_id!r}")

    def _change_many(
        self, task_ids: Sequence[str], change: Callable[[Task], bool], action: str
    ) -> list[Task]:
        """Apply ``change`` to the tasks it accepts; return them by index."""
        wanted = list(dict.fromkeys(task_ids))
        changed: list[Task] = []
        # One transaction per 500 tasks: the most one commit may write.
        for start in range(0, len(wanted), MAX_WRITES):
            chunk = wanted[start : start + MAX_WRITES]
            changed += self._change_chunk(chunk, change, action)
        return sorted(changed, key=lambda task: (task.index, task.id))

    def _change_chunk(
        self, task_ids: Sequence[str], change: Callable[[Task], bool], action: str
    ) -> list[Task]:
        """Apply ``change`` to up to 500 tasks in one transaction."""
        keys = [self._db.key(TASK, task_id) for task_id in task_ids]

        def body(transaction: Transaction) -> list[Task]:
            tasks = _load_all(self._db.get_multi(keys, transaction))
            accepted = [task for task in tasks if change(task)]
            for task in accepted:
                self._db.put(task_entity(self._db, task), transaction)
            return accepted

        return self._db.transact(body, action)

    def _change_job(self, job_id: str, status: JobStatus, action: str) -> None:
        """Set the job's status in a transaction; raise JobNotFound if absent."""
        key = self._db.key(JOB, job_id)

        def body(transaction: Transaction) -> None:
            entity = self._db.get(key, transaction)
            if entity is None or not is_ready(entity):
                raise JobNotFound(job_id)
            self._db.put(with_status(self._db, entity, status), transaction)

        self._db.transact(body, action)


def _load_all(entities: Iterable[Entity]) -> list[Task]:
    """Return the tasks stored in ``entities``."""
    return [load_task(entity) for entity in entities]
