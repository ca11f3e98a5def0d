"""Snakemake per-job overhead: ``--executor sparkles`` against cluster-generic.

Both sides run the same workflow of N trivial jobs (``echo``) with the same
``--jobs``; each job is a fresh Snakemake process either way, so the
difference is what the executor adds. cluster-generic submits each job
script in the background on this machine and learns of its end from the
marker files on the shared file system (polled with no pause); Sparkles
moves files through the CAS and runs jobs on local workers.

Per-job cost is wall time times job slots over jobs: the slot-seconds one
job occupies. Then the Sparkles side's timeline (from the store) and a
profile of the Snakemake process show where the time goes.

Usage: python benchmarks/bench_snakemake.py [--jobs-count 200] [--slots 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sparkles_core.models import TaskStatus
from sparkles_core.store.sqlite import SQLiteStore

BIN = Path(sys.executable).parent
SNAKEFILE = """
rule all:
    input: expand("out/{{i}}.txt", i=range({count}))

rule echo:
    output: "out/{{i}}.txt"
    shell: "echo {{wildcards.i}} > {{output}}"
"""
SUBMIT = """#!/bin/sh
# Start the job script in the background; its pid is the job id.
nohup sh "$1" > /dev/null 2>&1 &
echo $!
"""
# Runs Snakemake's CLI with every thread profiled, for the breakdown.
PROFILED = """
import atexit, cProfile, pstats, sys, threading
stats_path = sys.argv.pop(1)
profiles = [cProfile.Profile()]
run = threading.Thread.run
def profiled_run(self):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.runcall(run, self)
threading.Thread.run = profiled_run
def dump():
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        try:
            stats.add(profile)
        except TypeError:
            pass  # a daemon thread still running has no stats yet
    stats.dump_stats(stats_path)
atexit.register(dump)
profiles[0].enable()
from snakemake.cli import main
sys.argv[0] = "snakemake"
main()
"""


def make_workflow(folder: Path, count: int) -> None:
    """Write the benchmark's Snakefile and submit script into ``folder``."""
    folder.mkdir(parents=True)
    (folder / "Snakefile").write_text(textwrap.dedent(SNAKEFILE.format(count=count)))
    submit = folder / "submit.sh"
    submit.write_text(SUBMIT)
    submit.chmod(0o755)


def run_timed(argv: list[str], folder: Path, env: dict[str, str]) -> float:
    """Run a command in ``folder``; return its wall time, or fail loudly."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed:\n{result.stderr[-3000:]}")
    return elapsed


def sparkles_argv(slots: int) -> list[str]:
    """Return the Sparkles side's Snakemake arguments."""
    return [
        "--executor=sparkles",
        f"--jobs={slots}",
        f"--sparkles-nodes={slots}",
        "--quiet=all",
    ]


def generic_argv(slots: int) -> list[str]:
    """Return the cluster-generic side's Snakemake arguments."""
    return [
        "--executor=cluster-generic",
        "--cluster-generic-submit-cmd=./submit.sh",
        f"--jobs={slots}",
        "--seconds-between-status-checks=0",
        "--quiet=all",
    ]


def timeline(home: Path) -> dict[str, list[float]]:
    """Return, per phase, how long each Sparkles task spent in it."""
    store = SQLiteStore(home / "store.db")
    phases: dict[str, list[float]] = {
        "wait for a worker": [],
        "stage inputs": [],
        "job's snakemake": [],
        "upload and report": [],
    }
    try:
        for job in store.list_jobs():
            for task in store.list_tasks(job.id):
                _add_phases(phases, job.submit_time, task)
    finally:
        store.close()
    return phases


def _add_phases(phases: dict[str, list[float]], submitted: float, task: object) -> None:
    from sparkles_core.models import Task

    assert isinstance(task, Task)
    times = {entry.status: entry.time for entry in task.history}
    claimed, done = times.get(TaskStatus.CLAIMED), times.get(TaskStatus.COMPLETE)
    if None in (claimed, done, task.started, task.finished):
        return
    assert claimed is not None and done is not None
    assert task.started is not None and task.finished is not None
    phases["wait for a worker"].append(claimed - submitted)
    phases["stage inputs"].append(task.started - claimed)
    phases["job's snakemake"].append(task.finished - task.started)
    phases["upload and report"].append(done - task.finished)


