"""The job and task store in one SQLite file, shared by the local workers.

Layout of the file (opened, checked and shared between threads by
:mod:`sparkles_core.store.sqlite_file`)::

    jobs   id PK | status | cluster | submit_time | record
    tasks  id PK | job_id | idx | cluster | status | owner | lease_expires
           | attempt | record
    nodes  id PK | cluster | record

``record`` is the whole pydantic model as JSON and is what is read back; the
other columns copy the fields that queries filter on and are rewritten from
the model on every change, so they never disagree with it. Every change is
one ``BEGIN IMMEDIATE`` transaction that re-reads the rows it changes: that is
what makes a claim exclusive across processes.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger(__name__)

# Old SQLite builds cap a statement at 999 bound parameters.
_CHUNK = 500

_NOT_KILLED = (
    "NOT EXISTS (SELECT 1 FROM jobs"
    " WHERE jobs.id = tasks.job_id AND jobs.status = 'killed')"
)
_NEXT_PENDING = (
    "SELECT record FROM tasks WHERE cluster = ? AND status = 'pending'"
    f" AND {_NOT_KILLED} ORDER BY idx LIMIT 1"
)
_NEXT_EXPIRED = (
    "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
    f" AND lease_expires < ? AND {_NOT_KILLED} ORDER BY idx LIMIT 1"
)
_OWNED = "SELECT record FROM tasks WHERE id = ? AND status = 'claimed' AND owner = ?"
_SAVE_TASK = (
    "UPDATE tasks SET status = ?, owner = ?, lease_expires = ?, attempt = ?,"
    " record = ? WHERE id = ?"
)
_INSERT_TASK = (
    "INSERT INTO tasks (id, job_id, idx, cluster, status, owner, lease_expires,"
    " attempt, record) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
)
_KILL_TASKS = (
    "UPDATE tasks SET status = 'killed', lease_expires = NULL, record = json_insert("
    "json_set(record, '$.status', 'killed', '$.lease_expires', NULL),"
    " '$.history[#]', json(?)) WHERE job_id = ? AND status IN ('pending', 'claimed')"
)
_SAVE_JOB = (
    "INSERT OR REPLACE INTO jobs (id, status, cluster, submit_time, record)"
    " VALUES (?, ?, ?, ?, ?)"
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
        with _gc_paused():
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
            _save_job(conn, job)
            conn.executemany(_INSERT_TASK, rows)
        logger.info("Job %s: created with %d tasks", job.id, len(tasks))
        return tasks

    def get_job(self, job_id: str) -> Job | None:
        """Return the job, or None."""
        with self._file.read(f"read job {job_id!r}") as conn:
            return _get_job(conn, job_id)

    def list_jobs(self, pattern: str = "*") -> list[Job]:
        """Return jobs whose id matches the shell wildcard, oldest first."""
        sql = "SELECT id, record FROM jobs ORDER BY submit_time, id"
        with self._file.read("list jobs") as conn:
            rows = conn.execute(sql).fetchall()
        return [Job.model_validate_json(r) for i, r in rows if fnmatchcase(i, pattern)]

    def set_job_status(self, job_id: str, status: JobStatus) -> None:
        """Set the job's status; raise JobNotFound if there is no such job."""
        with self._file.write(f"set the status of job {job_id!r}") as conn:
            job = _get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = status
            _save_job(conn, job)
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
        return None if row is None else _load(row)

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Return the tasks that exist among ``task_ids``, in the order given."""
        wanted = list(dict.fromkeys(task_ids))
        rows = []
        with self._file.read("read tasks", begin="BEGIN") as conn:
            for chunk in _chunks(wanted):
                sql = f"SELECT record FROM tasks WHERE id IN ({_marks(chunk)})"
                rows += conn.execute(sql, chunk).fetchall()
        found = {task.id: task for task in _load_all(rows)}
        return [found[i] for i in wanted if i in found]

    def list_tasks(
        self, job_id: str, statuses: Iterable[TaskStatus] | None = None
    ) -> list[Task]:
        """Return the job's tasks (optionally only those statuses) by index."""
        sql, args = "SELECT record FROM tasks WHERE job_id = ?", [job_id]
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            sql += f" AND status IN ({_marks(wanted)})"
            args += wanted
        with self._file.read(f"list the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", args).fetchall()
        return _load_all(rows)

    def count_tasks(self, job_id: str) -> dict[TaskStatus, int]:
        """Return how many of the job's tasks are in each status, zeros included."""
        sql = "SELECT status, count(*) FROM tasks WHERE job_id = ? GROUP BY status"
        with self._file.read(f"count the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql, (job_id,)).fetchall()
        counts = dict.fromkeys(TaskStatus, 0)
        counts.update({TaskStatus(status): n for status, n in rows})
        return counts

    def claimed_tasks(self, cluster: str) -> list[Task]:
        """Return the tasks of ``cluster`` that are currently claimed."""
        sql = "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
        with self._file.read(f"list claimed tasks of cluster {cluster!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", (cluster,)).fetchall()
        return _load_all(rows)

    def unfinished_count(self, cluster: str) -> int:
        """Return how many tasks of ``cluster`` are pending or claimed."""
        sql = (
            "SELECT count(*) FROM tasks"
            " WHERE cluster = ? AND status IN ('pending', 'claimed')"
        )
        with self._file.read(f"count unfinished tasks of cluster {cluster!r}") as conn:
            (count,) = conn.execute(sql, (cluster,)).fetchone()
        return int(count)

    # -- task transitions -----------------------------------------------------

    def claim(
        self, cluster: str, owner: str, lease_s: float, now: float | None = None
    ) -> Task | None:
        """Claim one task of ``cluster`` for ``owner``, or return None."""
        now = transitions.resolve_time(now)
        # Look before locking: idle workers poll, and a read takes no write lock.
        with self._file.read(f"look for work in cluster {cluster!r}") as conn:
            if _next_claimable(conn, cluster, now) is None:
                return None
        with self._file.write(f"claim a task of cluster {cluster!r}") as conn:
            task = _take(conn, cluster, now)
            if task is None:
                return None
            transitions.start_attempt(task, owner, now + lease_s, now)
            _save(conn, task)
        logger.debug("Task %s: claimed by %s", task.id, owner)
        return task

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

    def expire_leases(self, cluster: str, now: float | None = None) -> list[str]:
        """Return to pending the claimed tasks whose lease has expired."""
        when = transitions.resolve_time(now)
        sql = (
            "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
            " AND lease_expires < ? ORDER BY idx"
        )
        with self._file.write(f"expire leases in cluster {cluster!r}") as conn:
            tasks = [_load(r) for r in conn.execute(sql, (cluster, when))]
            for task in tasks:
                transitions.expire_lease(task, when)
                _save(conn, task)
        return transitions.logged(tasks, "lease expired")

    def reset_owned_by(self, owners: Iterable[str], reason: str) -> list[str]:
        """Return to pending the claimed tasks held by these (gone) nodes."""
        now, gone, tasks = time.time(), list(dict.fromkeys(owners)), []
        with self._file.write("reset the tasks of gone nodes") as conn:
            for chunk in _chunks(gone):
                sql = "SELECT record FROM tasks WHERE status = 'claimed'"
                sql += f" AND owner IN ({_marks(chunk)}) ORDER BY idx"
                tasks += [_load(r) for r in conn.execute(sql, chunk)]
            for task in tasks:
                transitions.reclaim(task, now, reason)
                _save(conn, task)
        return transitions.logged(tasks, reason)

    def reset(
        self,
        task_ids: Iterable[str],
        reason: str = "reset",
        statuses: Iterable[TaskStatus] | None = None,
    ) -> int:
        """Set tasks back to pending with a fresh attempt budget; return count."""
        now, wanted = time.time(), list(dict.fromkeys(task_ids))
        only = None if statuses is None else {TaskStatus(s) for s in statuses}
        count = 0
        with self._file.write("reset tasks") as conn:
            for chunk in _chunks(wanted):
                sql = f"SELECT record FROM tasks WHERE id IN ({_marks(chunk)})"
                tasks = [_load(r) for r in conn.execute(sql, chunk)]
                for task in tasks:
                    if only is None or task.status in only:
                        transitions.restart(task, now, reason)
                        _save(conn, task)
                        count += 1
        logger.info("Store: %d tasks reset (%s)", count, reason)
        return count

    def kill_job(self, job_id: str) -> int:
        """Mark the job killed and its unfinished tasks killed; return count."""
        entry = HistoryEntry(
            time=time.time(), status=TaskStatus.KILLED, reason=transitions.KILL_REASON
        )
        with self._file.write(f"kill job {job_id!r}") as conn:
            job = _get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = JobStatus.KILLED
            _save_job(conn, job)
            # One statement makes the edit of transitions.kill to every record
            # in place: a job of 100,000 tasks is killed without parsing any of
            # them in Python.
            killed = conn.execute(_KILL_TASKS, (entry.model_dump_json(), job_id))
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
            for chunk in _chunks(list(node_ids)):
                conn.execute(f"DELETE FROM nodes WHERE id IN ({_marks(chunk)})", chunk)

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
            task = _load(row)
            change(task)
            _save(conn, task)
        return True


def _next_claimable(conn: sqlite3.Connection, cluster: str, now: float) -> Task | None:
    """Return the pending task to claim next, else the first expired one."""
    row = conn.execute(_NEXT_PENDING, (cluster,)).fetchone()
    if row is None:
        row = conn.execute(_NEXT_EXPIRED, (cluster, now)).fetchone()
    return None if row is None else _load(row)


def _take(conn: sqlite3.Connection, cluster: str, now: float) -> Task | None:
    """Return a task ready to claim, failing expired ones out of attempts."""
    while (task := _next_claimable(conn, cluster, now)) is not None:
        if task.status is TaskStatus.PENDING:
            return task
        if transitions.expire_lease(task, now):
            return task
        _save(conn, task)
    return None


def _load(row: tuple[str, ...]) -> Task:
    """Return the task stored in the first column of ``row``."""
    return Task.model_validate_json(row[0])


def _load_all(rows: Iterable[tuple[str, ...]]) -> list[Task]:
    """Return the tasks stored in ``rows``, as fast as pydantic allows."""
    with _gc_paused():
        return [_load(row) for row in rows]


def _save(conn: sqlite3.Connection, task: Task) -> None:
    """Write ``task`` back, with its query columns."""
    values = (task.status, task.owner, task.lease_expires, task.attempt)
    conn.execute(_SAVE_TASK, (*values, task.model_dump_json(), task.id))


def _get_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    """Return the job, or None."""
    row = conn.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else Job.model_validate_json(row[0])


def _save_job(conn: sqlite3.Connection, job: Job) -> None:
    """Insert or replace the job, with its query columns."""
    values = (job.id, job.status, job.cluster, job.submit_time)
    conn.execute(_SAVE_JOB, (*values, job.model_dump_json()))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector for the duration of the block."""
    # Building tens of thousands of models that all survive sets off one full
    # collection after another; pausing roughly halves the time to submit.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """Yield slices short enough to bind as one IN list."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(items: Sequence[str]) -> str:
    """Return one ``?`` placeholder per item."""
    return ", ".join("?" * len(items))
