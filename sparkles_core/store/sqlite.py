"""The job and task store in one SQLite file, shared by the local workers.

Layout of the file (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`)::

    jobs   id PK | status | cluster | submit_time | record
    tasks  id PK | job_id | idx | cluster | status | owner | lease_expires
           | attempt | record
    nodes  id PK | cluster | record

``record`` is the whole pydantic model as JSON and is what is read back; the
other columns copy the fields that queries filter on and are rewritten from
the model on every change, so they never disagree with it. The file is in WAL
mode, so readers never wait for the writer. Every change is one ``BEGIN
IMMEDIATE`` transaction that re-reads the rows it changes: that is what makes a
claim exclusive across processes. Each thread of each process gets its own
connection.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
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
from sparkles_core.store.base import Completion, Store

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Every write is a few rows, so a writer holding the file for a whole minute
# is a stuck process rather than load; until then, callers queue.
_BUSY_TIMEOUT_S = 60.0

# Old SQLite builds cap a statement at 999 bound parameters.
_CHUNK = 500

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, cluster TEXT NOT NULL,
        submit_time REAL NOT NULL, record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL,
        cluster TEXT NOT NULL, status TEXT NOT NULL, owner TEXT,
        lease_expires REAL, attempt INTEGER NOT NULL, record TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS tasks_job_idx ON tasks (job_id, idx)",
    "CREATE INDEX IF NOT EXISTS tasks_job_status ON tasks (job_id, status)",
    "CREATE INDEX IF NOT EXISTS tasks_cluster_status ON tasks (cluster, status, idx)",
    "CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner)",
    """CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY, cluster TEXT NOT NULL, record TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS nodes_cluster ON nodes (cluster)",
)

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

# Matched against the lowered SQLite message, first hit wins.
_ADVICE = (
    ("locked", "another process has held it for over a minute; stop stuck ones"),
    ("busy", "another process has held it for over a minute; stop stuck ones"),
    ("unable to open", "check that its folder exists and that you may write it"),
    ("readonly", "make the file and its folder writable for this user"),
    ("not a database", "the file is damaged or not a store; move it aside"),
    ("malformed", "the file is damaged; move it aside to start a new store"),
    ("is full", "free some disk space"),
    ("i/o", "check the disk and the permissions of the file's folder"),
)


