"""Per-task overhead of local workers against ``xargs -P`` on the same commands.

Every side runs N trivial commands (``true``) with P processes at a time.
Sparkles' side submits a job of N tasks to the embedded SQLite store and
times from submission until the last task is complete, with P workers
already idle. Two baselines: ``xargs -P P -n 1 true`` execs ``true``
directly; ``xargs -P P -n 1 sh -c`` also pays the ``/bin/sh -c`` start-up
that every Sparkles task pays. The overhead per task is the extra wall time
each worker slot spends per task: ``(sparkles - xargs) * P / N``.

Beside it, the resident size of an idle worker (target: under 80 MB), read
while the workers wait for the job.

Usage: python benchmarks/bench_overhead.py [--tasks 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from sparkles_core.client import Client
from sparkles_core.config import load_config
from sparkles_core.models import JobSpec, TaskSpec, TaskStatus


def time_xargs(tasks: int, workers: int, shell: bool) -> float:
    """Return seconds for ``xargs -P`` to run ``true`` ``tasks`` times.

    With ``shell``, each ``true`` runs under ``sh -c`` as a task's command does.
    """
    # Each input line becomes one run: ``true true`` (true ignores its
    # argument) or ``sh -c true``.
    lines = "\n".join(["true"] * tasks) + "\n"
    runner = ["sh", "-c"] if shell else ["true"]
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(workers), "-n", "1", *runner],
        input=lines.encode(),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def time_sparkles(tasks: int, workers: int, home: Path) -> tuple[float, int]:
    """Return seconds for ``workers`` local workers to run ``tasks`` tasks.

    Also return the largest resident size of an idle worker, in bytes.
    """
    os.environ["SPARKLES_HOME"] = str(home)
    client = Client(load_config())
    spec = JobSpec(name="bench", tasks=[TaskSpec(command="true")] * tasks)
    cluster = _cluster_of(client, spec)
    procs = [_worker(client, cluster, home, n) for n in range(workers)]
    time.sleep(2.0)  # let them import and start polling
    idle_rss = max(psutil.Process(proc.pid).memory_info().rss for proc in procs)
    start = time.perf_counter()
    job = client.submit(spec, "bench")
    while client.store.count_tasks(job.id).get(TaskStatus.COMPLETE, 0) < tasks:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.terminate()
        proc.wait()
    client.close()
    return elapsed, idle_rss


def _cluster_of(client: Client, spec: JobSpec) -> str:
    from sparkles_core.submit import cluster_id_for

    return cluster_id_for(spec.machine, spec.image)


def _worker(
    client: Client, cluster: str, home: Path, n: int
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "sparkles_worker",
        "consume",
        f"--store={client.config.store_url}",
        f"--storage={client.config.storage_url}",
        f"--cluster={cluster}",
        f"--node-id=bench-{n}",
        f"--work-dir={home / 'nodes' / str(n)}",
        f"--cache-dir={home / 'cache'}",
        "--linger=600",
    ]
    return subprocess.Popen(argv, stderr=subprocess.DEVNULL)


def main() -> None:
    """Run both sides and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    direct = time_xargs(args.tasks, args.workers, shell=False)
    shell = time_xargs(args.tasks, args.workers, shell=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours, idle_rss = time_sparkles(args.tasks, args.workers, Path(tmp))

    def per_slot_ms(seconds: float) -> float:
        return seconds * args.workers / args.tasks * 1000

    table = Table(title=f"{args.tasks} x 'true' on {args.workers} processes")
    for column in ("runner", "wall s", "tasks/s", "ms/task/slot", "overhead ms"):
        table.add_column(column, justify="left" if column == "runner" else "right")
    rows = [
        (f"xargs -P {args.workers} -n 1 true (baseline)", direct),
        (f"xargs -P {args.workers} -n 1 sh -c", shell),
        ("sparkles local workers", ours),
    ]
    for name, seconds in rows:
        overhead = per_slot_ms(seconds) - per_slot_ms(direct)
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{args.tasks / seconds:.0f}",
            f"{per_slot_ms(seconds):.2f}",
            f"{overhead:.2f}",
        )
    console = Console()
    console.print(table)
    overhead_ms = per_slot_ms(ours) - per_slot_ms(direct)
    console.print(
        f"Per-task overhead over xargs ... true: {overhead_ms:.2f} ms (target < 5 ms)"
    )
    idle_mb = idle_rss / 2**20
    console.print(f"Idle worker resident size: {idle_mb:.0f} MB (target < 80 MB)")


if __name__ == "__main__":
    main()