def profile_sparkles(count: int, slots: int, root: Path) -> Path:
    """Run the Sparkles side under the profiler; return the stats file."""
    folder, home = root / "profiled", root / "profiled-home"
    make_workflow(folder, count)
    stats = root / "snakemake.prof"
    argv = [sys.executable, "-c", PROFILED, str(stats), *sparkles_argv(slots)]
    run_timed(argv, folder, {**os.environ, "SPARKLES_HOME": str(home)})
    return stats


def print_results(
    args: argparse.Namespace, ours: list[float], theirs: list[float]
) -> None:
    """Print the side-by-side table, best round of each side."""
    title = f"{args.jobs_count} trivial Snakemake jobs, --jobs {args.slots}"
    table = Table(title=f"{title}, best of {args.repeat}")
    table.add_column("executor")
    table.add_column("wall s", justify="right")
    table.add_column("all rounds s", justify="right")
    table.add_column("jobs/s", justify="right")
    table.add_column("s/job/slot", justify="right")
    for name, walls in (("cluster-generic", theirs), ("sparkles", ours)):
        best = min(walls)
        table.add_row(
            name,
            f"{best:.1f}",
            " ".join(f"{wall:.0f}" for wall in walls),
            f"{args.jobs_count / best:.2f}",
            f"{best * args.slots / args.jobs_count:.2f}",
        )
    console = Console()
    console.print(table)
    ratio = min(ours) / min(theirs)
    console.print(f"sparkles / cluster-generic: {ratio:.2f} (target <= 1.1)")


def print_timeline(phases: dict[str, list[float]]) -> None:
    """Print the median and mean of each phase of the Sparkles tasks."""
    table = Table(title="Where a Sparkles job's time goes (from the store)")
    table.add_column("phase")
    table.add_column("median s", justify="right")
    table.add_column("mean s", justify="right")
    for phase, values in phases.items():
        if values:
            table.add_row(
                phase,
                f"{statistics.median(values):.3f}",
                f"{statistics.fmean(values):.3f}",
            )
    Console().print(table)


def print_profile(stats_path: Path, count: int) -> None:
    """Print the plugin's and the engine's costliest calls in Snakemake."""
    import pstats

    stats = pstats.Stats(str(stats_path))
    rows = []
    for (file, _, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "sparkles" in file and not name.startswith("<"):
            rows.append((cumulative, calls, f"{Path(file).stem}.{name}"))
    table = Table(title=f"Snakemake process, profiled run of {count} jobs")
    table.add_column("function")
    table.add_column("calls", justify="right")
    table.add_column("cumulative s", justify="right")
    table.add_column("ms/job", justify="right")
    for cumulative, calls, label in sorted(rows, reverse=True)[:12]:
        table.add_row(
            label, str(calls), f"{cumulative:.2f}", f"{cumulative / count * 1000:.1f}"
        )
    Console().print(table)


def compare(args: argparse.Namespace, root: Path) -> tuple[list[float], list[float]]:
    """Run the two sides in turns; return each side's wall times."""
    snakemake = str(BIN / "snakemake")
    ours: list[float] = []
    theirs: list[float] = []
    for round_ in range(args.repeat):
        generic, sparkles = root / f"generic-{round_}", root / f"sparkles-{round_}"
        make_workflow(generic, args.jobs_count)
        make_workflow(sparkles, args.jobs_count)
        # The last round's state folder is the one the timeline reads.
        env = {**os.environ, "SPARKLES_HOME": str(root / f"home-{round_}")}
        theirs.append(run_timed([snakemake, *generic_argv(args.slots)], generic, env))
        ours.append(run_timed([snakemake, *sparkles_argv(args.slots)], sparkles, env))
    return ours, theirs


def main() -> None:
    """Run both sides, then the breakdown, and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-count", type=int, default=200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds, in turns")
    parser.add_argument("--profile-jobs", type=int, default=50, help="0: skip")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours, theirs = compare(args, root)
        print_results(args, ours, theirs)
        print_timeline(timeline(root / f"home-{args.repeat - 1}"))
        if args.profile_jobs:
            stats = profile_sparkles(args.profile_jobs, args.slots, root)
            print_profile(stats, args.profile_jobs)


if __name__ == "__main__":
    main()
