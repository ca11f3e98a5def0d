"""Time submitting one job of many tasks to the SQLite store.

Beside it, as a baseline from the same run, a bare ``sqlite3`` executemany of
as many minimal rows into a one-table WAL database: the gap between the two is
what Sparkles adds (models, JSON records, indexes).

    python benchmarks/bench_submit.py --tasks 10000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sparkles_core.models import Download, Job, TaskSpec
from sparkles_core.store.sqlite import SQLiteStore

TARGET_TASKS_PER_S = 20_000


def make_specs(count: int) -> list[TaskSpec]:
    """Return ``count`` task specs shaped like a typical parameter sweep."""
    return [
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


def time_store(folder: Path, specs: list[TaskSpec]) -> float:
    """Return the seconds ``SQLiteStore.create_job`` takes for ``specs``."""
    store = SQLiteStore(folder / "store.db")
    job = Job(
        id="bench",
        cluster="bench-cluster",
        spec_hash="0" * 64,
        submit_time=time.time(),
        task_count=len(specs),
    )
    try:
        start = time.perf_counter()
        store.create_job(job, specs)
        return time.perf_counter() - start
    finally:
        store.close()


def time_bare(folder: Path, count: int) -> float:
    """Return the seconds a bare executemany of ``count`` minimal rows takes."""
    conn = sqlite3.connect(folder / "bare.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, record TEXT)")
        start = time.perf_counter()
        rows = [(f"bench.{n}", '{"status":"pending"}') for n in range(1, count + 1)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO tasks VALUES (?, ?)", rows)
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def best_of(repeat: int, measure: Callable[[Path], float]) -> float:
    """Return the fastest of ``repeat`` runs, each in a fresh folder."""
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="sparkles-bench-") as folder:
            times.append(measure(Path(folder)))
    return min(times)


def main() -> None:
    """Run both measurements and print them as one table."""
    parser = argparse.ArgumentParser(description="Time submitting one job.")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per job")
    parser.add_argument("--repeat", type=int, default=3, help="runs; best kept")
    args = parser.parse_args()
    specs = make_specs(args.tasks)

    bare = best_of(args.repeat, lambda folder: time_bare(folder, args.tasks))
    ours = best_of(args.repeat, lambda folder: time_store(folder, specs))

    table = Table(
        title=f"Submit one job of {args.tasks:,} tasks (best of {args.repeat})"
    )
    table.add_column("case", no_wrap=True)
    for column in ("seconds", "tasks/s", "vs baseline", "target"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row(
        "baseline: executemany",
        f"{bare:.3f}",
        rate(args.tasks, bare),
        "1.0x",
        "",
    )
    met = args.tasks / ours >= TARGET_TASKS_PER_S
    verdict = f"{TARGET_TASKS_PER_S // 1000}k/s {'met' if met else 'MISSED'}"
    table.add_row(
        "SQLiteStore.create_job",
        f"{ours:.3f}",
        rate(args.tasks, ours),
        f"{ours / bare:.1f}x",
        verdict,
    )
    Console().print(table)


def rate(count: int, seconds: float) -> str:
    """Return ``count`` per second, formatted."""
    return f"{count / seconds:,.0f}"


if __name__ == "__main__":
    main()
