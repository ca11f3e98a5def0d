"""A third-party store plugin for tests: the real SQLite store, watched.

Registered through the ``sparkles`` entry points like any plugin (the
``faulty_store`` fixture installs it into a folder on ``PYTHONPATH``), it
offers ``faultysqlite:///path/store.db``: the SQLite store at that path, with
two additions for the process that submits (not for workers):

- each ``get_tasks`` call appends the number of ids asked for to
  ``$FAULTY_STORE_DIR/get_tasks.log``;
- while ``$FAULTY_STORE_DIR/fail-get-tasks`` exists, ``get_tasks`` raises
  StoreError, as a store that cannot be reached would.

It also observes the run: each task and job lifecycle hook appends a line
to ``$FAULTY_STORE_DIR/events.log``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sparkles_core.errors import StoreError
from sparkles_core.hooks import hookimpl
from sparkles_core.models import Job, Task
from sparkles_core.store.base import Store
from sparkles_core.store.sqlite import SQLiteStore

SCHEME = "faultysqlite"
FAIL_FLAG = "fail-get-tasks"
CALL_LOG = "get_tasks.log"
EVENTS_LOG = "events.log"


def _control() -> Path | None:
    """Return the control folder, or None in a worker (left alone)."""
    if "sparkles_worker" in sys.argv[0]:
        return None
    folder = os.environ.get("FAULTY_STORE_DIR")
    return Path(folder) if folder else None


class FaultyStore(SQLiteStore):
    """The SQLite store, whose task reads can be counted and made to fail."""

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Record the call; fail while the flag file exists."""
        wanted = list(task_ids)
        control = _control()
        if control is not None:
            with (control / CALL_LOG).open("a") as log:
                log.write(f"{len(wanted)}\n")
            if (control / FAIL_FLAG).exists():
                raise StoreError(f"{self.url}: injected failure reading tasks")
        return super().get_tasks(wanted)


def _open(url: str) -> Store:
    return FaultyStore.from_url(url.replace(f"{SCHEME}://", "sqlite://", 1))


@hookimpl
def sparkles_store_backends() -> Mapping[str, Callable[[str], Store]]:
    """Offer the faulty SQLite store."""
    return {SCHEME: _open}


def _note_event(line: str) -> None:
    control = _control()
    if control is not None:
        with (control / EVENTS_LOG).open("a") as log:
            log.write(line + "\n")


@hookimpl
def sparkles_task_finished(task: Task) -> None:
    """Note a task that the submitting process saw finish."""
    _note_event(f"task {task.id} {task.status} {task.exit_code}")


@hookimpl
def sparkles_job_finished(job: Job, counts: Mapping[str, int]) -> None:
    """Note a job whose tasks have all finished."""
    _note_event(f"job {job.id} {job.status} complete={counts.get('complete', 0)}")
