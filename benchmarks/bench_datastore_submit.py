"""Measure submitting one job of many tasks to Datastore (the emulator).

Three ways of writing the same task entities, measured in the same run
against the same emulator:

- ``DatastoreStore.create_job``: the store's submission, with commits of 500
  tasks sent several at a time, plus the reserve and publish transactions
  and building the task records;
- 500 per commit, serial: the same entities, prebuilt, in the same commits
  sent one after another;
- baseline, one request per task: what a submitter that writes each task on
  its own pays, over the same count (``--baseline-tasks`` can time it on a
  smaller job, whose rate is then extrapolated, as the table says).

The emulator runs on this machine; the figures say how the requests are
arranged, not what the real service over a real network would give::

    .venv/bin/python benchmarks/bench_datastore_submit.py --tasks 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from sparkles_core.models import Download, Job, Task, TaskSpec
from sparkles_core.store import transitions
from sparkles_core.store.datastore import DatastoreStore
from sparkles_core.store.datastore_client import MAX_WRITES, Datastore
from sparkles_core.store.datastore_records import task_entity

if TYPE_CHECKING:
    from tests.emulators.datastore import DatastoreEmulator

PROJECT = "sparkles-bench"


@dataclass(frozen=True)
class Run:
    """One timed way of writing a job: its name, size, time and requests."""

    case: str
    tasks: int
    seconds: float
    requests: int

    @property
    def rate(self) -> float:
        """Return tasks written per second."""
        return self.tasks / self.seconds


def main() -> None:
    """Start the emulator unless one is set, run the three cases, print them."""
    args = _parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sparkles-bench-"))
    emulator = None
    if "DATASTORE_EMULATOR_HOST" not in os.environ:
        emulator = _start_emulator(folder)
    try:
        # A fresh JVM runs slowly until its compiler has warmed up: without
        # this, whichever case goes first pays for it.
        _time_store(args.tasks)
        runs = [
            _best_of(args.repeat, lambda: _time_store(args.tasks)),
            _best_of(args.repeat, lambda: _time_sequential_batches(args.tasks)),
            _time_one_by_one(args.baseline_tasks or args.tasks),
        ]
    finally:
        if emulator is not None:
            emulator.stop()
        shutil.rmtree(folder, ignore_errors=True)
    Console().print(_table(args.tasks, runs))


def _parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per job")
    parser.add_argument(
        "--baseline-tasks",
        type=int,
        default=None,
        help="tasks written one request at a time (default: --tasks; a "
        "smaller count is extrapolated)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs; best kept")
    return parser.parse_args()


def _start_emulator(folder: Path) -> DatastoreEmulator:
    """Start the Datastore-mode emulator and point the Google client at it."""
    # The launcher lives with the test fixtures; run as a script, this file
    # sees only its own folder, so make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.emulators.datastore import (
        FIRESTORE_JAR,
        find_jar,
        start_datastore_emulator,
    )

    java, jar = shutil.which("java"), find_jar(FIRESTORE_JAR)
    if java is None or jar is None:
        raise SystemExit(
            "java or the Cloud SDK's Firestore emulator is missing; install "
            "default-jre-headless and google-cloud-cli-firestore-emulator"
        )
    emulator = start_datastore_emulator(java, jar, folder)
    os.environ["DATASTORE_EMULATOR_HOST"] = emulator.host
    return emulator


def _make_job(count: int) -> tuple[Job, list[TaskSpec]]:
    """Return a job of ``count`` tasks shaped like a typical parameter sweep."""
    specs = [
        TaskSpec(
            command=["python", "fit.py", "--sample", str(n)],
            parameters={"sample": str(n)},
            downloads=[
                Download(dst="fit.py", digest="a" * 64, size=2048),
                Download(dst=f"data/{n}.csv", digest=f"{n:064x}", size=10**6),
            ],
        )
        for n in range(count)
    ]
    job = Job(
        id="bench",
        cluster="bench-cluster",
        spec_hash="0" * 64,
        submit_time=time.time(),
        task_count=count,
    )
    return job, specs


def _fresh_store() -> DatastoreStore:
    """Return a store in a namespace of its own."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    return DatastoreStore.from_url(f"datastore://{PROJECT}?namespace={namespace}")


def _time_store(count: int) -> Run:
    """Time ``DatastoreStore.create_job`` for a job of ``count`` tasks."""
    job, specs = _make_job(count)
    store = _fresh_store()
    try:
        seconds = _timed(lambda: store.create_job(job, specs))
    finally:
        store.close()
    commits = -(-count // MAX_WRITES)
    # Reserve and publish are a transaction each: begin, read, commit.
    return Run("create_job (parallel)", count, seconds, commits + 6)


def _time_sequential_batches(count: int) -> Run:
    """Time writing the same task entities in commits of 500, one at a time."""
    store = _fresh_store()
    try:
        db, tasks = store._db, _tasks(count)
        seconds = _timed(lambda: _put_batches(db, tasks))
    finally:
        store.close()
    return Run("500 per commit, serial", count, seconds, -(-count // 500))


def _time_one_by_one(count: int) -> Run:
    """Time writing task entities with one request per task."""
    store = _fresh_store()
    try:
        db, tasks = store._db, _tasks(count)
        seconds = _timed(lambda: _put_each(db, tasks))
    finally:
        store.close()
    return Run("baseline: 1 per request", count, seconds, count)


def _tasks(count: int) -> list[Task]:
    """Return the pending tasks of a job of ``count`` tasks."""
    job, specs = _make_job(count)
    return transitions.new_tasks(job, specs)


def _put_batches(db: Datastore, tasks: list[Task]) -> None:
    """Write ``tasks`` in commits of 500, one after another."""
    db.put_multi([task_entity(db, task) for task in tasks], "write tasks")


def _put_each(db: Datastore, tasks: list[Task]) -> None:
    """Write each task with its own request."""
    for task in tasks:
        db.put_multi([task_entity(db, task)], f"write task {task.id}")


def _best_of(repeat: int, measure: Callable[[], Run]) -> Run:
    """Return the fastest of ``repeat`` runs."""
    return min((measure() for _ in range(repeat)), key=lambda run: run.seconds)


def _timed(action: Callable[[], object]) -> float:
    """Return the seconds ``action`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _table(count: int, runs: list[Run]) -> Table:
    """Return the results as a rich table, rates relative to the baseline."""
    baseline = runs[-1]
    caption = None
    if baseline.tasks != count:
        caption = (
            f"The baseline wrote {baseline.tasks:,} tasks; its time for "
            f"{count:,} is extrapolated from its rate."
        )
    title = f"Submit one job of {count:,} tasks to the Datastore emulator"
    table = Table(title=title, caption=caption)
    table.add_column("case", no_wrap=True)
    for column in ("tasks", "requests", "seconds", "tasks/s", "speed-up"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        seconds = count / run.rate
        label = f"{seconds:.2f}" if run.tasks == count else f"~{seconds:.1f}"
        table.add_row(
            run.case,
            f"{run.tasks:,}",
            f"{run.requests:,}",
            label,
            f"{run.rate:,.0f}",
            f"{run.rate / baseline.rate:.1f}x",
        )
    return table


if __name__ == "__main__":
    main()
