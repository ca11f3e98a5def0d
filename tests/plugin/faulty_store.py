"""A third-party store plugin for tests: the real SQLite store, watched.

Registered through the ``sparkles`` entry points like any plugin (the
``faulty_store`` fixture installs it into a folder on ``PYTHONPATH``), it
offers ``faultysqlite:///path/store.db``: the SQLite store at that path, with
two additions for the process that submits (not for workers):

- each ``get_tasks`` call appends the number of ids asked for to
  ``$FAULTY_STORE_DIR/get_tasks.log``;
- while ``$FAULTY_STORE_DIR/fail-get-tasks`` exists, ``get_tasks`` raises
  StoreError, as a store that cannot be reached would;
- while ``$FAULTY_STORE_DIR/hold-poller-reads`` exists, and the store is
  open, a ``get_tasks`` call from a thread other than the main one
  (Snakemake's status poller) waits, with ``poller-read-held`` touched; when
  it ends it appends ``read`` or ``failed: ERROR`` to ``held_reads.log``.

It also observes the run: each task and job lifecycle hook appends a line
to ``$FAULTY_STORE_DIR/events.log``.
"""

from __future__ import annotations

import os
import sys
import threading
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
HOLD_FLAG = "hold-poller-reads"
HELD_MARK = "poller-read-held"
HELD_LOG = "held_reads.log"
EVENTS_LOG = "events.log"


def _control() -> Path | None:
    """Return the control folder, or None in a worker (left alone)."""
    if "sparkles_worker" in sys.argv[0]:
        return None
    folder = os.environ.get("FAULTY_STORE_DIR")
    return Path(folder) if folder else None


class FaultyStore(SQLiteStore):
    """The SQLite store, whose task reads can be counted, held or made to fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._closed = threading.Event()

    def close(self) -> None:
        """Close the store, then wake a held read: it meets a closed store."""
        super().close()
        self._closed.set()

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Record the call; fail while the flag file exists."""
        wanted = list(task_ids)
        control = _control()
        if control is not None:
            with (control / CALL_LOG).open("a") as log:
                log.write(f"{len(wanted)}\n")
            if (control / FAIL_FLAG).exists():
                raise StoreError(f"{self.url}: injected failure reading tasks")
            held = threading.current_thread() is not threading.main_thread()
            if held and (control / HOLD_FLAG).exists():
                return self._held_read(control, wanted)
        return super().get_tasks(wanted)

    def _held_read(self, control: Path, wanted: list[str]) -> list[Task]:
        """Wait while the hold flag exists, then read; note how the read ended."""
        (control / HELD_MARK).touch()
        while (control / HOLD_FLAG).exists() and not self._closed.wait(0.05):
            pass
        try:
            tasks = super().get_tasks(wanted)
        except Exception as exc:
            _append(control / HELD_LOG, f"failed: {exc}")
            raise
        _append(control / HELD_LOG, "read")
        return tasks


def _open(url: str) -> Store:
    return FaultyStore.from_url(url.replace(f"{SCHEME}://", "sqlite://", 1))


@hookimpl
def sparkles_store_backends() -> Mapping[str, Callable[[str], Store]]:
    """Offer the faulty SQLite store."""
    return {SCHEME: _open}


def _append(path: Path, line: str) -> None:
    with path.open("a") as log:
        log.write(line + "\n")


def _note_event(line: str) -> None:
    control = _control()
    if control is not None:
        _append(control / EVENTS_LOG, line)


@hookimpl
def sparkles_task_finished(task: Task) -> None:
    """Note a task that the submitting process saw finish."""
    _note_event(f"task {task.id} {task.status} {task.exit_code}")


@hookimpl
def sparkles_job_finished(job: Job, counts: Mapping[str, int]) -> None:
    """Note a job whose tasks have all finished."""
    _note_event(f"job {job.id} {job.status} complete={counts.get('complete', 0)}")
