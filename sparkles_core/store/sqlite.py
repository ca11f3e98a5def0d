"""The job and task store in one SQLite file, shared by the local workers.

Layout of the file (opened, checked and shared between threads by
:mod:`sparkles_core.store.sqlite_file`)::

    jobs   id PK | status | cluster | submit_time | record
    tasks  id PK | job_id | idx | cluster | status | owner | lease_expires
           | attempt | record | ended
    nodes  id PK | cluster | record

``record`` is the whole pydantic model as JSON and is what is read back; the
other columns copy the fields that queries filter on and are rewritten from
the model on every change, so they never disagree with it (``ended`` is
when a finished task finished, see
:func:`~sparkles_core.store.transitions.ended_at`). Every change is
one ``BEGIN IMMEDIATE`` transaction that re-reads the rows it changes: that is
what makes a claim exclusive across processes. A change that the caller
gives no time for reads the clock once it holds the write lock, not before:
waiting for the lock can take up to a minute, and a lease or a history time
taken before the wait would be that much behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Self

from sparkles_core.errors import BackendError, JobNotFound, StoreError
from sparkles_core.models import (
    HistoryEntry,
    Job,
    JobStatus,
    NodeReq,
    Task,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.store import transitions
from sparkles_core.store.base import Completion, Store
from sparkles_core.store.sqlite_file import SCHEMA_VERSION, SQLiteFile
from sparkles_core.store.sqlite_rows import (
    chunks,
    claimed_by,
    gc_paused,
    get_job,
    load_task,
    load_tasks,
    marks,
    next_claimable,
    save_job,
    save_task,
    select_among,
    take_claimable,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger(__name__)

_OWNED = "SELECT record FROM tasks WHERE id = ? AND status = 'claimed' AND owner = ?"
_INSERT_TASK = (
    "INSERT INTO tasks (id, job_id, idx, cluster, status, owner, lease_expires,"
    " attempt, record) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
)
_KILL_TASKS = (
    "UPDATE tasks SET status = 'killed', lease_expires = NULL, ended = ?,"
    " record = json_insert("
    "json_set(record, '$.status', 'killed', '$.lease_expires', NULL),"
    " '$.history[#]', json(?)) WHERE job_id = ? AND status IN ('pending', 'claimed')"
)
_JOBS_WITH_WORK = (
    "SELECT record FROM jobs WHERE cluster = ? AND status != 'killed'"
    " AND EXISTS (SELECT 1 FROM tasks WHERE tasks.job_id = jobs.id"
    " AND tasks.status IN ('pending', 'claimed')) ORDER BY submit_time, id"
)


class SQLiteStore(Store):
    """Keep jobs, tasks and nodes in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self.url = f"sqlite://{self.path}"
        self._file = SQLiteFile(self.path)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the store named by ``sqlite:///absolute/path/store.db``."""
        prefix = "sqlite://"
        path = url.removeprefix(prefix) if url.startswith(prefix) else ""
        if not path.startswith("/"):
            raise BackendError(
                f"The store URL {url!r} is not 'sqlite:///absolute/path.db'; "
                "give an absolute path after 'sqlite://'.",
                url=url,
            )
        return cls(Path(path))

    # -- jobs -----------------------------------------------------------------

    def create_job(self, job: Job, specs: Sequence[TaskSpec]) -> list[Task]:
        """Store ``job`` and one pending task per spec, all or nothing."""
        transitions.check_task_count(job, specs)
        with gc_paused():
            tasks = transitions.new_tasks(job, specs)
            rows = [
                (t.id, job.id, t.index, job.cluster, "pending", 0, t.model_dump_json())
                for t in tasks
            ]
        with self._file.write(f"create job {job.id!r}") as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
                raise StoreError(
                    f"Job {job.id!r} already exists in {str(self.path)!r}; pick "
                    "another job name or delete the old job first."
                )
            save_job(conn, job)
            conn.executemany(_INSERT_TASK, rows)
        logger.info("Job %s: created with %d tasks", job.id, len(tasks))
        return tasks

    def get_job(self, job_id: str) -> Job | None:
        """Return the job, or None."""
        with self._file.read(f"read job {job_id!r}") as conn:
            return get_job(conn, job_id)

    def list_jobs(self, pattern: str = "*") -> list[Job]:
        """Return jobs whose id matches the shell wildcard, oldest first."""
        sql = "SELECT id, record FROM jobs ORDER BY submit_time, id"
        with self._file.read("list jobs") as conn:
            rows = conn.execute(sql).fetchall()
        return [Job.model_validate_json(r) for i, r in rows if fnmatchcase(i, pattern)]

    def set_job_status(self, job_id: str, status: JobStatus) -> None:
        """Set the job's status; raise JobNotFound if there is no such job."""
        with self._file.write(f"set the status of job {job_id!r}") as conn:
            job = get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = status
            save_job(conn, job)
        logger.info("Job %s: status set to %s", job_id, status)

    def delete_job(self, job_id: str) -> None:
        """Delete the job and all its tasks; a missing job is not an error."""
        with self._file.write(f"delete job {job_id!r}") as conn:
            conn.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        logger.info("Job %s: deleted", job_id)

    # -- task queries ---------------------------------------------------------

    def get_task(self, task_id: str) -> Task | None:
        """Return the task, or None."""
        sql = "SELECT record FROM tasks WHERE id = ?"
        with self._file.read(f"read task {task_id!r}") as conn:
            row = conn.execute(sql, (task_id,)).fetchone()
        return None if row is None else load_task(row)

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Return the tasks that exist among ``task_ids``, in the order given."""
        wanted = list(dict.fromkeys(task_ids))
        rows = []
        with self._file.read("read tasks", begin="BEGIN") as conn:
            for chunk in chunks(wanted):
                sql = f"SELECT record FROM tasks WHERE id IN ({marks(chunk)})"
                rows += conn.execute(sql, chunk).fetchall()
        found = {task.id: task for task in load_tasks(rows)}
        return [found[i] for i in wanted if i in found]

    def list_tasks(
        self, job_id: str, statuses: Iterable[TaskStatus] | None = None
    ) -> list[Task]:
        """Return the job's tasks (optionally only those statuses) by index."""
        sql, args = "SELECT record FROM tasks WHERE job_id = ?", [job_id]
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            sql += f" AND status IN ({marks(wanted)})"
            args += wanted
        with self._file.read(f"list the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", args).fetchall()
        return load_tasks(rows)

    def count_tasks(self, job_id: str) -> dict[TaskStatus, int]:
        """Return how many of the job's tasks are in each status, zeros included."""
        sql = "SELECT status, count(*) FROM tasks WHERE job_id = ? GROUP BY status"
        with self._file.read(f"count the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql, (job_id,)).fetchall()
        counts = dict.fromkeys(TaskStatus, 0)
        counts.update({TaskStatus(status): n for status, n in rows})
        return counts

    def count_tasks_by_job(
        self, job_ids: Iterable[str]
    ) -> dict[str, dict[TaskStatus, int]]:
        """Return each job's task counts by status, zeros included."""
        wanted = list(dict.fromkeys(job_ids))
        counts = {job_id: dict.fromkeys(TaskStatus, 0) for job_id in wanted}
        with self._file.read("count tasks", begin="BEGIN") as conn:
            for chunk in chunks(wanted):
                sql = (
                    "SELECT job_id, status, count(*) FROM tasks"
                    f" WHERE job_id IN ({marks(chunk)}) GROUP BY job_id, status"
                )
                for job_id, status, n in conn.execute(sql, chunk):
                    counts[job_id][TaskStatus(status)] = n
        return counts

    def finished_since(self, job_ids: Iterable[str], since: float) -> list[Task]:
        """Return the tasks of these jobs that finished at ``since`` or later."""
        wanted, rows = list(dict.fromkeys(job_ids)), []
        with self._file.read("list newly finished tasks", begin="BEGIN") as conn:
            for chunk in chunks(wanted):
                # The status too, not the time alone: a task is finished by
                # its status, whatever an ``ended`` left behind may say.
                sql = (
                    "SELECT ended, id, record FROM tasks"
                    f" WHERE job_id IN ({marks(chunk)}) AND ended >= ?"
                    " AND status IN ('complete', 'failed', 'killed')"
                )
                rows += conn.execute(sql, [*chunk, since]).fetchall()
        rows.sort()
        return load_tasks((record,) for _, _, record in rows)

    def claimed_tasks(self, cluster: str) -> list[Task]:
        """Return the tasks of ``cluster`` that are currently claimed."""
        sql = "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
        with self._file.read(f"list claimed tasks of cluster {cluster!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", (cluster,)).fetchall()
        return load_tasks(rows)

    def unfinished_count(self, cluster: str) -> int:
        """Return how many tasks of ``cluster`` are pending or claimed."""
        sql = (
            "SELECT count(*) FROM tasks"
            " WHERE cluster = ? AND status IN ('pending', 'claimed')"
        )
        with self._file.read(f"count unfinished tasks of cluster {cluster!r}") as conn:
            (count,) = conn.execute(sql, (cluster,)).fetchone()
        return int(count)

    def jobs_with_work(self, cluster: str) -> list[Job]:
        """Return the cluster's jobs that still have work, oldest first."""
        with self._file.read(f"list the jobs of cluster {cluster!r}") as conn:
            rows = conn.execute(_JOBS_WITH_WORK, (cluster,)).fetchall()
        return [Job.model_validate_json(row[0]) for row in rows]

    # -- task transitions -----------------------------------------------------

    def claim(
        self, cluster: str, owner: str, lease_s: float, now: float | None = None
    ) -> Task | None:
        """Claim one task of ``cluster`` for ``owner``, or return None."""
        # Look before locking: idle workers poll, and a read takes no write lock.
        with self._file.read(f"look for work in cluster {cluster!r}") as conn:
            if next_claimable(conn, cluster, transitions.resolve_time(now)) is None:
                return None
        with self._file.write(f"claim a task of cluster {cluster!r}") as conn:
            when = transitions.resolve_time(now)
            task = take_claimable(conn, cluster, when)
            if task is None:
                return None
            transitions.start_attempt(task, owner, when + lease_s, when)
            save_task(conn, task)
        logger.debug("Task %s: claimed by %s", task.id, owner)
        return task

    def renew(
        self, task_id: str, owner: str, lease_s: float, now: float | None = None
    ) -> bool:
        """Extend the lease; return False if ``owner`` no longer holds it."""

        def change(task: Task) -> None:
            task.lease_expires = transitions.resolve_time(now) + lease_s

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

        def change(task: Task) -> None:
            when = transitions.resolve_time(now)
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
        sql = (
            "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
            " AND lease_expires < ?"
        )
        with self._file.write(f"expire leases in cluster {cluster!r}") as conn:
            when = transitions.resolve_time(now)
            tasks = select_among(conn, sql, [cluster, when], task_ids)
            for task in tasks:
                transitions.expire_lease(task, when)
                save_task(conn, task)
        return transitions.logged(tasks, "lease expired")

    def reset_owned_by(
        self,
        owners: Iterable[str],
        reason: str,
        *,
        task_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Return to pending the claimed tasks held by these (gone) nodes."""
        gone = list(dict.fromkeys(owners))
        with self._file.write("reset the tasks of gone nodes") as conn:
            now = time.time()
            tasks = claimed_by(conn, gone, task_ids)
            for task in tasks:
                transitions.reclaim(task, now, reason)
                save_task(conn, task)
        return transitions.logged(tasks, reason)

    def reset(
        self,
        task_ids: Iterable[str],
        reason: str = "reset",
        statuses: Iterable[TaskStatus] | None = None,
    ) -> int:
        """Set tasks back to pending with a fresh attempt budget; return count."""
        wanted = list(dict.fromkeys(task_ids))
        only = None if statuses is None else {TaskStatus(s) for s in statuses}
        count = 0
        with self._file.write("reset tasks") as conn:
            now = time.time()
            for chunk in chunks(wanted):
                sql = f"SELECT record FROM tasks WHERE id IN ({marks(chunk)})"
                tasks = [load_task(r) for r in conn.execute(sql, chunk)]
                for task in tasks:
                    if only is None or task.status in only:
                        transitions.restart(task, now, reason)
                        save_task(conn, task)
                        count += 1
        logger.info("Store: %d tasks reset (%s)", count, reason)
        return count

    def kill_job(self, job_id: str) -> int:
        """Mark the job killed and its unfinished tasks killed; return count."""
        with self._file.write(f"kill job {job_id!r}") as conn:
            entry = HistoryEntry(
                time=time.time(),
                status=TaskStatus.KILLED,
                reason=transitions.KILL_REASON,
            )
            job = get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = JobStatus.KILLED
            save_job(conn, job)
            # One statement makes the edit of transitions.kill to every record
            # in place: a job of 100,000 tasks is killed without parsing any of
            # them in Python.
            killed = conn.execute(
                _KILL_TASKS, (entry.time, entry.model_dump_json(), job_id)
            )
        logger.info("Job %s: killed, %d tasks stopped", job_id, killed.rowcount)
        return killed.rowcount

    # -- nodes ----------------------------------------------------------------

    def put_node(self, node: NodeReq) -> None:
        """Insert or replace a node record."""
        sql = "INSERT OR REPLACE INTO nodes (id, cluster, record) VALUES (?, ?, ?)"
        with self._file.write(f"save node {node.id!r}") as conn:
            conn.execute(sql, (node.id, node.cluster, node.model_dump_json()))

    def list_nodes(self, cluster: str | None = None) -> list[NodeReq]:
        """Return the node records, of one cluster or all, oldest first."""
        sql, args = "SELECT record FROM nodes", []
        if cluster is not None:
            sql, args = sql + " WHERE cluster = ?", [cluster]
        with self._file.read("list nodes") as conn:
            rows = conn.execute(sql, args).fetchall()
        nodes = [NodeReq.model_validate_json(row[0]) for row in rows]
        return sorted(nodes, key=lambda n: (n.created, n.id))

    def delete_nodes(self, node_ids: Iterable[str]) -> None:
        """Delete node records."""
        with self._file.write("delete nodes") as conn:
            for chunk in chunks(list(node_ids)):
                conn.execute(f"DELETE FROM nodes WHERE id IN ({marks(chunk)})", chunk)

    def close(self) -> None:
        """Close this process's connections; the store is unusable afterwards."""
        self._file.close()

    # -- plumbing -------------------------------------------------------------

    def _change_owned(
        self, task_id: str, owner: str, action: str, change: Callable[[Task], None]
    ) -> bool:
        """Apply ``change`` if ``owner`` holds the task; return whether it did."""
        with self._file.write(f"{action} task {task_id!r}") as conn:
            row = conn.execute(_OWNED, (task_id, owner)).fetchone()
            if row is None:
                logger.debug(
                    "Task %s: %s refused, %s does not hold it", task_id, action, owner
                )
                return False
            task = load_task(row)
            change(task)
            save_task(conn, task)
        return True