class SQLiteStore(Store):
    """Keep jobs, tasks and nodes in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self.url = f"sqlite://{self.path}"
        self._connections: dict[tuple[int, int], sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._closed = False
        try:
            _make_folder(self.path)
            self._prepare()
        except BaseException:
            self.close()
            raise

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
        if job.task_count != len(specs):
            raise StoreError(
                f"Job {job.id!r} says it has {job.task_count} tasks but "
                f"{len(specs)} specs were given; submit them together."
            )
        with _gc_paused():
            tasks = _new_tasks(job, specs)
            rows = [
                (t.id, job.id, t.index, job.cluster, "pending", 0, t.model_dump_json())
                for t in tasks
            ]
        with self._write(f"create job {job.id!r}") as conn:
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
        with self._read(f"read job {job_id!r}") as conn:
            return _get_job(conn, job_id)

    def list_jobs(self, pattern: str = "*") -> list[Job]:
        """Return jobs whose id matches the shell wildcard, oldest first."""
        sql = "SELECT id, record FROM jobs ORDER BY submit_time, id"
        with self._read("list jobs") as conn:
            rows = conn.execute(sql).fetchall()
        return [Job.model_validate_json(r) for i, r in rows if fnmatchcase(i, pattern)]

    def set_job_status(self, job_id: str, status: JobStatus) -> None:
        """Set the job's status; raise JobNotFound if there is no such job."""
        with self._write(f"set the status of job {job_id!r}") as conn:
            job = _get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = status
            _save_job(conn, job)
        logger.info("Job %s: status set to %s", job_id, status)

    def delete_job(self, job_id: str) -> None:
        """Delete the job and all its tasks; a missing job is not an error."""
        with self._write(f"delete job {job_id!r}") as conn:
            conn.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        logger.info("Job %s: deleted", job_id)

    # -- task queries ---------------------------------------------------------

    def get_task(self, task_id: str) -> Task | None:
        """Return the task, or None."""
        sql = "SELECT record FROM tasks WHERE id = ?"
        with self._read(f"read task {task_id!r}") as conn:
            row = conn.execute(sql, (task_id,)).fetchone()
        return None if row is None else _load(row)

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Return the tasks that exist among ``task_ids``, in the order given."""
        wanted = list(dict.fromkeys(task_ids))
        rows = []
        with self._read("read tasks", begin="BEGIN") as conn:
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
        with self._read(f"list the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", args).fetchall()
        return _load_all(rows)

    def count_tasks(self, job_id: str) -> dict[TaskStatus, int]:
        """Return how many of the job's tasks are in each status, zeros included."""
        sql = "SELECT status, count(*) FROM tasks WHERE job_id = ? GROUP BY status"
        with self._read(f"count the tasks of job {job_id!r}") as conn:
            rows = conn.execute(sql, (job_id,)).fetchall()
        counts = dict.fromkeys(TaskStatus, 0)
        counts.update({TaskStatus(status): n for status, n in rows})
        return counts

    def claimed_tasks(self, cluster: str) -> list[Task]:
        """Return the tasks of ``cluster`` that are currently claimed."""
        sql = "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
        with self._read(f"list claimed tasks of cluster {cluster!r}") as conn:
            rows = conn.execute(sql + " ORDER BY idx", (cluster,)).fetchall()
        return _load_all(rows)

    def unfinished_count(self, cluster: str) -> int:
        """Return how many tasks of ``cluster`` are pending or claimed."""
        sql = (
            "SELECT count(*) FROM tasks"
            " WHERE cluster = ? AND status IN ('pending', 'claimed')"
        )
        with self._read(f"count unfinished tasks of cluster {cluster!r}") as conn:
            (count,) = conn.execute(sql, (cluster,)).fetchone()
        return int(count)

    # -- task transitions -----------------------------------------------------

    def claim(
        self, cluster: str, owner: str, lease_s: float, now: float | None = None
    ) -> Task | None:
        """Claim one task of ``cluster`` for ``owner``, or return None."""
        now = _now(now)
        # Look before locking: idle workers poll, and a read takes no write lock.
        with self._read(f"look for work in cluster {cluster!r}") as conn:
            if _next_claimable(conn, cluster, now) is None:
                return None
        with self._write(f"claim a task of cluster {cluster!r}") as conn:
            task = _take(conn, cluster, now)
            if task is None:
                return None
            _start_attempt(task, owner, now + lease_s, now)
            _save(conn, task)
        logger.debug("Task %s: claimed by %s", task.id, owner)
        return task

    def renew(
        self, task_id: str, owner: str, lease_s: float, now: float | None = None
    ) -> bool:
        """Extend the lease; return False if ``owner`` no longer holds it."""
        expires = _now(now) + lease_s

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
            _finish(task, completion)
            reason = f"exit code {completion.exit_code}"
            if completion.signal is not None:
                reason = f"signal {completion.signal}"
            _note(task, time.time(), TaskStatus.COMPLETE, owner, reason)

        return self._change_owned(task_id, owner, "complete", change)

    def fail(self, task_id: str, owner: str, reason: str) -> bool:
        """Mark the task failed (Sparkles could not run it), if still owned."""

        def change(task: Task) -> None:
            task.lease_expires = None
            task.failure_reason = reason
            _note(task, time.time(), TaskStatus.FAILED, owner, reason)

        return self._change_owned(task_id, owner, "fail", change)

    def release(
        self, task_id: str, owner: str, reason: str, now: float | None = None
    ) -> bool:
        """Hand the task back as pending, or failed once its attempts are spent."""
        when = _now(now)

        def change(task: Task) -> None:
            _give_back(task, when, reason, by=owner)

        return self._change_owned(task_id, owner, "release", change)

    def expire_leases(self, cluster: str, now: float | None = None) -> list[str]:
        """Return to pending the claimed tasks whose lease has expired."""
        when = _now(now)
        sql = (
            "SELECT record FROM tasks WHERE cluster = ? AND status = 'claimed'"
            " AND lease_expires < ? ORDER BY idx"
        )
        with self._write(f"expire leases in cluster {cluster!r}") as conn:
            tasks = [_load(r) for r in conn.execute(sql, (cluster, when))]
            for task in tasks:
                _give_back(task, when, f"lease expired, was held by {task.owner}")
                _save(conn, task)
        return _logged(tasks, "lease expired")

    def reset_owned_by(self, owners: Iterable[str], reason: str) -> list[str]:
        """Return to pending the claimed tasks held by these (gone) nodes."""
        now, gone, tasks = time.time(), list(dict.fromkeys(owners)), []
        with self._write("reset the tasks of gone nodes") as conn:
            for chunk in _chunks(gone):
                sql = "SELECT record FROM tasks WHERE status = 'claimed'"
                sql += f" AND owner IN ({_marks(chunk)}) ORDER BY idx"
                tasks += [_load(r) for r in conn.execute(sql, chunk)]
            for task in tasks:
                _give_back(task, now, f"{reason}, was held by {task.owner}")
                _save(conn, task)
        return _logged(tasks, reason)

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
        with self._write("reset tasks") as conn:
            for chunk in _chunks(wanted):
                sql = f"SELECT record FROM tasks WHERE id IN ({_marks(chunk)})"
                tasks = [_load(r) for r in conn.execute(sql, chunk)]
                for task in tasks:
                    if only is None or task.status in only:
                        _restart(task, now, reason)
                        _save(conn, task)
                        count += 1
        logger.info("Store: %d tasks reset (%s)", count, reason)
        return count

    def kill_job(self, job_id: str) -> int:
        """Mark the job killed and its unfinished tasks killed; return count."""
        entry = HistoryEntry(
            time=time.time(), status=TaskStatus.KILLED, reason="job killed"
        )
        with self._write(f"kill job {job_id!r}") as conn:
            job = _get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            job.status = JobStatus.KILLED
            _save_job(conn, job)
            # One statement edits every record in place: a job of 100,000
            # tasks is killed without parsing any of them in Python.
            killed = conn.execute(_KILL_TASKS, (entry.model_dump_json(), job_id))
        logger.info("Job %s: killed, %d tasks stopped", job_id, killed.rowcount)
        return killed.rowcount

    # -- nodes ----------------------------------------------------------------

    def put_node(self, node: NodeReq) -> None:
        """Insert or replace a node record."""
        sql = "INSERT OR REPLACE INTO nodes (id, cluster, record) VALUES (?, ?, ?)"
        with self._write(f"save node {node.id!r}") as conn:
            conn.execute(sql, (node.id, node.cluster, node.model_dump_json()))

    def list_nodes(self, cluster: str | None = None) -> list[NodeReq]:
        """Return the node records, of one cluster or all, oldest first."""
        sql, args = "SELECT record FROM nodes", []
        if cluster is not None:
            sql, args = sql + " WHERE cluster = ?", [cluster]
        with self._read("list nodes") as conn:
            rows = conn.execute(sql, args).fetchall()
        nodes = [NodeReq.model_validate_json(row[0]) for row in rows]
        return sorted(nodes, key=lambda n: (n.created, n.id))

    def delete_nodes(self, node_ids: Iterable[str]) -> None:
        """Delete node records."""
        with self._write("delete nodes") as conn:
            for chunk in _chunks(list(node_ids)):
                conn.execute(f"DELETE FROM nodes WHERE id IN ({_marks(chunk)})", chunk)

    def close(self) -> None:
        """Close this process's connections; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            pid = os.getpid()
            for (owner_pid, _), conn in self._connections.items():
                # A connection inherited through fork belongs to the parent.
                if owner_pid == pid:
                    conn.close()
            self._connections.clear()

    # -- plumbing -------------------------------------------------------------

    def _prepare(self) -> None:
        """Switch the file to WAL and create or check the tables."""
        with self._read("open the store") as conn:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        with self._write("create the tables") as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"Store {str(self.path)!r} has schema version {version}, "
                    f"newer than this Sparkles knows ({SCHEMA_VERSION}); upgrade "
                    "Sparkles."
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        logger.info("Store %s: created tables", self.path)

    def _connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        key = (os.getpid(), threading.get_ident())
        conn = self._connections.get(key)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StoreError(f"Store {str(self.path)!r} is closed; open it again.")
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            self._connections[key] = conn
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def _read(
        self, action: str, begin: str | None = None
    ) -> Iterator[sqlite3.Connection]:
        """Run reads, in one snapshot if ``begin``; translate SQLite errors."""
        try:
            conn = self._connection()
            if begin is not None:
                conn.execute(begin)
            try:
                yield conn
                if begin is not None:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.path, action, exc)) from exc

    def _write(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """Run one write transaction, holding the file's write lock throughout."""
        return self._read(action, begin="BEGIN IMMEDIATE")

    def _change_owned(
        self, task_id: str, owner: str, action: str, change: Callable[[Task], None]
    ) -> bool:
        """Apply ``change`` if ``owner`` holds the task; return whether it did."""
        with self._write(f"{action} task {task_id!r}") as conn:
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


