"""Rows of the SQLite store: reading and writing records in one transaction.

The functions here take an open connection, inside a transaction that
:class:`~sparkles_core.store.sqlite.SQLiteStore` began, and know the table
layout described in :mod:`sparkles_core.store.sqlite`: which columns copy
which fields, how a claimable task is found, how long an ``IN`` list may be.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from sparkles_core.models import Job, Task, TaskStatus
from sparkles_core.store import transitions

__all__ = [
    "CHUNK",
    "chunks",
    "claimed_by",
    "gc_paused",
    "get_job",
    "load_task",
    "load_tasks",
    "marks",
    "next_claimable",
    "save_job",
    "save_task",
    "select_among",
    "take_claimable",
]

# Old SQLite builds cap a statement at 999 bound parameters.
CHUNK = 500

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
_SAVE_TASK = (
    "UPDATE tasks SET status = ?, owner = ?, lease_expires = ?, attempt = ?,"
    " ended = ?, record = ? WHERE id = ?"
)
_SAVE_JOB = (
    "INSERT OR REPLACE INTO jobs (id, status, cluster, submit_time, record)"
    " VALUES (?, ?, ?, ?, ?)"
)


def next_claimable(conn: sqlite3.Connection, cluster: str, now: float) -> Task | None:
    """Return the pending task to claim next, else the first expired one."""
    row = conn.execute(_NEXT_PENDING, (cluster,)).fetchone()
    if row is None:
        row = conn.execute(_NEXT_EXPIRED, (cluster, now)).fetchone()
    return None if row is None else load_task(row)


def take_claimable(conn: sqlite3.Connection, cluster: str, now: float) -> Task | None:
    """Return a task ready to claim, failing expired ones out of attempts."""
    while (task := next_claimable(conn, cluster, now)) is not None:
        if task.status is TaskStatus.PENDING:
            return task
        if transitions.expire_lease(task, now):
            return task
        save_task(conn, task)
    return None


def claimed_by(
    conn: sqlite3.Connection, owners: Sequence[str], task_ids: Iterable[str] | None
) -> list[Task]:
    """Return the tasks claimed by ``owners``, only among ``task_ids`` if given."""
    claimed = "SELECT record FROM tasks WHERE status = 'claimed'"
    if task_ids is not None:
        # Filtered here: two IN lists could pass the bound-parameter cap.
        gone = set(owners)
        among = select_among(conn, claimed, [], task_ids)
        return [task for task in among if task.owner in gone]
    tasks: list[Task] = []
    for chunk in chunks(owners):
        sql = f"{claimed} AND owner IN ({marks(chunk)}) ORDER BY idx"
        tasks += [load_task(row) for row in conn.execute(sql, chunk)]
    return sorted(tasks, key=lambda task: (task.index, task.id))


def select_among(
    conn: sqlite3.Connection,
    sql: str,
    args: list[object],
    task_ids: Iterable[str] | None,
) -> list[Task]:
    """Return the tasks ``sql`` selects, only among ``task_ids`` if given."""
    if task_ids is None:
        return [load_task(row) for row in conn.execute(sql + " ORDER BY idx", args)]
    tasks: list[Task] = []
    for chunk in chunks(list(dict.fromkeys(task_ids))):
        among = f"{sql} AND id IN ({marks(chunk)}) ORDER BY idx"
        tasks += [load_task(row) for row in conn.execute(among, [*args, *chunk])]
    return sorted(tasks, key=lambda task: (task.index, task.id))


def load_task(row: tuple[str, ...]) -> Task:
    """Return the task stored in the first column of ``row``."""
    return Task.model_validate_json(row[0])


def load_tasks(rows: Iterable[tuple[str, ...]]) -> list[Task]:
    """Return the tasks stored in ``rows``, as fast as pydantic allows."""
    with gc_paused():
        return [load_task(row) for row in rows]


def save_task(conn: sqlite3.Connection, task: Task) -> None:
    """Write ``task`` back, with its query columns."""
    values = (task.status, task.owner, task.lease_expires, task.attempt)
    ended = transitions.ended_at(task)
    conn.execute(_SAVE_TASK, (*values, ended, task.model_dump_json(), task.id))


def get_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    """Return the job, or None."""
    row = conn.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else Job.model_validate_json(row[0])


def save_job(conn: sqlite3.Connection, job: Job) -> None:
    """Insert or replace the job, with its query columns."""
    values = (job.id, job.status, job.cluster, job.submit_time)
    conn.execute(_SAVE_JOB, (*values, job.model_dump_json()))


@contextmanager
def gc_paused() -> Iterator[None]:
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


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """Yield slices short enough to bind as one IN list."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def marks(items: Sequence[str]) -> str:
    """Return one ``?`` placeholder per item."""
    return ", ".join("?" * len(items))