# TODO: move the task rules below (_new_tasks to _note) into a module of their
# own: they touch no SQL, the Datastore backend needs the same ones, and they
# keep this module well over the house size limit.
def _new_tasks(job: Job, specs: Sequence[TaskSpec]) -> list[Task]:
    """Return the job's tasks as submitted: pending, with one history entry."""
    # Validating plain dicts builds a fresh history entry per task inside
    # pydantic's core, several times faster than copying an entry model.
    entry = {"time": job.submit_time, "status": "pending", "reason": "submitted"}
    shared: dict[str, object] = {"job_id": job.id, "cluster": job.cluster}
    shared["max_attempts"] = job.max_attempts
    return [
        Task.model_validate(
            {"id": f"{job.id}.{n}", "index": n, "spec": spec, "history": [entry]}
            | shared
        )
        for n, spec in enumerate(specs, start=1)
    ]


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
        if _give_back(task, now, f"lease expired, was held by {task.owner}"):
            return task
        _save(conn, task)
    return None


def _start_attempt(task: Task, owner: str, lease_expires: float, now: float) -> None:
    """Hand ``task`` to ``owner`` for a new attempt with no results yet."""
    _clear_results(task)
    task.owner = owner
    task.lease_expires = lease_expires
    task.attempt += 1
    reason = f"attempt {task.attempt} of {task.max_attempts}"
    _note(task, now, TaskStatus.CLAIMED, owner, reason)


def _finish(task: Task, completion: Completion) -> None:
    """Copy what the worker reported into ``task``."""
    task.lease_expires = None
    task.exit_code = completion.exit_code
    task.signal = completion.signal
    task.started = completion.started
    task.finished = completion.finished
    task.usage = completion.usage
    task.result_key = completion.result_key


def _give_back(task: Task, now: float, reason: str, by: str | None = None) -> bool:
    """Return a claimed task to pending (True), or fail it if out of attempts."""
    task.lease_expires = None
    if task.attempt >= task.max_attempts:
        task.failure_reason = f"{reason}; gave up after {task.attempt} attempts"
        _note(task, now, TaskStatus.FAILED, by, task.failure_reason)
        return False
    task.owner = None
    _note(task, now, TaskStatus.PENDING, by, reason)
    return True


def _restart(task: Task, now: float, reason: str) -> None:
    """Make ``task`` pending again with a fresh attempt budget."""
    _clear_results(task)
    task.owner = None
    task.lease_expires = None
    task.attempt = 0
    _note(task, now, TaskStatus.PENDING, None, reason)


def _clear_results(task: Task) -> None:
    """Forget what an earlier attempt left, so attempts never mix."""
    task.exit_code = task.signal = None
    task.started = task.finished = None
    task.failure_reason = task.log_key = task.result_key = None
    task.usage = None


def _note(
    task: Task, now: float, status: TaskStatus, owner: str | None, reason: str | None
) -> None:
    """Set the task's status and add the history entry that explains it."""
    task.status = status
    entry = HistoryEntry(time=now, status=status, owner=owner, reason=reason)
    task.history.append(entry)


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


def _logged(tasks: list[Task], reason: str) -> list[str]:
    """Log each task taken from its owner; return their ids."""
    for task in tasks:
        logger.info("Task %s: %s (%s)", task.id, task.status, reason)
    return [task.id for task in tasks]


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


def _now(now: float | None) -> float:
    """Return ``now``, or the current time."""
    return time.time() if now is None else now


def _make_folder(path: Path) -> None:
    """Create the folder that will hold the database file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Store {str(path)!r}: could not create the folder "
            f"{str(path.parent)!r} ({exc.strerror or exc}); choose a location "
            "you can write to."
        ) from exc


def _explain(path: Path, action: str, exc: sqlite3.Error) -> str:
    """Return a one-line message for a SQLite error, saying what to do."""
    text = str(exc)
    lowered = text.lower()
    advice = next(
        (advice for needle, advice in _ADVICE if needle in lowered),
        "check that the file is a Sparkles store you may read and write",
    )
    return f"Store {str(path)!r}: could not {action} ({text}); {advice}."
